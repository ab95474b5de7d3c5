package commands_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
)

// TestHandleOnceFindsItsEarlierRunBeyondTheRecentCommands: a command run
// again by a new process after more than 128 other commands on the
// customer appends nothing with HandleOnce (it finds its causation in the
// stream), while Handle, which only remembers the recent commands, runs it
// again.
func TestHandleOnceFindsItsEarlierRunBeyondTheRecentCommands(t *testing.T) {
	e := mustOpen(t)
	ctx := context.Background()
	id := e.register(t, "once@example.com")
	filed, err := e.handler.Handle(ctx, request(id, domain.FileComplaint{Category: "billing", Severity: domain.SeverityLow, Description: "x"}))
	if err != nil {
		t.Fatal(err)
	}
	assign := request(id, domain.AssignComplaint{ComplaintID: filed.CreatedID, Assignee: "bob"})
	first, err := e.handler.HandleOnce(ctx, assign, filed.Revision)
	if err != nil || first.Appended != 1 || first.Replayed {
		t.Fatalf("first run: %+v %v", first, err)
	}
	if _, err := e.handler.Handle(ctx, request(id, domain.AssignComplaint{ComplaintID: filed.CreatedID, Assignee: "zoe"})); err != nil {
		t.Fatal(err)
	}
	for i := range 130 {
		if _, err := e.handler.Handle(ctx, request(id, logContact(fmt.Sprint("call ", i)))); err != nil {
			t.Fatal(err)
		}
	}
	again, err := e.newHandler(t, nil).HandleOnce(ctx, assign, filed.Revision)
	if err != nil || !again.Replayed || again.Appended != 0 || again.Revision != first.Revision {
		t.Fatalf("run again: %+v %v, want the first run's revision %d replayed", again, err, first.Revision)
	}
	// Handle alone, in a new process, no longer recognises it: it takes
	// the complaint back from zoe.
	plain, err := e.newHandler(t, nil).Handle(ctx, assign)
	if err != nil || plain.Appended != 1 {
		t.Fatalf("Handle alone: %+v %v (it cannot see the first run any more)", plain, err)
	}
}

// TestRoutingRulesAreVersioned: commands.Routing appends a version per
// change with the actor and the command as causation, nothing for the
// same rules, refuses a stale expected version and invalid rules.
func TestRoutingRulesAreVersioned(t *testing.T) {
	e := mustOpen(t)
	ctx := context.Background()
	r := commands.NewRouting(e.store, e.codec, nil)
	rules := []domain.RoutingRule{{Name: "all", Pool: []string{"a", "b"}}}
	set := func(rules []domain.RoutingRule, expected *int) (commands.RoutingResult, error) {
		return r.Set(ctx, commands.RoutingRequest{Command: domain.SetComplaintRouting{Rules: rules}, CommandID: uuid.New(), Actor: "root", ExpectedVersion: expected})
	}
	zero := 0
	res, err := set(rules, &zero)
	if err != nil || res.Version != 1 || !res.Appended || res.Revision != 0 {
		t.Fatalf("first: %+v %v", res, err)
	}
	if res, err := set(rules, nil); err != nil || res.Version != 1 || res.Appended {
		t.Errorf("same: %+v %v", res, err)
	}
	var mismatch *commands.RevisionMismatchError
	if _, err := set(nil, &zero); !errors.As(err, &mismatch) || mismatch.Current != 1 {
		t.Errorf("stale: %v", err)
	}
	var de *domain.Error
	if _, err := set([]domain.RoutingRule{{Name: "x"}}, nil); !errors.As(err, &de) || !de.HasField("rules[0].assignee") {
		t.Errorf("invalid: %v", err)
	}
	if res, err := set(nil, nil); err != nil || res.Version != 2 || res.Revision != 1 {
		t.Errorf("second: %+v %v", res, err)
	}
}
