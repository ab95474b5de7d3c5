package eventstoretest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// Subscriptions to the global log, and the Collector that store-specific
// tests share.

// Collector gathers what a subscription delivers, in a goroutine, so that
// tests can wait for conditions with a deadline. Store-specific tests use
// it too.
type Collector struct {
	t    testing.TB
	sub  eventstore.Subscription
	mu   sync.Mutex
	msgs []eventstore.Message
	err  error
	done chan struct{}
}

// Collect subscribes and collects until the test ends.
func Collect(t testing.TB, s eventstore.Store, opts eventstore.SubscribeOptions) *Collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := s.SubscribeAll(ctx, opts)
	if err != nil {
		cancel()
		t.Fatalf("subscribe: %v", err)
	}
	c := &Collector{t: t, sub: sub, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			msg, err := sub.Next(ctx)
			c.mu.Lock()
			if err != nil {
				c.err = err
				c.mu.Unlock()
				return
			}
			c.msgs = append(c.msgs, msg)
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		c.Stop()
	})
	return c
}

// Stop ends the subscription and waits for the collecting goroutine.
func (c *Collector) Stop() {
	_ = c.sub.Close()
	<-c.done
}

// collectTimeout bounds WaitFor; longer than timeout, since store tests
// wait through restarts.
const collectTimeout = 30 * time.Second

