package work_test

import (
	"errors"
	"testing"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// TestReads: before any read model exists every queue is ErrNotReady (the
// API's 503), and on a database holding only the tables of the projectors
// Reads names, every queue answers, with each filter.
func TestReads(t *testing.T) {
	t.Parallel()
	directory, err := customers.NewProjector(customers.Config{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]projections.Projector{customers.Name: directory, complaints.Name: complaints.NewProjector(), contacts.Name: contacts.NewProjector()}
	f := work.Filter{Segment: "s", Tier: "A", Region: "r", Owner: "o"}
	queues := func(q *work.Queries) map[string]error {
		ctx := t.Context()
		out := map[string]error{}
		for _, sla := range []string{"", work.SLABreached, work.SLAAtRisk} {
			_, out["complaints "+sla] = q.Complaints(ctx, work.ComplaintFilter{Filter: f, SLA: sla, Severity: "high", Assignee: "a"}, 10, "")
		}
		for _, state := range []string{"", work.FollowUpOverdue, work.FollowUpDueToday, work.FollowUpUpcoming} {
			_, out["follow-ups "+state] = q.FollowUps(ctx, work.FollowUpFilter{Filter: f, State: state, By: "b"}, 10, "")
		}
		_, out["contact-due"] = q.ContactDue(ctx, f, 10, "")
		for _, level := range []string{"", "high", "medium"} {
			_, out["at-risk "+level] = q.AtRisk(ctx, work.AtRiskFilter{Filter: f, Level: level}, 10, "")
		}
		return out
	}
	none := work.NewQueries(apptest.ReadModels(t))
	for name, err := range queues(none) {
		if !errors.Is(err, readmodel.ErrNotReady) {
			t.Errorf("%s before setup: %v, want ErrNotReady", name, err)
		}
	}
	var projectors []projections.Projector
	for _, name := range none.Reads() {
		p, ok := byName[name]
		if !ok {
			t.Fatalf("reads %q, which is no read model", name)
		}
		projectors = append(projectors, p)
	}
	for name, err := range queues(work.NewQueries(apptest.ReadModels(t, projectors...))) {
		if err != nil {
			t.Errorf("%s reading only %v: %v", name, none.Reads(), err)
		}
	}
	// A bad request is refused before any read.
	if _, err := none.Complaints(t.Context(), work.ComplaintFilter{SLA: "late"}, 10, ""); !errors.Is(err, work.ErrBadRequest) {
		t.Errorf("sla late: %v", err)
	}
	if _, err := none.AtRisk(t.Context(), work.AtRiskFilter{}, work.MaxLimit+1, ""); !errors.Is(err, work.ErrBadRequest) {
		t.Errorf("limit: %v", err)
	}
}
