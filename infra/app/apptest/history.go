package apptest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/projections/projectiontest"
)

// History is a generated year of customer histories
// (projectiontest.Generator), encoded as the command side encodes them and
// appended to a running service, for the tests that compare a read model
// with the domain's fold of the same events.
type History struct {
	m *Main
	// Events are each customer's domain events, in order.
	Events map[uuid.UUID][]domain.Event
	// Last is the position of the last event appended.
	Last eventstore.Position
}

// Generate appends n generated appends (deterministic for seed) and waits
// until every projector has applied them.
func (m *Main) Generate(tb testing.TB, seed uint64, n int) *History {
	tb.Helper()
	ctx := context.Background()
	appends := projectiontest.NewGenerator(seed).Plan(n)
	if err := projectiontest.Encode(ctx, m.Codec, appends, 4); err != nil {
		tb.Fatal(err)
	}
	last, err := projectiontest.AppendAll(ctx, m.Store, appends)
	if err != nil {
		tb.Fatal(err)
	}
	h := &History{m: m, Events: map[uuid.UUID][]domain.Event{}, Last: last}
	for _, a := range appends {
		h.Events[a.Customer] = append(h.Events[a.Customer], a.Domain...)
	}
	h.Wait(tb)
	return h
}

// Wait waits, at most 30 s, until every projector has applied the log up
// to Last.
func (h *History) Wait(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.m.Engine.WaitForPosition(ctx, h.Last); err != nil {
		tb.Fatal(err)
	}
}

// EraseBusiest erases the data of the customer with the longest history
// through the commands (which destroy its key), waits for the projectors
// and returns the customer.
func (h *History) EraseBusiest(tb testing.TB) uuid.UUID {
	tb.Helper()
	var victim uuid.UUID
	for id, events := range h.Events {
		if victim == uuid.Nil || len(events) > len(h.Events[victim]) {
			victim = id
		}
	}
	res, err := h.m.Commands.Handle(context.Background(), commands.Request{CustomerID: victim, Command: domain.EraseCustomerData{Reason: "test"},
		CommandID: uuid.New(), Actor: "tester", At: time.Now()})
	if err != nil {
		tb.Fatal(err)
	}
	h.Last = res.Position
	h.Wait(tb)
	h.Events[victim] = append(h.Events[victim], domain.CustomerDataErased{Reason: "test"})
	return victim
}

// Rebuild rebuilds the named projectors from the log, concurrently, and
// returns when each has switched to its new generation.
func (m *Main) Rebuild(tb testing.TB, names ...string) {
	tb.Helper()
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			if err := m.Engine.Rebuild(context.Background(), name, nil); err != nil {
				tb.Errorf("rebuild %s: %v", name, err)
			}
		})
	}
	wg.Wait()
}

// CheckReconciles fails the test (saying when) unless each named
// projector's tables reconcile with the log (projections.Engine.Verify)
// over some streams.
func (m *Main) CheckReconciles(tb testing.TB, when string, names ...string) {
	tb.Helper()
	report, err := m.Engine.Verify(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range names {
		found := false
		for _, pr := range report.Projectors {
			if pr.Name == name {
				found = true
				if !pr.OK() || pr.Streams == 0 {
					tb.Errorf("%s: %s does not reconcile with the log: %+v", when, name, pr)
				}
			}
		}
		if !found {
			tb.Errorf("%s: no projector %s", when, name)
		}
	}
}
