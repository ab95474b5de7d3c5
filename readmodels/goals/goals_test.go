package goals_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/audit"
	"github.com/rapport-crm/rapport/readmodels/goals"
)

// sim decides customer and goal commands at simulated business times
// through the real command layer, as the analytics figure tests do.
type sim struct {
	t    *testing.T
	m    *apptest.Main
	last eventstore.Position
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func (s *sim) do(id uuid.UUID, at string, cmd domain.Command) uuid.UUID {
	s.t.Helper()
	res, err := s.m.Commands.Handle(context.Background(), commands.Request{CustomerID: id, Command: cmd, CommandID: uuid.New(), Actor: "tester", At: ts(at)})
	if err != nil {
		s.t.Fatalf("%T at %s: %v", cmd, at, err)
	}
	s.last = max(s.last, res.Position)
	if _, ok := cmd.(domain.RegisterCustomer); ok {
		return res.CustomerID
	}
	return res.CreatedID
}

func (s *sim) goal(id uuid.UUID, at string, cmd domain.GoalCommand) uuid.UUID {
	s.t.Helper()
	res, err := s.m.Goals.Handle(context.Background(), commands.GoalRequest{GoalID: id, Command: cmd, CommandID: uuid.New(), Actor: "analyst-ana", At: ts(at)})
	if err != nil {
		s.t.Fatalf("%T at %s: %v", cmd, at, err)
	}
	s.last = max(s.last, res.Position)
	return res.GoalID
}

func (s *sim) wait() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.m.Engine.WaitForPosition(ctx, s.last); err != nil {
		s.t.Fatal(err)
	}
}

func setGoal(name, figure string, c domain.Comparator, target float64, from, to string, scope domain.GoalScope) domain.SetGoal {
	return domain.SetGoal{Name: name, Figure: figure, Comparator: c, Target: &target, From: refTime(ts(from)), To: refTime(ts(to)), Scope: scope}
}

func refTime(t time.Time) *time.Time { return &t }

func csat(v int) *int { return &v }

