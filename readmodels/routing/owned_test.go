package routing_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/routing"
)

// TestThePolicyNeverTakesAComplaintFromItsOwner: a complaint someone
// assigned before the policy came to its filing keeps that owner, whether
// the policy lagged (stopped while the filing and the assignment were
// made), was restarted in a new process, or was rebuilt from the start of
// the log after people had re-assigned what it had routed. Every history
// holds one rule assignment at most per complaint.
func TestThePolicyNeverTakesAComplaintFromItsOwner(t *testing.T) {
	e := newEnv(t)
	e.setRules(domain.RoutingRule{Name: "all", Assignee: "alice"})
	a := e.customer("ada", "enterprise", "A", "emea")
	// The policy is not running: it lags behind these.
	owned := e.file(a, domain.SeverityHigh, "billing")
	e.do(a, domain.AssignComplaint{ComplaintID: owned, Assignee: "zoe"}, "tester")
	free := e.file(a, domain.SeverityLow, "delivery")

	e.start(func(func()) routing.Assigner { return e.guarded() })
	e.wait()
	rule := "routing:v1:all"
	want := []assigned{{owned, "zoe", "tester", uuid.Nil, 0}, {free, "alice", rule, uuid.Nil, 0}}
	e.checkAssignments(a, want)
	q := routing.NewQueries(e.pool, e.store, e.codec)
	e.checkOutcomes(q, map[uuid.UUID]string{owned: routing.OutcomeUnchanged, free: routing.OutcomeAssigned})

	// People re-assign both; a new process starts; then the policy is
	// rebuilt from the start of the log and meets both filings again.
	e.do(a, domain.AssignComplaint{ComplaintID: free, Assignee: "yuri"}, "tester")
	e.do(a, domain.AssignComplaint{ComplaintID: owned, Assignee: "xena"}, "tester")
	e.stop()
	e.newProcess()
	e.start(func(func()) routing.Assigner { return e.guarded() })
	e.wait()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := e.eng.Rebuild(ctx, routing.Name, nil); err != nil {
		t.Fatal(err)
	}
	e.wait()
	want = append(want, assigned{free, "yuri", "tester", uuid.Nil, 0}, assigned{owned, "xena", "tester", uuid.Nil, 0})
	e.checkAssignments(a, want)
	e.checkOutcomes(q, map[uuid.UUID]string{owned: routing.OutcomeUnchanged, free: routing.OutcomeReplayed})
}

// TestAFailoverAssignsEachComplaintOnce runs the policy in two processes
// at once (a replica on standby, as in a rolling deploy), files
// complaints, kills the active one in the middle and lets the other take
// over: each complaint is assigned by a rule exactly once.
func TestAFailoverAssignsEachComplaintOnce(t *testing.T) {
	e := newEnv(t)
	e.setRules(domain.RoutingRule{Name: "pool", Pool: []string{"bob", "carol"}})
	customers := []uuid.UUID{e.customer("c1", "smb", "B", "emea"), e.customer("c2", "smb", "B", "emea")}
	e.start(func(func()) routing.Assigner { return e.guarded() })
	first := e.stop
	// The replica: its own command handler and engine over the same
	// database.
	replica := &env{t: t, pool: e.pool, store: e.store, keys: e.keys, codec: e.codec}
	replica.newProcess()
	replica.start(func(func()) routing.Assigner { return replica.guarded() })
	defer replica.stop()

	var ks []uuid.UUID
	for i := range 20 {
		ks = append(ks, e.file(customers[i%2], domain.SeverityLow, fmt.Sprint("cat-", i)))
		if i == 9 {
			first() // the active process dies; the replica takes over
		}
	}
	replica.last = e.last
	replica.wait()
	perComplaint := map[uuid.UUID]int{}
	for _, c := range customers {
		hist, _ := e.history(c)
		for _, h := range hist {
			if h.actor != "routing:v1:pool" {
				t.Errorf("assignment by %s", h.actor)
			}
			perComplaint[h.complaint]++
		}
	}
	for i, k := range ks {
		if perComplaint[k] != 1 {
			t.Errorf("complaint %d assigned %d times, want once", i, perComplaint[k])
		}
	}
}

// checkAssignments compares a customer's ComplaintAssigned events with
// want (causation checked when want names one).
func (e *env) checkAssignments(customer uuid.UUID, want []assigned) {
	e.t.Helper()
	got, _ := e.history(customer)
	if len(got) != len(want) {
		e.t.Fatalf("%d assignments, want %d: %+v", len(got), len(want), got)
	}
	for i, g := range got {
		w := want[i]
		if g.complaint != w.complaint || g.assignee != w.assignee || g.actor != w.actor {
			e.t.Errorf("assignment %d is %+v, want %+v", i, g, w)
		}
	}
}

func (e *env) checkOutcomes(q *routing.Queries, want map[uuid.UUID]string) {
	e.t.Helper()
	for k, outcome := range want {
		d, ok, err := q.Decision(context.Background(), k)
		if err != nil || !ok || d.Outcome != outcome {
			e.t.Errorf("decision on %s: %+v %v %v, want %s", k, d, ok, err, outcome)
		}
	}
}
