package routing_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/routing"
)

// TestRoundRobinPoolsAreFair: a pool rule hands its complaints to its
// members in turn — 9 complaints to a pool of 3 are 3 each, in order —
// across a restart of the policy in the middle; a new version of the rules
// starts its own turns; customers are matched on their classification at
// the time of the filing; a complaint no rule matches, or filed before any
// rules, stays unassigned.
func TestRoundRobinPoolsAreFair(t *testing.T) {
	e := newEnv(t)
	early := e.customer("early", "smb", "A", "emea")
	kEarly := e.file(early, domain.SeverityHigh, "billing") // before any rules
	e.setRules(
		domain.RoutingRule{Name: "emea-smb", Segments: []string{"smb"}, Regions: []string{"emea"}, Pool: []string{"bob", "carol", "dave"}},
		domain.RoutingRule{Name: "amer", Regions: []string{"amer"}, Assignee: "erin"},
	)
	e.start(func(func()) routing.Assigner { return e.guarded() })
	var customers []uuid.UUID
	for i := range 9 {
		customers = append(customers, e.customer("c"+string(rune('a'+i)), "smb", "B", "emea"))
	}
	other := e.customer("other", "enterprise", "C", "apac")
	moved := e.customer("moved", "smb", "B", "emea")
	amer := "amer"
	e.do(moved, domain.ClassifyCustomer{Region: &amer}, "tester") // classified before its complaint: the amer rule
	var ks []uuid.UUID
	for i := range 4 {
		ks = append(ks, e.file(customers[i], domain.SeverityLow, "delivery"))
	}
	e.wait()
	// A restart in the middle: the turns are the policy's committed state.
	e.stop()
	e.newProcess()
	e.start(func(func()) routing.Assigner { return e.guarded() })
	for i := 4; i < 9; i++ {
		ks = append(ks, e.file(customers[i], domain.SeverityLow, "delivery"))
	}
	kOther := e.file(other, domain.SeverityCritical, "billing")
	kMoved := e.file(moved, domain.SeverityLow, "delivery")
	e.wait()

	owner := func(customer, complaint uuid.UUID) (string, string) {
		t.Helper()
		hist, _ := e.history(customer)
		var who, actor string
		for _, h := range hist {
			if h.complaint == complaint {
				who, actor = h.assignee, h.actor
			}
		}
		return who, actor
	}
	counts := map[string]int{}
	for i, k := range ks {
		who, actor := owner(customers[i], k)
		if want := []string{"bob", "carol", "dave"}[i%3]; who != want || actor != "routing:v1:emea-smb" {
			t.Errorf("complaint %d: %s by %s, want %s by routing:v1:emea-smb", i, who, actor, want)
		}
		counts[who]++
	}
	if counts["bob"] != 3 || counts["carol"] != 3 || counts["dave"] != 3 {
		t.Errorf("shares %v, want 3 each", counts)
	}
	if who, actor := owner(moved, kMoved); who != "erin" || actor != "routing:v1:amer" {
		t.Errorf("reclassified customer: %s by %s", who, actor)
	}
	if who, _ := owner(other, kOther); who != "" {
		t.Errorf("unmatched complaint assigned to %s", who)
	}
	if who, _ := owner(early, kEarly); who != "" {
		t.Errorf("complaint filed before the rules assigned to %s", who)
	}
	q := routing.NewQueries(e.pool, e.store, e.codec)
	for k, want := range map[uuid.UUID]string{kOther: routing.OutcomeUnmatched, kEarly: routing.OutcomeNoRules, kMoved: routing.OutcomeAssigned} {
		if d, ok, err := q.Decision(context.Background(), k); err != nil || !ok || d.Outcome != want {
			t.Errorf("decision %+v %v %v, want %s", d, ok, err, want)
		}
	}

	// Version 2 (the pool reordered): its turns start again at its first
	// member.
	if v := e.setRules(domain.RoutingRule{Name: "emea-smb", Segments: []string{"smb"}, Pool: []string{"dave", "bob"}}); v != 2 {
		t.Fatalf("version %d", v)
	}
	k := e.file(customers[0], domain.SeverityLow, "delivery")
	k2 := e.file(customers[1], domain.SeverityLow, "delivery")
	e.wait()
	if who, actor := owner(customers[0], k); who != "dave" || actor != "routing:v2:emea-smb" {
		t.Errorf("v2 first: %s by %s", who, actor)
	}
	if who, _ := owner(customers[1], k2); who != "bob" {
		t.Errorf("v2 second: %s", who)
	}
	versions, err := q.Versions(context.Background())
	if err != nil || len(versions) != 2 || versions[1].Version != 2 || versions[1].SetBy != "admin" || versions[0].Rules[1].Assignee != "erin" {
		t.Errorf("versions %+v %v", versions, err)
	}
}
