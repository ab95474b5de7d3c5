package analytics_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/cadence"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// cadenceScenario is a small CRM whose cadence figures are computed by
// hand below. Every customer is registered 2025-01-01; the cadence is the
// default (A 14 days, B 30, C 90, none 180), at most 3 outbound contacts in
// 7 days. At 2025-06-01T00:00Z, the end of the period March–May:
//
//	P  tier A  last contact 05-20            12 days: not due
//	Q  tier A  last contact 05-17T00:00      14 days 23:59:59 just before the end: not due
//	Q2 tier A  last contact 05-16T23:00      15 days: due
//	R  tier B  no contact                    due since 02-01 (registration + 31 days)
//	S  tier C  outbound 03-03, 03-05, 03-07, 03-09T23:59: 4 within [03-03, 03-10): over-contacted; 83 days: not due
//	T  no tier outbound 04-01, 04-03, 04-05, 04-08T00:00, inbound 04-04: at most 3 outbound in any 7 days; not due
//	U  tier A  outbound 02-01..02-04 (before the period), churned 05-01: not active at the end
//	V  tier B  outbound 05-28, 05-29, 05-30, 05-31: over-contacted; not due
type cadenceScenario struct {
	P, Q, Q2, R, S, T, U, V uuid.UUID
}

func buildCadenceScenario(s *sim) cadenceScenario {
	reg := func(name, tier string) uuid.UUID {
		return s.do(uuid.Nil, "2025-01-01T09:00:00Z", domain.RegisterCustomer{Name: name, Email: name + "@cadence.example", Tier: tier})
	}
	contact := func(id uuid.UUID, at string, dir domain.Direction) {
		occurred := simTime(at)
		s.do(id, at, domain.LogContact{Channel: domain.ChannelPhone, Direction: dir, Summary: "call", By: "carol", OccurredAt: &occurred})
	}
	var sc cadenceScenario
	sc.P, sc.Q, sc.Q2, sc.R = reg("p", "A"), reg("q", "A"), reg("q2", "A"), reg("r", "B")
	sc.S, sc.T, sc.U, sc.V = reg("s", "C"), reg("t", ""), reg("u", "A"), reg("v", "B")
	contact(sc.P, "2025-05-20T00:00:00Z", domain.DirectionOutbound)
	contact(sc.Q, "2025-05-17T00:00:00Z", domain.DirectionInbound)
	contact(sc.Q2, "2025-05-16T23:00:00Z", domain.DirectionOutbound)
	for _, at := range []string{"2025-03-03T00:00:00Z", "2025-03-05T00:00:00Z", "2025-03-07T00:00:00Z", "2025-03-09T23:59:00Z"} {
		contact(sc.S, at, domain.DirectionOutbound)
	}
	for _, at := range []string{"2025-04-01T00:00:00Z", "2025-04-03T00:00:00Z", "2025-04-05T00:00:00Z", "2025-04-08T00:00:00Z"} {
		contact(sc.T, at, domain.DirectionOutbound)
	}
	contact(sc.T, "2025-04-04T00:00:00Z", domain.DirectionInbound)
	for _, at := range []string{"2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z", "2025-02-03T00:00:00Z", "2025-02-04T00:00:00Z"} {
		contact(sc.U, at, domain.DirectionOutbound)
	}
	churned := simTime("2025-05-01T00:00:00Z")
	s.do(sc.U, "2025-05-01T00:00:00Z", domain.MarkChurned{Reason: "left", ChurnedAt: &churned})
	for _, at := range []string{"2025-05-28T00:00:00Z", "2025-05-29T00:00:00Z", "2025-05-30T00:00:00Z", "2025-05-31T00:00:00Z"} {
		contact(sc.V, at, domain.DirectionOutbound)
	}
	s.wait()
	return sc
}

