package domain

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// DecideGoal answers a goal command with the events that record it, given
// the goal's state and the current time; pure like Decide. Invalid input is
// a CodeInvalid *Error naming every bad field (an unknown figure, a target
// outside the figure's range, to not after from, a time out of range, a
// scope naming more than one group); a goal that does not exist is
// CodeNotFound, a closed one (or a set on an existing id) CodeConflict. A
// revision that changes nothing returns no events and no error.
func DecideGoal(g Goal, cmd GoalCommand, now time.Time) ([]Event, error) {
	now = now.UTC()
	switch cmd := valueOf(cmd).(type) {
	case SetGoal:
		return decideSetGoal(g, cmd, now)
	case ReviseGoal:
		return decideReviseGoal(g, cmd, now)
	case CloseGoal:
		return decideCloseGoal(g, cmd, now)
	default:
		return nil, fmt.Errorf("domain: cannot decide goal command %T", cmd)
	}
}

func decideSetGoal(g Goal, cmd SetGoal, now time.Time) ([]Event, error) {
	var f fieldErrors
	f.id("goal_id", cmd.GoalID)
	name := f.required("name", cmd.Name, MaxNameLength)
	figure, known := f.goalFigure("figure", cmd.Figure)
	f.comparator("comparator", cmd.Comparator)
	var target float64
	if cmd.Target == nil {
		f.add("target", "is required")
	} else if known {
		target = f.target("target", figure, *cmd.Target)
	}
	from := f.goalTime("from", cmd.From)
	to := f.goalTime("to", cmd.To)
	if !f.has("from") && !f.has("to") && !to.After(from) {
		f.add("to", "must be after from (the period is [from, to))")
	}
	scope := f.scope("scope", cmd.Scope)
	if err := f.err(); err != nil {
		return nil, err
	}
	if g.Set {
		return nil, conflict(ReasonGoalExists, "the goal is already set")
	}
	return []Event{GoalSet{
		GoalID: cmd.GoalID, Name: name, Figure: figure.Name, Comparator: cmd.Comparator, Target: target,
		From: from, To: to, Scope: scope, OccurredAt: now,
	}}, nil
}

