package domain

// EvolveGoal applies one event to a goal's state and returns the new state;
// events of other streams leave it unchanged. Like Evolve it never writes
// into memory reachable from g (a goal's state holds no shared containers).
func EvolveGoal(g Goal, e Event) Goal {
	switch e := valueOf(e).(type) {
	case GoalSet:
		g.ID = e.GoalID
		g.Set = true
		g.Name, g.Figure, g.Comparator, g.Target = e.Name, e.Figure, e.Comparator, e.Target
		g.From, g.To, g.Scope = e.From, e.To, e.Scope
		g.SetAt = e.OccurredAt
	case GoalRevised:
		if e.Name != nil {
			g.Name = *e.Name
		}
		if e.Comparator != nil {
			g.Comparator = *e.Comparator
		}
		if e.Target != nil {
			g.Target = *e.Target
		}
		if e.From != nil {
			g.From = *e.From
		}
		if e.To != nil {
			g.To = *e.To
		}
		if e.Scope != nil {
			g.Scope = *e.Scope
		}
		g.RevisedAt = e.OccurredAt
	case GoalClosed:
		g.Closed = true
		g.ClosedAt = e.OccurredAt
		g.CloseReason = e.Reason
	}
	return g
}

// FoldGoal folds a goal's events, oldest first, into its state.
func FoldGoal(events ...Event) Goal {
	var g Goal
	for _, e := range events {
		g = EvolveGoal(g, e)
	}
	return g
}
