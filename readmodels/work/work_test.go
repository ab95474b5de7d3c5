package work_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/risk"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// now is the fixed instant every queue is judged at.
var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// history writes commands at business times through the real command
// layer and waits for the projectors.
type history struct {
	t    *testing.T
	m    *apptest.Main
	last eventstore.Position
}

func (h *history) do(id uuid.UUID, at time.Time, cmd domain.Command) uuid.UUID {
	h.t.Helper()
	res, err := h.m.Commands.Handle(context.Background(), commands.Request{
		CustomerID: id, Command: cmd, CommandID: uuid.New(), Actor: "tester", CorrelationID: "work", At: at,
	})
	if err != nil {
		h.t.Fatalf("%T at %s: %v", cmd, at, err)
	}
	h.last = max(h.last, res.Position)
	if _, ok := cmd.(domain.RegisterCustomer); ok {
		return res.CustomerID
	}
	return res.CreatedID
}

func (h *history) register(at time.Time, segment, tier string) uuid.UUID {
	return h.do(uuid.Nil, at, domain.RegisterCustomer{Name: "C " + segment, Phone: "+1 555 0100", Segment: segment, Tier: tier, Region: "north"})
}

func (h *history) wait() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.m.Engine.WaitForPosition(ctx, h.last); err != nil {
		h.t.Fatal(err)
	}
}

