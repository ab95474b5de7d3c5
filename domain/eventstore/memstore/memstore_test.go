package memstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/domain/eventstore/eventstoretest"
	"github.com/rapport-crm/rapport/domain/eventstore/memstore"
)

// TestConformance runs the port's conformance suite on a fresh store per
// test.
func TestConformance(t *testing.T) {
	eventstoretest.Run(t, func(*testing.T) eventstore.Store { return memstore.New() })
}

// TestConformanceOnOneStore runs it again with every test on the same
// store, as the Postgres adapter's run does: each test then starts on a log
// that others have written to.
func TestConformanceOnOneStore(t *testing.T) {
	store := memstore.New()
	eventstoretest.Run(t, func(*testing.T) eventstore.Store { return store })
}

func event(data string) eventstore.EventData {
	return eventstore.EventData{ID: uuid.New(), Type: "Tested", Data: []byte(data)}
}

func TestEmptyStore(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	if head, err := s.HeadPosition(ctx); err != nil || head != eventstore.Start {
		t.Fatalf("head of an empty store = %d, %v; want Start", head, err)
	}
	for _, dir := range []eventstore.Direction{eventstore.Forwards, eventstore.Backwards} {
		from := eventstore.Start
		if dir == eventstore.Backwards {
			from = eventstore.End
		}
		if got, err := s.ReadAll(ctx, eventstore.ReadAllOptions{Direction: dir, From: from, Limit: 10}); err != nil || len(got) != 0 {
			t.Fatalf("read all %d of an empty store = %v, %v", dir, got, err)
		}
	}
	if n, err := s.CountAfter(ctx, eventstore.Start, nil); err != nil || n != 0 {
		t.Fatalf("count of an empty store = %d, %v", n, err)
	}
}

// TestPositionsAreSparse keeps the store honest about the port's rule that
// the next event is not at Position+1, so code that assumes it fails here
// as it would on EventStoreDB.
func TestPositionsAreSparse(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	if _, err := s.Append(ctx, "a", eventstore.NoStream, []eventstore.EventData{event(`{}`), event(`{}`), event(`{}`)}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ReadAll(ctx, eventstore.ReadAllOptions{From: eventstore.Start, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range all {
		if e.Position == eventstore.Start || (i > 0 && e.Position <= all[i-1].Position+1) {
			t.Fatalf("event %d at %d after %d: positions must increase by more than 1", i, e.Position, all[max(i-1, 0)].Position)
		}
	}
}

// TestEventsDoNotAliasTheLog checks that neither the appender's slices nor
// a reader's copy share bytes with the log: one caller's mutation must not
// rewrite history for the others.
func TestEventsDoNotAliasTheLog(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	in := event(`{"a":1}`)
	if _, err := s.Append(ctx, "a", eventstore.NoStream, []eventstore.EventData{in}); err != nil {
		t.Fatal(err)
	}
	in.Data[2] = 'X'
	got, err := s.ReadStream(ctx, "a", eventstore.ReadStreamOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if string(got[0].Data) != `{"a":1}` {
		t.Fatalf("the appender's change reached the log: %s", got[0].Data)
	}
	got[0].Data[2] = 'Y'
	again, _ := s.ReadAll(ctx, eventstore.ReadAllOptions{From: eventstore.Start, Limit: 1})
	if string(again[0].Data) != `{"a":1}` {
		t.Fatalf("a reader's change reached the log: %s", again[0].Data)
	}
}

func TestAppendWithEndedContextWritesNothing(t *testing.T) {
	s := memstore.New()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, "a", eventstore.Any, []eventstore.EventData{event(`{}`)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := s.ReadStream(context.Background(), "a", eventstore.ReadStreamOptions{Limit: 1}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("the cancelled append wrote: %v", err)
	}
}

func next(t *testing.T, sub eventstore.Subscription) eventstore.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return msg
}

func TestSubscribeFromEndIsLiveOnly(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	if _, err := s.Append(ctx, "a", eventstore.NoStream, []eventstore.EventData{event(`{"old":1}`)}); err != nil {
		t.Fatal(err)
	}
	sub, err := s.SubscribeAll(ctx, eventstore.SubscribeOptions{From: eventstore.End})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if msg := next(t, sub); msg.Kind != eventstore.CaughtUp {
		t.Fatalf("first message %v, want caught-up", msg.Kind)
	}
	live := event(`{"new":1}`)
	if _, err := s.Append(ctx, "a", eventstore.Exact(0), []eventstore.EventData{live}); err != nil {
		t.Fatal(err)
	}
	if msg := next(t, sub); msg.Kind != eventstore.EventAppeared || msg.Event.ID != live.ID {
		t.Fatalf("got %v %s, want the live event %s", msg.Kind, msg.Event.ID, live.ID)
	}
}

func TestBufferedCountsWhatNextReturnsWithoutWaiting(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	for i := range 3 {
		if _, err := s.Append(ctx, "a", eventstore.Any, []eventstore.EventData{event(`{}`)}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	sub, err := s.SubscribeAll(ctx, eventstore.SubscribeOptions{From: eventstore.Start})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	buffered, ok := sub.(eventstore.Buffered)
	if !ok {
		t.Fatal("the subscription does not implement eventstore.Buffered")
	}
	next(t, sub)
	// Two events and CaughtUp were read with the first.
	if n := buffered.Buffered(); n != 3 {
		t.Fatalf("buffered = %d, want 3", n)
	}
	for range 3 {
		next(t, sub)
	}
	if n := buffered.Buffered(); n != 0 {
		t.Fatalf("buffered = %d once drained, want 0", n)
	}
}

func TestSubscriptionEnds(t *testing.T) {
	s := memstore.New()
	t.Run("Close", func(t *testing.T) {
		sub, err := s.SubscribeAll(context.Background(), eventstore.SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		next(t, sub) // caught up
		done := make(chan error, 1)
		go func() {
			_, err := sub.Next(context.Background())
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
		if err := sub.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, eventstore.ErrSubscriptionClosed) {
				t.Fatalf("next after close: %v, want ErrSubscriptionClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("next still blocked after close")
		}
	})
	t.Run("SubscribeContext", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		sub, err := s.SubscribeAll(ctx, eventstore.SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		next(t, sub)
		cancel()
		if _, err := sub.Next(context.Background()); !errors.Is(err, context.Canceled) {
			t.Fatalf("next after the subscription's context ended: %v, want context.Canceled", err)
		}
	})
	t.Run("NextContext", func(t *testing.T) {
		sub, err := s.SubscribeAll(context.Background(), eventstore.SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		next(t, sub)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, err := sub.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("next with an expiring context: %v, want context.DeadlineExceeded", err)
		}
	})
}