// WaitFor waits until cond holds for the messages received so far, and
// returns them.
func (c *Collector) WaitFor(what string, cond func([]eventstore.Message) bool) []eventstore.Message {
	c.t.Helper()
	deadline := time.Now().Add(collectTimeout)
	for {
		c.mu.Lock()
		msgs := append([]eventstore.Message(nil), c.msgs...)
		err := c.err
		c.mu.Unlock()
		if cond(msgs) {
			return msgs
		}
		if err != nil {
			c.t.Fatalf("waiting for %s: subscription ended: %v", what, err)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waiting for %s: timed out after %d messages", what, len(msgs))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// EventsOf keeps the events of streams with the prefix.
func EventsOf(msgs []eventstore.Message, prefix string) []eventstore.RecordedEvent {
	var out []eventstore.RecordedEvent
	for _, m := range msgs {
		if m.Kind == eventstore.EventAppeared && strings.HasPrefix(m.Event.Stream, prefix) {
			out = append(out, m.Event)
		}
	}
	return out
}

// checkMessages asserts what holds for every subscription: positions never
// go back, an event's position is its message's position.
func checkMessages(t *testing.T, msgs []eventstore.Message, after eventstore.Position) {
	t.Helper()
	last := after
	for i, m := range msgs {
		switch m.Kind {
		case eventstore.EventAppeared:
			if m.Position != m.Event.Position {
				t.Fatalf("message %d: position %d differs from its event's %d", i, m.Position, m.Event.Position)
			}
			if m.Position <= last {
				t.Fatalf("message %d: event at %d delivered after position %d: duplicate or out of order", i, m.Position, last)
			}
			last = m.Position
		case eventstore.CheckpointReached:
			if m.Position < last {
				t.Fatalf("message %d: checkpoint %d goes back before %d", i, m.Position, last)
			}
			last = m.Position
		case eventstore.CaughtUp:
		default:
			t.Fatalf("message %d has kind %v", i, m.Kind)
		}
	}
}

func testSubscriptionCatchUpThenLive(t *testing.T, s eventstore.Store) {
	const before, during, after = 40, 40, 20
	prefix := uniquePrefix(t)
	ctx := testContext(t)
	start := positionBefore(t, s, eventstore.End)
	var written []uuid.UUID
	appendOne := func(i int) error {
		e := newEvent(fmt.Sprint(i))
		if _, err := s.Append(ctx, fmt.Sprintf("%s%d", prefix, i%3), eventstore.Any, []eventstore.EventData{e}); err != nil {
			return err
		}
		written = append(written, e.ID)
		return nil
	}
	for i := range before {
		if err := appendOne(i); err != nil {
			t.Fatal(err)
		}
	}
	sub := Collect(t, s, eventstore.SubscribeOptions{From: start, StreamPrefixes: []string{prefix}})
	// Append while the subscription catches up, so that the hand-over
	// from catch-up to live happens with writes in flight.
	for i := before; i < before+during; i++ {
		if err := appendOne(i); err != nil {
			t.Fatal(err)
		}
	}
	sub.WaitFor("caught up", func(msgs []eventstore.Message) bool {
		for _, m := range msgs {
			if m.Kind == eventstore.CaughtUp {
				return true
			}
		}
		return false
	})
	for i := before + during; i < before+during+after; i++ {
		if err := appendOne(i); err != nil {
			t.Fatal(err)
		}
	}
	msgs := sub.WaitFor("every event", func(msgs []eventstore.Message) bool {
		return len(EventsOf(msgs, prefix)) >= len(written)
	})
	checkMessages(t, msgs, start)
	if got := ids(EventsOf(msgs, prefix)); !equalIDs(got, written) {
		t.Fatalf("subscription delivered %d events %v,\nwant %d in append order %v", len(got), got, len(written), written)
	}
	// Nothing more arrives: no duplicate after the fact.
	time.Sleep(200 * time.Millisecond)
	msgs = sub.WaitFor("nothing", func([]eventstore.Message) bool { return true })
	if n := len(EventsOf(msgs, prefix)); n != len(written) {
		t.Fatalf("subscription delivered %d events, want %d", n, len(written))
	}
}

func testSubscriptionResumesStrictlyAfter(t *testing.T, s eventstore.Store) {
	prefix := uniquePrefix(t)
	var results []eventstore.AppendResult
	var written []uuid.UUID
	for i := range 5 {
		e := newEvent(fmt.Sprint(i))
		results = append(results, mustAppend(t, s, prefix+"s", eventstore.Any, e))
		written = append(written, e.ID)
	}
	sub := Collect(t, s, eventstore.SubscribeOptions{From: results[2].Position, StreamPrefixes: []string{prefix}})
	msgs := sub.WaitFor("two events", func(msgs []eventstore.Message) bool { return len(EventsOf(msgs, prefix)) >= 2 })
	checkMessages(t, msgs, results[2].Position)
	if got := ids(EventsOf(msgs, prefix)); !equalIDs(got, written[3:]) {
		t.Fatalf("resumed after event 2: got %v, want %v", got, written[3:])
	}
}

func testSubscriptionStreamPrefixFilter(t *testing.T, s eventstore.Store) {
	prefix := uniquePrefix(t)
	wanted, other := prefix+"wanted-", prefix+"other-"
	start := positionBefore(t, s, eventstore.End)
	sub := Collect(t, s, eventstore.SubscribeOptions{From: start, StreamPrefixes: []string{wanted}})
	var want []uuid.UUID
	for i := range 20 {
		e := newEvent(fmt.Sprint(i))
		stream := fmt.Sprintf("%s%d", other, i)
		if i%4 == 0 {
			stream = fmt.Sprintf("%s%d", wanted, i)
			want = append(want, e.ID)
		}
		mustAppend(t, s, stream, eventstore.Any, e)
	}
	msgs := sub.WaitFor("the wanted events", func(msgs []eventstore.Message) bool { return len(EventsOf(msgs, wanted)) >= len(want) })
	checkMessages(t, msgs, start)
	for _, m := range msgs {
		if m.Kind == eventstore.EventAppeared && !strings.HasPrefix(m.Event.Stream, wanted) {
			t.Fatalf("filter %q let through stream %q", wanted, m.Event.Stream)
		}
	}
	if got := ids(EventsOf(msgs, wanted)); !equalIDs(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// testSubscriptionCheckpointsOnSparseFilter checks that a consumer whose
// filter matches nothing still learns a resume position past the events it
// did not want, and that resuming from it loses nothing.
func testSubscriptionCheckpointsOnSparseFilter(t *testing.T, s eventstore.Store) {
	prefix := uniquePrefix(t)
	start := positionBefore(t, s, eventstore.End)
	sub := Collect(t, s, eventstore.SubscribeOptions{From: start, StreamPrefixes: []string{prefix + "rare-"}})
	for i := range 100 {
		mustAppend(t, s, fmt.Sprintf("%scommon-%d", prefix, i%5), eventstore.Any, newEvent(fmt.Sprint(i)))
	}
	msgs := sub.WaitFor("a checkpoint past the unwanted events", func(msgs []eventstore.Message) bool {
		for _, m := range msgs {
			if m.Kind == eventstore.CheckpointReached && m.Position > start {
				return true
			}
		}
		return false
	})
	checkMessages(t, msgs, start)
	var checkpoint eventstore.Position
	for _, m := range msgs {
		if m.Kind == eventstore.EventAppeared {
			t.Fatalf("filter let through %s", m.Event.Stream)
		}
		if m.Kind == eventstore.CheckpointReached {
			checkpoint = m.Position
		}
	}
	// A checkpoint may lie beyond the last event written (the store knows
	// no event can commit below it any more); the resume below proves it is
	// safe.
	// Resuming from the checkpoint delivers the next wanted event, and
	// nothing twice.
	rare := newEvent("rare")
	mustAppend(t, s, prefix+"rare-1", eventstore.NoStream, rare)
	resumed := Collect(t, s, eventstore.SubscribeOptions{From: checkpoint, StreamPrefixes: []string{prefix + "rare-"}})
	msgs = resumed.WaitFor("the rare event", func(msgs []eventstore.Message) bool { return len(EventsOf(msgs, prefix)) >= 1 })
	checkMessages(t, msgs, checkpoint)
	if got := EventsOf(msgs, prefix); len(got) != 1 || got[0].ID != rare.ID {
		t.Fatalf("resumed from checkpoint: got %v, want only %s", ids(got), rare.ID)
	}
}

func testSubscriptionClose(t *testing.T, s eventstore.Store) {
	prefix := uniquePrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sub, err := s.SubscribeAll(ctx, eventstore.SubscribeOptions{From: positionBefore(t, s, eventstore.End), StreamPrefixes: []string{prefix}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := sub.Next(ctx); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if err := sub.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Next returned no error after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still blocked 5 s after Close")
	}
}