// TestCadenceAdherenceAndOverContactByHand checks cadence_adherence
// (share of the customers active at the period's end not due for a
// contact then) and over_contacted (customers with more than 3 outbound
// contacts within some 7 days of the period) against the scenario's hand
// count: overall, by tier, by month, in the KPIs, and with another
// cadence and maximum, which change the answers without any rebuild.
func TestCadenceAdherenceAndOverContactByHand(t *testing.T) {
	m := apptest.MustOpen(t)
	s := &sim{t: t, m: m}
	buildCadenceScenario(s)
	period := analytics.Params{From: simTime("2025-03-01T00:00:00Z"), To: simTime("2025-06-01T00:00:00Z")}
	q := analytics.NewQueries(m.Pool, nil)
	report := func(q *analytics.Queries, f analytics.Family, p analytics.Params) map[string]analytics.Group {
		t.Helper()
		rep, err := q.Report(t.Context(), f, p)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]analytics.Group{}
		for _, g := range rep.Groups {
			k := "null"
			if g.Key != nil {
				k = *g.Key
			}
			out[k] = g
		}
		return out
	}
	check := func(what string, g analytics.Group, active, notDue, over int64) {
		t.Helper()
		if g.ActiveAtEnd != active || g.NotDue != notDue || g.OverContacted != over {
			t.Errorf("%s: active %d not due %d over %d, want %d %d %d", what, g.ActiveAtEnd, g.NotDue, g.OverContacted, active, notDue, over)
		}
		want := 100 * float64(notDue) / float64(active)
		if g.CadenceAdherence == nil || !near(*g.CadenceAdherence, want) {
			t.Errorf("%s: cadence_adherence %v, want %v", what, g.CadenceAdherence, want)
		}
	}
	// Active at the end: P Q Q2 R S T V; not due: P Q S T V; over: S V.
	check("all", report(q, analytics.Contacts, period)["all"], 7, 5, 2)
	kpi := report(q, analytics.KPIs, period)["all"]
	if kpi.CadenceAdherence == nil || !near(*kpi.CadenceAdherence, 500.0/7) || kpi.OverContacted != 2 {
		t.Errorf("kpis: adherence %v over %d", kpi.CadenceAdherence, kpi.OverContacted)
	}
	byTier := report(q, analytics.Contacts, analytics.Params{From: period.From, To: period.To, GroupBy: analytics.Tier})
	check("tier A", byTier["A"], 3, 2, 0)     // P Q not due, Q2 due; U churned
	check("tier B", byTier["B"], 2, 1, 1)     // R due, V not due and over
	check("tier C", byTier["C"], 1, 1, 1)     // S
	check("no tier", byTier["null"], 1, 1, 0) // T: 3 outbound in any 7 days is not more than 3
	// March, judged at 04-01: all 8 active; only S (C, 22 days) and T (no
	// tier, never contacted before 04-01, 89 days) are not due; S is
	// over-contacted in March, U's February contacts are not in it.
	byMonth := report(q, analytics.Contacts, analytics.Params{From: period.From, To: period.To, GroupBy: analytics.Month})
	check("2025-03", byMonth["2025-03"], 8, 2, 1)
	// April, at 05-01 (U churns at 05-01 and is active up to that end, as
	// contact coverage counts it): S 52 days (C) and T 22 days are not
	// due; no 7 days of April hold 4 outbound contacts.
	check("2025-04", byMonth["2025-04"], 8, 2, 0)
	check("2025-05", byMonth["2025-05"], 7, 5, 1)

	// Another cadence (A 20 days) makes Q2 not due; a maximum of 4 makes
	// nobody over-contacted: judged at query time, no rebuild.
	q2 := q.WithCadence(cadence.Cadence{A: 20 * 24 * time.Hour}, 4)
	check("A=20, max 4", report(q2, analytics.Contacts, period)["all"], 7, 6, 0)

	// The README's SQL gives the same headline figures for this history.
	got, _, _ := getReport(t, m, s, "kpis", scenarioPeriod)
	want := map[string]any{}
	for name, v := range got["all"] {
		if !slices.Contains(analytics.Columns(analytics.KPIs), name) {
			continue
		}
		if v == nil {
			want[name] = jsonNull
		} else {
			want[name] = v
		}
	}
	if want["over_contacted"] != 2.0 {
		t.Errorf("kpis over_contacted %v, want 2", want["over_contacted"])
	}
	checkReadmeSQL(t, m, want)
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// TestContactCadenceIsJudgedAtQueryTime: a customer's due_for_contact,
// contact_due_at and over_contacted, the list's due_for_contact filter
// and the contact-due queue move with the clock and the configuration,
// with the read model untouched.
func TestContactCadenceIsJudgedAtQueryTime(t *testing.T) {
	m := apptest.MustOpen(t)
	s := &sim{t: t, m: m}
	sc := buildCadenceScenario(s)
	at := func(ts string, opts ...customers.Option) *customers.Queries {
		// As the service configures them: the default cadence, judging
		// over-contact; opts override.
		opts = append([]customers.Option{customers.WithCadence(cadence.Cadence{}, 0)}, opts...)
		return customers.NewQueries(m.Pool, append(opts, customers.WithClock(func() time.Time { return simTime(ts) }))...)
	}
	get := func(q *customers.Queries, id uuid.UUID) customers.Customer {
		t.Helper()
		c, err := q.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Q's last contact is 05-17T00:00, tier A: due once 15 whole days have
	// passed, at 06-01T00:00.
	before, due := at("2025-05-31T23:59:59Z"), at("2025-06-01T00:00:00Z")
	if c := get(before, sc.Q); c.DueForContact || c.ContactDueAt == nil || !c.ContactDueAt.Equal(simTime("2025-06-01T00:00:00Z")) {
		t.Errorf("Q a second before: due %v at %v", c.DueForContact, c.ContactDueAt)
	}
	if c := get(due, sc.Q); !c.DueForContact {
		t.Errorf("Q at 06-01: not due (due at %v)", c.ContactDueAt)
	}
	if c := get(due, sc.U); c.DueForContact || c.ContactDueAt != nil {
		t.Errorf("churned U: due %v at %v", c.DueForContact, c.ContactDueAt)
	}
	// A cadence of 20 days for tier A: Q is not due any more, at once.
	if c := get(at("2025-06-01T00:00:00Z", customers.WithCadence(cadence.Cadence{A: 20 * 24 * time.Hour}, 0)), sc.Q); c.DueForContact ||
		!c.ContactDueAt.Equal(simTime("2025-06-07T00:00:00Z")) {
		t.Errorf("Q with A=20: due %v at %v", c.DueForContact, c.ContactDueAt)
	}
	// V: 4 outbound contacts 05-28..05-31. In the 7 days up to 06-01 they
	// are all there; up to 06-04 only 3 (05-28 is just out: the window is
	// (now − 168 h, now]).
	if c := get(due, sc.V); !c.OverContacted {
		t.Error("V at 06-01: not over-contacted")
	}
	if c := get(at("2025-06-04T00:00:00Z"), sc.V); c.OverContacted {
		t.Error("V at 06-04 (05-28 is out of the window): over-contacted")
	}
	if c := get(at("2025-06-01T00:00:00Z", customers.WithCadence(cadence.Cadence{}, 4)), sc.V); c.OverContacted {
		t.Error("V with a maximum of 4: over-contacted")
	}
	if c := get(due, sc.T); c.OverContacted {
		t.Error("T: over-contacted")
	}
	// The list's filter and the queue agree on who is due at 06-01: Q, Q2, R.
	yes := true
	page, err := due.List(t.Context(), customers.Filter{DueForContact: &yes}, 50, "")
	if err != nil {
		t.Fatal(err)
	}
	var listed []uuid.UUID
	for _, c := range page.Items {
		listed = append(listed, c.ID)
	}
	queue, err := work.NewQueries(m.Pool, work.WithClock(func() time.Time { return simTime("2025-06-01T00:00:00Z") })).
		ContactDue(t.Context(), work.Filter{}, 50, "")
	if err != nil {
		t.Fatal(err)
	}
	queued := map[uuid.UUID]bool{}
	for _, d := range queue.Items {
		queued[d.Customer.ID] = true
	}
	want := map[uuid.UUID]bool{sc.Q: true, sc.Q2: true, sc.R: true}
	if len(listed) != len(want) || len(queued) != len(want) {
		t.Errorf("listed %v, queued %v, want Q %s Q2 %s R %s", listed, queued, sc.Q, sc.Q2, sc.R)
	}
	for _, id := range listed {
		if !want[id] || !queued[id] {
			t.Errorf("%s listed (queued %v, want %v)", id, queued[id], want[id])
		}
	}
	no := false
	page, err = due.List(t.Context(), customers.Filter{DueForContact: &no}, 50, "")
	if err != nil || len(page.Items) != 5 { // P S T U V
		t.Errorf("not due: %d items, %v", len(page.Items), err)
	}
}
