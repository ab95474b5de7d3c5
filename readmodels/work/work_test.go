package work_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
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
