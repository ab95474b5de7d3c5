package commands_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
)

// failKeyDestruction makes every destruction of a data key fail, as a
// lost connection or a full disk would, until the returned function is
// called.
func failKeyDestruction(tb testing.TB, e *env) (restore func()) {
	tb.Helper()
	e.keys.setRefuse(true)
	return func() { e.keys.setRefuse(false) }
}

func keyDestroyed(tb testing.TB, e *env, customerID uuid.UUID) bool {
	tb.Helper()
	return e.keys.destroyed(customerID)
}

// TestErasureNeverSucceedsWhileTheKeyExists: when the data key cannot be
// destroyed, the erasure fails (and so does its retry, in this process
// and another), though its event is stored; once destruction works again,
// a retry completes it and answers the erasure's first result.
func TestErasureNeverSucceedsWhileTheKeyExists(t *testing.T) {
	e := mustOpen(t)
	ctx := context.Background()
	id := e.register(t, "shred@example.com")
	if _, err := e.handler.Handle(ctx, request(id, logContact("secret summary"))); err != nil {
		t.Fatal(err)
	}
	restore := failKeyDestruction(t, e)
	erase := request(id, domain.EraseCustomerData{Reason: "GDPR art. 17 request"})
	if res, err := e.handler.Handle(ctx, erase); err == nil {
		t.Fatalf("the erasure succeeded (%+v) though its key still exists", res)
	}
	for _, h := range []*commands.Customers{e.handler, e.newHandler(t, nil)} {
		if res, err := h.Handle(ctx, erase); err == nil {
			t.Fatalf("a retry of the erasure succeeded (%+v) though its key still exists", res)
		}
	}
	if keyDestroyed(t, e, id) {
		t.Fatal("the key was destroyed despite the trigger: the test proves nothing")
	}
	restore()
	res, err := e.handler.Handle(ctx, erase)
	if err != nil {
		t.Fatalf("retry once destruction works: %v", err)
	}
	if !res.Replayed || res.Revision != 2 {
		t.Fatalf("the retry answered %+v, want the erasure's own result (revision 2, replayed)", res)
	}
	if !keyDestroyed(t, e, id) {
		t.Fatal("the erasure answered success but the key exists")
	}
	e.register(t, "shred@example.com") // the email is free again
	if _, err := e.handler.Handle(ctx, request(id, logContact("after"))); !errors.Is(err, domain.ErrGone) {
		t.Fatalf("command after erasure: %v, want gone", err)
	}
}

// TestErasureSweepCompletesWhatACrashLeft: an erasure whose event is
// stored but whose key survived (the process died in between) is
// completed by the sweep that runs at start.
func TestErasureSweepCompletesWhatACrashLeft(t *testing.T) {
	e := mustOpen(t)
	ctx := context.Background()
	id := e.register(t, "crash@example.com")
	restore := failKeyDestruction(t, e)
	_, _ = e.handler.Handle(ctx, request(id, domain.EraseCustomerData{Reason: "GDPR"}))
	restore()
	if keyDestroyed(t, e, id) {
		t.Fatal("the key was destroyed despite the trigger: the test proves nothing")
	}
	restarted := e.newHandler(t, nil)                       // a new process: nothing in memory
	if err := restarted.CompleteErasures(ctx); err != nil { // the sweep at start
		t.Fatal(err)
	}
	if !keyDestroyed(t, e, id) {
		t.Fatal("the sweep left the key of an erased customer")
	}
	e.register(t, "crash@example.com") // the email is free again
}

// TestPendingErasureWithoutItsEvent: an erasure begun whose event was
// never appended (the append failed, or the process died first) is left
// alone while it may still be running elsewhere, and forgotten once stale;
// the customer keeps its data.
func TestPendingErasureWithoutItsEvent(t *testing.T) {
	e := mustOpen(t)
	ctx := context.Background()
	id := e.register(t, "kept@example.com")
	if err := e.keys.BeginErasure(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.newHandler(t, nil).CompleteErasures(ctx); err != nil {
		t.Fatal(err)
	}
	if pending, _ := e.keys.PendingErasures(ctx); len(pending) != 1 {
		t.Fatalf("a young pending erasure was forgotten: %v", pending)
	}
	stale := e.newHandler(t, func(c *commands.Config) { c.StaleErasure = time.Nanosecond })
	if err := stale.CompleteErasures(ctx); err != nil {
		t.Fatal(err)
	}
	if pending, _ := e.keys.PendingErasures(ctx); len(pending) != 0 {
		t.Fatalf("a stale pending erasure without its event is still pending: %v", pending)
	}
	if keyDestroyed(t, e, id) {
		t.Fatal("the key of a customer that was never erased was destroyed")
	}
	if _, err := e.handler.Handle(ctx, request(id, logContact("still here"))); err != nil {
		t.Fatalf("the customer was not erased and takes commands: %v", err)
	}
}