// pages reads a whole queue limit rows at a time, checking that the pages
// join into the one-page answer.
func pages[T any](t *testing.T, limit int, read func(limit int, cursor string) (readmodel.Page[T], error)) []T {
	t.Helper()
	all, err := read(work.MaxLimit, "")
	if err != nil {
		t.Fatal(err)
	}
	if all.NextCursor != "" {
		t.Fatalf("more than %d rows", work.MaxLimit)
	}
	var joined []T
	cursor := ""
	for range 100 {
		p, err := read(limit, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) > limit {
			t.Fatalf("page of %d with limit %d", len(p.Items), limit)
		}
		joined = append(joined, p.Items...)
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if len(joined) != len(all.Items) {
		t.Fatalf("pages of %d give %d rows, one page %d", limit, len(joined), len(all.Items))
	}
	return all.Items
}

func TestComplaintQueue(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	h := &history{t: t, m: m}
	ca := h.register(now.Add(-48*time.Hour), "cq", "A")
	cb := h.register(now.Add(-48*time.Hour), "cq", "B")
	h.do(ca, now.Add(-47*time.Hour), domain.AssignTeamMember{Role: domain.RoleAccountManager, Member: "ann"})
	file := func(id uuid.UUID, sev domain.Severity, at time.Time) uuid.UUID {
		return h.do(id, at, domain.FileComplaint{Category: "billing", Severity: sev, Description: "d"})
	}
	// high is 4 h / 72 h, critical 1 h / 24 h, medium 8 h / 5 d.
	k1 := file(ca, domain.SeverityHigh, now.Add(-5*time.Hour))                // first response 1 h past: breached
	k2 := file(cb, domain.SeverityHigh, now.Add(-3*time.Hour-30*time.Minute)) // 30 min of 4 h left: at risk
	k3 := file(ca, domain.SeverityHigh, now.Add(-3*time.Hour))                // exactly 25 % left: not at risk
	k4 := file(cb, domain.SeverityCritical, now.Add(-10*time.Minute))         // acknowledged: resolution next
	h.do(cb, now.Add(-5*time.Minute), domain.AcknowledgeComplaint{ComplaintID: k4, By: "bob"})
	k5 := file(ca, domain.SeverityLow, now.Add(-24*time.Hour)) // resolved: not in the queue
	h.do(ca, now.Add(-23*time.Hour), domain.ResolveComplaint{ComplaintID: k5, By: "ann", Resolution: "r"})
	k6 := file(cb, domain.SeverityMedium, now.Add(-10*time.Hour)) // acknowledged late: breached
	h.do(cb, now.Add(-time.Hour), domain.AcknowledgeComplaint{ComplaintID: k6, By: "bob"})
	h.do(cb, now.Add(-time.Hour), domain.AssignComplaint{ComplaintID: k2, Assignee: "bob"})
	h.wait()

	q := work.NewQueries(m.Pool, work.WithClock(func() time.Time { return now }))
	ids := func(f work.ComplaintFilter) []uuid.UUID {
		t.Helper()
		f.Segment = "cq"
		rows := pages(t, 2, func(limit int, cursor string) (readmodel.Page[work.OpenComplaint], error) {
			return q.Complaints(t.Context(), f, limit, cursor)
		})
		out := make([]uuid.UUID, len(rows))
		for i, r := range rows {
			out[i] = r.ID
		}
		return out
	}
	for name, c := range map[string]struct {
		f    work.ComplaintFilter
		want []uuid.UUID
	}{
		"any, most urgent first": {work.ComplaintFilter{}, []uuid.UUID{k1, k2, k3, k4, k6}},
		"sla=any":                {work.ComplaintFilter{SLA: work.SLAAny}, []uuid.UUID{k1, k2, k3, k4, k6}},
		"breached":               {work.ComplaintFilter{SLA: work.SLABreached}, []uuid.UUID{k1, k6}},
		"at risk":                {work.ComplaintFilter{SLA: work.SLAAtRisk}, []uuid.UUID{k2}},
		"severity":               {work.ComplaintFilter{Severity: "high"}, []uuid.UUID{k1, k2, k3}},
		"assignee":               {work.ComplaintFilter{Assignee: "bob"}, []uuid.UUID{k2}},
		"tier":                   {work.ComplaintFilter{Filter: work.Filter{Tier: "A"}}, []uuid.UUID{k1, k3}},
		"owner":                  {work.ComplaintFilter{Filter: work.Filter{Owner: "ann"}}, []uuid.UUID{k1, k3}},
		"region":                 {work.ComplaintFilter{Filter: work.Filter{Region: "south"}}, nil},
	} {
		if got := ids(c.f); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
	// Each row's SLA state is complaints.Judge's; the next step and due time.
	p, err := q.Complaints(t.Context(), work.ComplaintFilter{Filter: work.Filter{Segment: "cq"}}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	byID := map[uuid.UUID]work.OpenComplaint{}
	for _, r := range p.Items {
		byID[r.ID] = r
	}
	check := func(id uuid.UUID, step string, due time.Time, breached, atRisk bool) {
		t.Helper()
		r := byID[id]
		if r.NextStep != step || !r.DueAt.Equal(due) || r.SLA.Breached() != breached || r.AtRisk != atRisk || r.SecondsLeft != int64(due.Sub(now)/time.Second) {
			t.Errorf("%s: %+v, want %s due %s breached %v at risk %v", id, r, step, due, breached, atRisk)
		}
	}
	check(k1, work.StepFirstResponse, now.Add(-time.Hour), true, false)
	check(k2, work.StepFirstResponse, now.Add(30*time.Minute), false, true)
	check(k3, work.StepFirstResponse, now.Add(time.Hour), false, false)
	check(k4, work.StepResolution, now.Add(-10*time.Minute+24*time.Hour), false, false)
	check(k6, work.StepResolution, now.Add(-10*time.Hour+5*24*time.Hour), true, false)

	// A moment later k3 is at risk; once its target passes it is breached.
	later := work.NewQueries(m.Pool, work.WithClock(func() time.Time { return now.Add(time.Second) }))
	if p, _ := later.Complaints(t.Context(), work.ComplaintFilter{Filter: work.Filter{Segment: "cq"}, SLA: work.SLAAtRisk}, 10, ""); len(p.Items) != 2 || p.Items[1].ID != k3 {
		t.Errorf("a second later, at risk: %+v", p.Items)
	}
	if _, err := q.Complaints(t.Context(), work.ComplaintFilter{}, 10, work.FollowUpsCursor.Encode(readmodel.Key{At: now})); err == nil {
		t.Error("took another queue's cursor")
	}
}

func TestFollowUpQueue(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	h := &history{t: t, m: m}
	f1 := h.register(now.Add(-10*24*time.Hour), "fq", "")
	f2 := h.register(now.Add(-10*24*time.Hour), "fq", "B")
	f3 := h.register(now.Add(-10*24*time.Hour), "fq", "")
	follow := func(id uuid.UUID, at, due time.Time, by string) uuid.UUID {
		return h.do(id, at, domain.ScheduleFollowUp{DueAt: due, By: by, Note: "call back"})
	}
	scheduled := now.Add(-5 * 24 * time.Hour)
	fa := follow(f1, scheduled, now.Add(-time.Hour), "ann")                             // overdue
	fb := follow(f1, scheduled, now, "bob")                                             // due now: today
	fc := follow(f1, scheduled, time.Date(2026, 3, 10, 23, 59, 59, 0, time.UTC), "bob") // the day's last second
	fd := follow(f1, scheduled, time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC), "ann")    // tomorrow: upcoming
	follow(f2, scheduled, now.Add(-2*24*time.Hour), "ann")                              // done by the contact below
	contactAt := now.Add(-4 * 24 * time.Hour)
	h.do(f2, contactAt, domain.LogContact{Channel: domain.ChannelPhone, Direction: domain.DirectionOutbound, Summary: "s", By: "ann", OccurredAt: &contactAt})
	fg := follow(f2, now.Add(-3*24*time.Hour), now.Add(3*24*time.Hour), "bob")
	follow(f3, scheduled, now.Add(-time.Hour), "ann") // erased: no one can work it
	h.do(f3, now.Add(-time.Hour), domain.EraseCustomerData{Reason: "request"})
	h.wait()

	q := work.NewQueries(m.Pool, work.WithClock(func() time.Time { return now }))
	read := func(f work.FollowUpFilter) []work.PendingFollowUp {
		t.Helper()
		f.Segment = "fq"
		return pages(t, 2, func(limit int, cursor string) (readmodel.Page[work.PendingFollowUp], error) {
			return q.FollowUps(t.Context(), f, limit, cursor)
		})
	}
	ids := func(rows []work.PendingFollowUp) []uuid.UUID {
		out := make([]uuid.UUID, len(rows))
		for i, r := range rows {
			out[i] = r.ID
		}
		return out
	}
	all := read(work.FollowUpFilter{})
	if got, want := ids(all), []uuid.UUID{fa, fb, fc, fd, fg}; !slices.Equal(got, want) {
		t.Fatalf("pending: %v, want %v", got, want)
	}
	for i, state := range []string{work.FollowUpOverdue, work.FollowUpDueToday, work.FollowUpDueToday, work.FollowUpUpcoming, work.FollowUpUpcoming} {
		if all[i].State != state || all[i].By == "" || all[i].Note == nil || !all[i].ScheduledAt.Before(now) {
			t.Errorf("row %d: %+v, want state %s", i, all[i], state)
		}
	}
	for name, c := range map[string]struct {
		f    work.FollowUpFilter
		want []uuid.UUID
	}{
		"overdue":   {work.FollowUpFilter{State: work.FollowUpOverdue}, []uuid.UUID{fa}},
		"due today": {work.FollowUpFilter{State: work.FollowUpDueToday}, []uuid.UUID{fb, fc}},
		"upcoming":  {work.FollowUpFilter{State: work.FollowUpUpcoming}, []uuid.UUID{fd, fg}},
		"by":        {work.FollowUpFilter{By: "bob"}, []uuid.UUID{fb, fc, fg}},
		"tier":      {work.FollowUpFilter{Filter: work.Filter{Tier: "B"}}, []uuid.UUID{fg}},
		"by, state": {work.FollowUpFilter{By: "ann", State: work.FollowUpUpcoming}, []uuid.UUID{fd}},
	} {
		if got := ids(read(c.f)); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
}

func TestContactDueQueue(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	h := &history{t: t, m: m}
	d := 24 * time.Hour
	d1 := h.register(now.Add(-15*d), "cd", "A")       // 15 whole days > 14: due since now
	h.register(now.Add(-15*d+time.Second), "cd", "A") // 14 days 23:59:59 is 14: not due
	d3 := h.register(now.Add(-200*d), "cd", "")       // no tier, 180: due since 19 days
	d4 := h.register(now.Add(-200*d), "cd", "C")      // contact 100 days ago, 90: due since 9 days
	d5 := h.register(now.Add(-200*d), "cd", "B")      // contact 10 days ago: not due
	d6 := h.register(now.Add(-200*d), "cd", "A")      // churned: not active
	contact := func(id uuid.UUID, at time.Time) {
		h.do(id, at, domain.LogContact{Channel: domain.ChannelEmail, Direction: domain.DirectionOutbound, Summary: "s", By: "ann", OccurredAt: &at})
	}
	contact(d4, now.Add(-100*d))
	contact(d5, now.Add(-10*d))
	h.do(d6, now.Add(-50*d), domain.MarkChurned{Reason: "gone"})
	h.do(d1, now.Add(-14*d), domain.AssignTeamMember{Role: domain.RoleSales, Member: "sam"})
	h.wait()

	read := func(q *work.Queries, f work.Filter) []work.ContactDue {
		t.Helper()
		f.Segment = "cd"
		return pages(t, 1, func(limit int, cursor string) (readmodel.Page[work.ContactDue], error) {
			return q.ContactDue(t.Context(), f, limit, cursor)
		})
	}
	ids := func(rows []work.ContactDue) []uuid.UUID {
		out := make([]uuid.UUID, len(rows))
		for i, r := range rows {
			out[i] = r.Customer.ID
		}
		return out
	}
	q := work.NewQueries(m.Pool, work.WithClock(func() time.Time { return now }))
	rows := read(q, work.Filter{})
	if got, want := ids(rows), []uuid.UUID{d3, d4, d1}; !slices.Equal(got, want) {
		t.Fatalf("due: %v, want %v", got, want)
	}
	for i, want := range []struct {
		cadence, overdue int
		since            time.Time
	}{{180, 19, now.Add(-19 * d)}, {90, 9, now.Add(-9 * d)}, {14, 0, now}} {
		if r := rows[i]; r.CadenceDays != want.cadence || r.DaysOverdue != want.overdue || !r.DueSince.Equal(want.since) {
			t.Errorf("row %d: %+v, want %+v", i, r, want)
		}
	}
	if rows[1].LastContactAt == nil || rows[0].LastContactAt != nil {
		t.Errorf("last contacts: %v, %v", rows[0].LastContactAt, rows[1].LastContactAt)
	}
	if got := ids(read(q, work.Filter{Tier: "A"})); !slices.Equal(got, []uuid.UUID{d1}) {
		t.Errorf("tier A: %v", got)
	}
	if got := ids(read(q, work.Filter{Owner: "sam"})); !slices.Equal(got, []uuid.UUID{d1}) {
		t.Errorf("owner: %v", got)
	}
	// The cadence is configurable: A at 20 days is not due yet.
	custom := work.NewQueries(m.Pool, work.WithClock(func() time.Time { return now }), work.WithCadence(work.Cadence{A: 20 * d}))
	if got := ids(read(custom, work.Filter{})); !slices.Equal(got, []uuid.UUID{d3, d4}) {
		t.Errorf("A=20 days: %v", got)
	}
}

func TestAtRiskQueue(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	h := &history{t: t, m: m}
	d := 24 * time.Hour
	survey := func(id uuid.UUID, csat, nps *int) {
		at := now.Add(-d)
		h.do(id, at, domain.RecordSurvey{CSAT: csat, NPS: nps, AnsweredAt: &at})
	}
	one, two, three := 1, 2, 3
	r1 := h.register(now.Add(-100*d), "ar", "A") // 30 (no contact for 100 days) + 20 (NPS 3) = 50
	survey(r1, nil, &three)
	r2 := h.register(now.Add(-100*d), "ar", "B") // 30 + 20 (CSAT 1) + 20 (NPS 2) = 70
	survey(r2, &one, &two)
	h.register(now.Add(-10*d), "ar", "A")        // 0
	r4 := h.register(now.Add(-100*d), "ar", "A") // churned: no score
	survey(r4, &one, &two)
	h.do(r4, now.Add(-d), domain.MarkChurned{Reason: "gone"})
	r5 := h.register(now.Add(-100*d), "ar", "A") // 50, as r1
	survey(r5, nil, &two)
	h.wait()

	q := work.NewQueries(m.Pool, work.WithClock(func() time.Time { return now }))
	read := func(f work.AtRiskFilter) []work.AtRisk {
		t.Helper()
		f.Segment = "ar"
		return pages(t, 1, func(limit int, cursor string) (readmodel.Page[work.AtRisk], error) {
			return q.AtRisk(t.Context(), f, limit, cursor)
		})
	}
	ids := func(rows []work.AtRisk) []uuid.UUID {
		out := make([]uuid.UUID, len(rows))
		for i, r := range rows {
			out[i] = r.Customer.ID
		}
		return out
	}
	medium := []uuid.UUID{r1, r5}
	slices.SortFunc(medium, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	rows := read(work.AtRiskFilter{})
	if got, want := ids(rows), append([]uuid.UUID{r2}, medium...); !slices.Equal(got, want) {
		t.Fatalf("at risk: %v, want %v", got, want)
	}
	want := risk.Risk{Score: 70, Level: risk.LevelHigh, Factors: []risk.Factor{{Factor: risk.FactorDaysSinceContact, Points: 30},
		{Factor: risk.FactorLowCSAT, Points: 20}, {Factor: risk.FactorLowNPS, Points: 20}}}
	if !reflect.DeepEqual(rows[0].Risk, want) {
		t.Errorf("r2: %+v, want %+v", rows[0].Risk, want)
	}
	if rows[1].Risk.Score != 50 || rows[1].Risk.Level != risk.LevelMedium {
		t.Errorf("r1/r5: %+v", rows[1].Risk)
	}
	// The score is GET /v1/customers/{id}'s.
	c, err := customers.NewQueries(m.Pool, customers.WithClock(func() time.Time { return now })).Get(t.Context(), r2)
	if err != nil || !reflect.DeepEqual(*c.ChurnRisk, want) {
		t.Errorf("the directory's score of r2: %+v (%v)", c.ChurnRisk, err)
	}
	if got := ids(read(work.AtRiskFilter{Level: risk.LevelHigh})); !slices.Equal(got, []uuid.UUID{r2}) {
		t.Errorf("high: %v", got)
	}
	if got := ids(read(work.AtRiskFilter{Level: risk.LevelMedium})); !slices.Equal(got, medium) {
		t.Errorf("medium: %v", got)
	}
	if got := ids(read(work.AtRiskFilter{Filter: work.Filter{Tier: "A"}})); !slices.Equal(got, medium) {
		t.Errorf("tier A: %v", got)
	}
}