// TestGoalAnswersAreComputedAsDefined builds a small CRM whose figures are
// worked out by hand below, sets goals in each status and checks their
// baseline, current, progress and status at a fixed instant.
//
// Customers A, B (smb) and C, D (enterprise) registered 2024-12-01.
// Surveys (CSAT): Q1 2025 — A 3, B 4, C 5, D 2 (2 of 4 are 4 or 5: 50 %,
// smb 1 of 2: 50 %); Q2 up to now (2025-05-16) — A 5, B 5, C 4, D 1, A 2
// (3 of 5: 60 %; smb 2 of 3: 66.67 %); one more, C 5 on 2025-05-20, lies
// after now and must not count. D churns 2025-04-10: churn rate over
// [2025-04-01, now) = 1 of 4 active at the start = 25 %, and 0 % over the
// baseline before it.
func TestGoalAnswersAreComputedAsDefined(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	s := &sim{t: t, m: m}
	phone := 0
	reg := func(name, segment string) uuid.UUID {
		phone++
		return s.do(uuid.Nil, "2024-12-01T09:00:00Z", domain.RegisterCustomer{Name: name, Phone: "+44 20 7946 010" + string(rune('0'+phone)), Segment: segment})
	}
	a, b, c, d := reg("A", "smb"), reg("B", "smb"), reg("C", "enterprise"), reg("D", "enterprise")
	survey := func(id uuid.UUID, at string, v int) {
		s.do(id, at, domain.RecordSurvey{CSAT: csat(v), Channel: domain.ChannelEmail})
	}
	survey(a, "2025-01-15T10:00:00Z", 3)
	survey(b, "2025-02-10T10:00:00Z", 4)
	survey(c, "2025-03-01T10:00:00Z", 5)
	survey(d, "2025-03-20T10:00:00Z", 2)
	survey(a, "2025-04-02T10:00:00Z", 5)
	survey(b, "2025-04-03T10:00:00Z", 5)
	survey(c, "2025-04-04T10:00:00Z", 4)
	survey(d, "2025-04-05T10:00:00Z", 1)
	survey(a, "2025-05-10T10:00:00Z", 2)
	survey(c, "2025-05-20T10:00:00Z", 5)
	s.do(d, "2025-04-10T12:00:00Z", domain.MarkChurned{Reason: "budget"})

	const q2, q2end, q1, q1end = "2025-04-01T00:00:00Z", "2025-07-01T00:00:00Z", "2025-01-01T00:00:00Z", "2025-04-01T00:00:00Z"
	atRisk := s.goal(uuid.Nil, "2025-03-25T09:00:00Z", setGoal("CSAT 90 % in Q2", "csat_pct", domain.AtLeast, 90, q2, q2end, domain.GoalScope{}))
	onTrack := s.goal(uuid.Nil, "2025-03-25T09:00:00Z", setGoal("SMB CSAT 60 % in Q2", "csat_pct", domain.AtLeast, 60, q2, q2end, domain.GoalScope{Segment: "smb"}))
	churn := s.goal(uuid.Nil, "2025-03-25T09:00:00Z", setGoal("Churn under 30 % in Q2", "churn_rate", domain.AtMost, 30, q2, q2end, domain.GoalScope{}))
	met := s.goal(uuid.Nil, "2024-12-20T09:00:00Z", setGoal("CSAT 50 % in Q1", "csat_pct", domain.AtLeast, 50, q1, q1end, domain.GoalScope{}))
	missed := s.goal(uuid.Nil, "2024-12-20T09:00:00Z", setGoal("CSAT 75 % in Q1", "csat_pct", domain.AtLeast, 75, q1, q1end, domain.GoalScope{}))
	s.wait()

	now := ts("2025-05-16T00:00:00Z")
	clock := func() time.Time { return now }
	q := goals.NewQueries(m.Pool, analytics.NewQueries(m.Pool, nil).WithClock(clock)).WithClock(clock)
	elapsed := 100 * 45.0 / 91.0
	want := map[uuid.UUID]struct {
		baseline, current, progress, projected *float64
		status                                 goals.Status
		elapsed                                float64
	}{
		// 50 → 60 of the way to 90: 25 %; the trend 50 + 10 ÷ 0.4945 = 70.2 misses 90.
		atRisk: {f(50), f(60), f(25), f(50 + 10/(elapsed/100)), goals.AtRisk, elapsed},
		// 66.67 meets 60 now.
		onTrack: {f(50), f(200.0 / 3), f(100), f(50 + (200.0/3-50)/(elapsed/100)), goals.OnTrack, elapsed},
		// 25 % ≤ 30 % now (the pace, 25 ÷ 0.4945 = 50.6 %, is over it, but met now is on track).
		churn: {f(0), f(25), f(100), f(25 / (elapsed / 100)), goals.OnTrack, elapsed},
		// Q1: no surveys in the 90 days before it; 50 % over Q1.
		met:    {nil, f(50), f(100), nil, goals.Met, 100},
		missed: {nil, f(50), nil, nil, goals.Missed, 100},
	}
	for id, w := range want {
		g, err := q.Goal(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !near(g.Baseline, w.baseline) || !near(g.Current, w.current) || !near(g.Progress, w.progress) || g.Status != w.status ||
			!near(g.Projected, w.projected) || math.Abs(g.ElapsedPct-w.elapsed) > 1e-9 {
			t.Errorf("%s: baseline %s current %s progress %s projected %s status %s elapsed %g;\nwant baseline %s current %s progress %s projected %s status %s elapsed %g",
				g.Name, show(g.Baseline), show(g.Current), show(g.Progress), show(g.Projected), g.Status, g.ElapsedPct,
				show(w.baseline), show(w.current), show(w.progress), show(w.projected), w.status, w.elapsed)
		}
		if g.SetBy != "analyst-ana" || g.Closed || g.Revision != 0 {
			t.Errorf("%s: set_by %q closed %v revision %d", g.Name, g.SetBy, g.Closed, g.Revision)
		}
	}

	// Every figure a goal may be on answers what the analytics answer for
	// the same window and group, grouped or not.
	for _, fig := range domain.GoalFigures() {
		for _, scope := range []domain.GoalScope{{}, {Segment: "smb"}, {Segment: "nobody"}} {
			w := goals.Window{From: ts(q2), To: now}
			got, err := q.Figure(t.Context(), fig.Name, scope, w)
			if err != nil {
				t.Fatal(err)
			}
			attr, value := scope.Attribute()
			rep, err := analytics.NewQueries(m.Pool, nil).WithClock(clock).Report(t.Context(), analytics.KPIs, analytics.Params{From: w.From, To: w.To, GroupBy: analytics.GroupBy(attr)})
			if err != nil {
				t.Fatal(err)
			}
			// A group the report lacks has the figures of no data.
			group := &analytics.Group{}
			for i := range rep.Groups {
				if k := rep.Groups[i].Key; attr == "" || (k != nil && *k == value) {
					group = &rep.Groups[i]
				}
			}
			var wantV *float64
			switch v := group.Figure(fig.Name).(type) {
			case *float64:
				wantV = v
			case int64:
				wantV = f(float64(v))
			}
			if !near(got, wantV) {
				t.Errorf("%s scope %+v: goal figure %s, analytics %s", fig.Name, scope, show(got), show(wantV))
			}
		}
	}

	// A goal revised and then closed answers its new target and closed
	// state; the list shows open goals by default.
	s.goal(atRisk, "2025-05-01T09:00:00Z", domain.ReviseGoal{Target: f(65)})
	s.goal(missed, "2025-05-01T09:00:00Z", domain.CloseGoal{Reason: "superseded"})
	s.wait()
	g, err := q.Goal(t.Context(), atRisk)
	if err != nil || g.Target != 65 || g.Status != goals.OnTrack || !near(g.Progress, f(100*10.0/15)) || g.Revision != 1 {
		t.Errorf("revised goal: %+v %v", g, err)
	}
	page, err := q.Goals(t.Context(), goals.ListParams{}, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 4 {
		t.Errorf("open goals: %d, want 4", len(page.Items))
	}
	page, err = q.Goals(t.Context(), goals.ListParams{State: goals.StateClosed}, "", 10)
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != missed || page.Items[0].CloseReason == nil || *page.Items[0].CloseReason != "superseded" {
		t.Errorf("closed goals: %+v %v", page.Items, err)
	}
	// Paging: two at a time through all five, the latest set first.
	var seen []uuid.UUID
	cursor := ""
	for {
		p, err := q.Goals(t.Context(), goals.ListParams{State: goals.StateAll}, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range p.Items {
			seen = append(seen, g.ID)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if len(seen) != 5 {
		t.Errorf("paged through %d goals, want 5", len(seen))
	}
}

// TestGoalHistoryAndReconciliation: goal events share the log with
// customers' without any customer projector parking on them; the goals
// read model equals the fold of each goal's stream, reconciles with the
// log, and comes back the same after a rebuild; the auditor reads each
// goal's events with their metadata and an intact chain.
func TestGoalHistoryAndReconciliation(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	m.Generate(t, 11, 300)
	s := &sim{t: t, m: m}
	var ids []uuid.UUID
	for i := range 6 {
		from := time.Date(2025, time.Month(1+i), 1, 0, 0, 0, 0, time.UTC)
		ids = append(ids, s.goal(uuid.Nil, "2024-12-01T00:00:00Z", domain.SetGoal{Name: "goal", Figure: domain.GoalFigures()[i].Name, Comparator: domain.AtLeast,
			Target: f(domain.GoalFigures()[i].Min), From: &from, To: refTime(from.AddDate(0, 3, 0)), Scope: domain.GoalScope{Tier: "A"}}))
	}
	s.goal(ids[0], "2024-12-02T00:00:00Z", domain.ReviseGoal{Name: refString("renamed"), Scope: &domain.GoalScope{}, To: refTime(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))})
	s.goal(ids[1], "2024-12-02T00:00:00Z", domain.ReviseGoal{Comparator: refComparator(domain.AtMost), Scope: &domain.GoalScope{Owner: "alice"}})
	s.goal(ids[2], "2024-12-03T00:00:00Z", domain.CloseGoal{Reason: "no longer relevant"})
	m.Generate(t, 12, 200)
	s.wait()

	check := func(when string) {
		t.Helper()
		for _, id := range ids {
			recs, err := m.Store.ReadStream(t.Context(), domain.GoalStreamName(id), eventstore.ReadStreamOptions{Direction: eventstore.Forwards, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var state domain.Goal
			for _, rec := range recs {
				d, err := m.Codec.Decode(t.Context(), rec)
				if err != nil {
					t.Fatal(err)
				}
				state = domain.EvolveGoal(state, d.Event)
			}
			var (
				name, figure, comparator, segment, tier, region, owner string
				target                                                 float64
				from, to                                               time.Time
				closed                                                 bool
				revision                                               int64
			)
			err = m.Pool.QueryRow(t.Context(), `SELECT name, figure, comparator, target, period_from, period_to, coalesce(scope_segment, ''),
				coalesce(scope_tier, ''), coalesce(scope_region, ''), coalesce(scope_owner, ''), closed, revision FROM readmodels.goals WHERE goal_id = $1`, id).
				Scan(&name, &figure, &comparator, &target, &from, &to, &segment, &tier, &region, &owner, &closed, &revision)
			if err != nil {
				t.Fatalf("%s: goal %s: %v", when, id, err)
			}
			row := domain.Goal{ID: id, Set: true, Name: name, Figure: figure, Comparator: domain.Comparator(comparator), Target: target,
				From: from.UTC(), To: to.UTC(), Scope: domain.GoalScope{Segment: segment, Tier: tier, Region: region, Owner: owner}, Closed: closed}
			fold := state
			fold.SetAt, fold.RevisedAt, fold.ClosedAt, fold.CloseReason = time.Time{}, time.Time{}, time.Time{}, ""
			if row != fold || revision != int64(len(recs)-1) {
				t.Errorf("%s: the row of %s is %+v (revision %d), the fold %+v (revision %d)", when, id, row, revision, fold, len(recs)-1)
			}
		}
		report, err := m.Engine.Verify(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range report.Projectors {
			if !pr.OK() || len(pr.Parked) > 0 || pr.Streams == 0 {
				t.Errorf("%s: %s does not reconcile: %+v", when, pr.Name, pr)
			}
			if pr.Name == goals.Name && pr.Streams != len(ids) {
				t.Errorf("%s: goals reconciled %d streams, want %d", when, pr.Streams, len(ids))
			}
		}
		statuses, err := m.Engine.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range statuses {
			if len(st.Parked) > 0 {
				t.Errorf("%s: %s parked %+v", when, st.Name, st.Parked)
			}
		}
	}
	check("projected")
	m.Rebuild(t, goals.Name)
	check("after a rebuild")

	auditor := audit.New(m.Store, m.Codec)
	h, err := auditor.History(t.Context(), domain.GoalStreamName(ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !h.Verification.Intact || len(h.Events) != 2 || h.Events[0].Type != domain.TypeGoalSet || h.Events[1].Type != domain.TypeGoalRevised ||
		h.Events[1].Actor != "analyst-ana" || h.Events[1].PrevHash != h.Events[0].Hash || h.Events[0].CausationID == uuid.Nil {
		t.Errorf("history: %+v", h)
	}
	if _, err := auditor.History(t.Context(), domain.GoalStreamName(uuid.New())); !errors.Is(err, audit.ErrStreamNotFound) {
		t.Errorf("unknown goal: %v", err)
	}
}

func refString(s string) *string { return &s }

func refComparator(c domain.Comparator) *domain.Comparator { return &c }
