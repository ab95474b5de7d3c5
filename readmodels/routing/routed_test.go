package routing_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/routing"
)

// routeThroughACrash runs the scenario of TestAFiledComplaintIsRoutedOnce
// WithTheRuleAsActor with the assigner made by assigner (over the current
// process's commands) and returns what is wrong with the histories.
//
// Rules v1: "critical" (severity critical) → alice; "vip" (tier A) → pool
// bob, carol. The policy assigns K1 (customer A, tier A) to bob and the
// process dies before its checkpoint commits. While it is down a person
// re-assigns K1 to zoe, logs 130 contacts on A, and K2 (A, low) and K3
// (B, critical) are filed.
// The policy starts again in a new process and catches up.
func routeThroughACrash(t *testing.T, assigner func(e *env) func(cancel func()) routing.Assigner) (problems []string, e *env, a uuid.UUID) {
	e = newEnv(t)
	if v := e.setRules(
		domain.RoutingRule{Name: "critical", Severities: []domain.Severity{domain.SeverityCritical}, Assignee: "alice"},
		domain.RoutingRule{Name: "vip", Tiers: []string{"A"}, Pool: []string{"bob", "carol"}},
	); v != 1 {
		t.Fatalf("version %d", v)
	}
	a = e.customer("ada", "enterprise", "A", "emea")
	b := e.customer("bob-corp", "smb", "B", "amer")
	e.start(func(cancel func()) routing.Assigner { return &crashing{inner: assigner(e)(cancel), cancel: cancel} })
	k1 := e.file(a, domain.SeverityLow, "billing")
	select {
	case <-e.done:
	case <-time.After(90 * time.Second):
		t.Fatal("the policy did not assign K1")
	}
	e.stop()
	e.do(a, domain.AssignComplaint{ComplaintID: k1, Assignee: "zoe"}, "tester")
	// A busy customer: more commands than the command layer remembers of
	// a stream (128), so that only the search for the causation, not the
	// recent commands, can tell the policy's run again from a new command.
	for i := range 130 {
		e.do(a, domain.LogContact{Channel: domain.ChannelPhone, Direction: domain.DirectionInbound, Summary: fmt.Sprint("call ", i), By: "zoe"}, "tester")
	}
	k2 := e.file(a, domain.SeverityLow, "delivery")
	k3 := e.file(b, domain.SeverityCritical, "billing")

	e.newProcess()
	e.start(assigner(e))
	e.wait()

	histA, filedA := e.history(a)
	histB, filedB := e.history(b)
	want := []assigned{
		{k1, "bob", "routing:v1:vip", filedA[k1], 0},
		{k1, "zoe", "tester", uuid.Nil, 0},
		{k2, "carol", "routing:v1:vip", filedA[k2], 0},
	}
	check := func(who string, got, want []assigned) {
		if len(got) != len(want) {
			problems = append(problems, fmt.Sprintf("%s: %d assignments, want %d: %+v", who, len(got), len(want), got))
			return
		}
		for i, g := range got {
			w := want[i]
			if g.complaint != w.complaint || g.assignee != w.assignee || g.actor != w.actor || (w.causation != uuid.Nil && g.causation != w.causation) {
				problems = append(problems, fmt.Sprintf("%s: assignment %d is %+v, want %+v", who, i, g, w))
			}
		}
	}
	check("customer A", histA, want)
	check("customer B", histB, []assigned{{k3, "alice", "routing:v1:critical", filedB[k3], 0}})

	q := routing.NewQueries(e.pool, e.store, e.codec)
	for k, outcome := range map[uuid.UUID]string{k1: routing.OutcomeReplayed, k2: routing.OutcomeAssigned, k3: routing.OutcomeAssigned} {
		d, ok, err := q.Decision(context.Background(), k)
		if err != nil || !ok || d.Outcome != outcome || d.RulesVersion != 1 {
			problems = append(problems, fmt.Sprintf("decision on %s: %+v %v %v, want %s", k, d, ok, err, outcome))
		}
	}
	return problems, e, a
}

// TestAFiledComplaintIsRoutedOnceWithTheRuleAsActor: each filed complaint
// is assigned by the first matching rule through the ordinary command,
// with actor routing:v<N>:<rule> and the ComplaintFiled event as
// causation, and only once — although the policy died after assigning and
// before its checkpoint, ran again in a new process and met a complaint
// someone had re-assigned meanwhile (which it leaves alone).
func TestAFiledComplaintIsRoutedOnceWithTheRuleAsActor(t *testing.T) {
	problems, e, a := routeThroughACrash(t, func(e *env) func(func()) routing.Assigner {
		return func(func()) routing.Assigner { return e.guarded() }
	})
	for _, p := range problems {
		t.Error(p)
	}
	hist, _ := e.history(a)
	for _, h := range hist {
		t.Logf("customer %s: ComplaintAssigned complaint=%s assignee=%s actor=%s causation=%s revision=%d", a, h.complaint, h.assignee, h.actor, h.causation, h.revision)
	}
}

// TestWithoutTheGuardTheCrashAssignsTwice runs the same scenario with an
// assigner that issues the command without looking for its earlier run:
// the test above must then fail (K1 is taken back from zoe), which shows
// that it tests the guard.
func TestWithoutTheGuardTheCrashAssignsTwice(t *testing.T) {
	problems, _, _ := routeThroughACrash(t, func(e *env) func(func()) routing.Assigner {
		return func(func()) routing.Assigner { return unguarded{e.cmds} }
	})
	if len(problems) == 0 || !strings.Contains(strings.Join(problems, "\n"), "customer A: 4 assignments") {
		t.Fatalf("without the guard the scenario passed: %v", problems)
	}
	t.Logf("without the guard: %v", problems)
}