func decideReviseGoal(g Goal, cmd ReviseGoal, now time.Time) ([]Event, error) {
	var f fieldErrors
	if cmd.Name == nil && cmd.Comparator == nil && cmd.Target == nil && cmd.From == nil && cmd.To == nil && cmd.Scope == nil {
		for _, field := range []string{"name", "comparator", "target", "from", "to", "scope"} {
			f.add(field, "at least one of name, comparator, target, from, to, scope is required")
		}
		return nil, f.err()
	}
	var out GoalRevised
	if cmd.Name != nil {
		out.Name = ptr(f.required("name", *cmd.Name, MaxNameLength))
	}
	if cmd.Comparator != nil {
		f.comparator("comparator", *cmd.Comparator)
		out.Comparator = ptr(*cmd.Comparator)
	}
	if cmd.From != nil {
		out.From = ptr(f.goalTime("from", cmd.From))
	}
	if cmd.To != nil {
		out.To = ptr(f.goalTime("to", cmd.To))
	}
	if cmd.Scope != nil {
		out.Scope = ptr(f.scope("scope", *cmd.Scope))
	}
	if cmd.Target != nil && !isFinite(*cmd.Target) {
		f.add("target", "must be a finite number")
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	if !g.Set {
		return nil, notFound(ReasonGoalNotFound, "goal not found")
	}
	if g.Closed {
		return nil, conflict(ReasonGoalClosed, "the goal is closed")
	}
	// The checks that need the goal: the target against its figure, the
	// period as it would be after the revision.
	if cmd.Target != nil {
		figure, _ := LookupGoalFigure(g.Figure)
		out.Target = ptr(f.target("target", figure, *cmd.Target))
	}
	from, to := g.From, g.To
	if out.From != nil {
		from = *out.From
	}
	if out.To != nil {
		to = *out.To
	}
	if !to.After(from) {
		field := "to"
		if out.To == nil {
			field = "from"
		}
		f.add(field, "must leave to after from (the period is [from, to)); the goal runs from %s to %s",
			g.From.Format(time.RFC3339), g.To.Format(time.RFC3339))
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	// Record only what changes.
	if out.Name != nil && *out.Name == g.Name {
		out.Name = nil
	}
	if out.Comparator != nil && *out.Comparator == g.Comparator {
		out.Comparator = nil
	}
	if out.Target != nil && *out.Target == g.Target {
		out.Target = nil
	}
	if out.From != nil && out.From.Equal(g.From) {
		out.From = nil
	}
	if out.To != nil && out.To.Equal(g.To) {
		out.To = nil
	}
	if out.Scope != nil && *out.Scope == g.Scope {
		out.Scope = nil
	}
	if out.Name == nil && out.Comparator == nil && out.Target == nil && out.From == nil && out.To == nil && out.Scope == nil {
		return nil, nil
	}
	out.OccurredAt = now
	return []Event{out}, nil
}

func decideCloseGoal(g Goal, cmd CloseGoal, now time.Time) ([]Event, error) {
	var f fieldErrors
	reason := f.optional("reason", cmd.Reason, MaxLongTextLength)
	if err := f.err(); err != nil {
		return nil, err
	}
	if !g.Set {
		return nil, notFound(ReasonGoalNotFound, "goal not found")
	}
	if g.Closed {
		return nil, conflict(ReasonGoalClosed, "the goal is already closed")
	}
	return []Event{GoalClosed{Reason: reason, OccurredAt: now}}, nil
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// goalFigure checks a figure name.
func (f *fieldErrors) goalFigure(field, name string) (GoalFigure, bool) {
	figure, ok := LookupGoalFigure(name)
	if !ok {
		names := make([]string, len(goalFigures))
		for i, g := range goalFigures {
			names[i] = g.Name
		}
		f.add(field, "must be one of %s", strings.Join(names, ", "))
	}
	return figure, ok
}

func (f *fieldErrors) comparator(field string, c Comparator) {
	if !c.Valid() {
		f.add(field, "must be one of at_least, at_most")
	}
}

// target checks a target against its figure's range.
func (f *fieldErrors) target(field string, figure GoalFigure, v float64) float64 {
	switch {
	case !isFinite(v):
		f.add(field, "must be a finite number")
	case v < figure.Min || v > figure.Max:
		if math.IsInf(figure.Max, 1) {
			f.add(field, "must be at least %g for %s", figure.Min, figure.Name)
		} else {
			f.add(field, "must lie between %g and %g for %s", figure.Min, figure.Max, figure.Name)
		}
	}
	return v
}

// goalTime checks a required bound of a goal's period.
func (f *fieldErrors) goalTime(field string, t *time.Time) time.Time {
	if t == nil {
		f.add(field, "is required")
		return time.Time{}
	}
	if !TimeInRange(*t) {
		f.add(field, "must lie between 1900-01-01 and 9999-12-31 UTC")
		return time.Time{}
	}
	// The read models keep microseconds.
	return t.UTC().Truncate(time.Microsecond)
}

// scope checks a goal's scope: at most one group, each a valid label.
func (f *fieldErrors) scope(field string, s GoalScope) GoalScope {
	given := 0
	var out GoalScope
	if s.Segment != "" {
		given++
		out.Segment = f.label(field+".segment", s.Segment)
	}
	if s.Tier != "" {
		given++
		out.Tier = f.tier(field+".tier", s.Tier)
	}
	if s.Region != "" {
		given++
		out.Region = f.label(field+".region", s.Region)
	}
	if s.Owner != "" {
		given++
		out.Owner = f.required(field+".owner", s.Owner, MaxShortTextLength)
	}
	if given > 1 {
		f.add(field, "must name at most one of segment, tier, region, owner")
	}
	return out
}
