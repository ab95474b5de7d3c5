package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/esdb"
	"github.com/rapport-crm/rapport/infra/esdb/esdbtest"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
	"github.com/rapport-crm/rapport/projections"
)

// The Subscriber's contract, in the spirit of Watermill's universal Pub/Sub
// tests (ordering, resend on nack, no next message before an ack, resume,
// close, context), run against both stores: the subscriber only uses the
// port, so it must behave the same on each.
func forEachStore(t *testing.T, fn func(t *testing.T, store eventstore.Store)) {
	t.Run("postgres", func(t *testing.T) {
		pool := pgtest.NewPool(t)
		if err := postgres.Migrate(context.Background(), pool, nil); err != nil {
			t.Fatal(err)
		}
		store, err := postgres.NewEventStore(pool, postgres.EventStoreConfig{CheckpointInterval: 50 * time.Millisecond, PollInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(store.Close)
		fn(t, store)
	})
	t.Run("esdb", func(t *testing.T) {
		srv := esdbtest.Start(t)
		store, err := esdb.New(esdb.Config{ConnectionString: srv.ConnectionString(), Logger: testLogger(t),
			ReconnectMinBackoff: 20 * time.Millisecond, ReconnectMaxBackoff: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() })
		fn(t, store)
	})
}

// appendEvents appends n one-event appends to streams with prefix and
// returns their positions.
func appendEvents(t *testing.T, store eventstore.Store, prefix string, n int) []eventstore.Position {
	t.Helper()
	var out []eventstore.Position
	for i := range n {
		data, _ := json.Marshal(map[string]int{"i": i})
		res, err := store.Append(context.Background(), fmt.Sprintf("%s%d", prefix, i%3), eventstore.Any,
			[]eventstore.EventData{{ID: uuid.New(), Type: "test.Happened.v1", Data: data, Metadata: []byte(`{"actor":"t"}`)}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.Position)
	}
	return out
}

func newSubscriber(t *testing.T, store eventstore.Store, prefixes []string, from func() eventstore.Position) *projections.Subscriber {
	t.Helper()
	sub, err := projections.NewSubscriber(projections.SubscriberConfig{
		Store: store, StreamPrefixes: prefixes, NackResendSleep: 10 * time.Millisecond, Logger: testLogger(t),
		ResumeFrom: func(context.Context, string) (eventstore.Position, error) { return from(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10 s")
	}
	return nil
}

// nextEvent receives messages, acking control messages, until an event.
func nextEvent(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	for {
		m := receive(t, ch)
		if m.Metadata.Get(projections.MetadataKind) == projections.KindEvent {
			return m
		}
		m.Ack()
	}
}

func TestSubscriberOrderAckNackResume(t *testing.T) {
	forEachStore(t, func(t *testing.T, store eventstore.Store) {
		prefix := "sub" + uuid.NewString()[:8] + "-"
		positions := appendEvents(t, store, prefix, 20)
		sub := newSubscriber(t, store, []string{prefix}, func() eventstore.Position { return eventstore.Start })
		ctx := context.Background()
		ch, err := sub.Subscribe(ctx, "topic-a")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			m := nextEvent(t, ch)
			pos, err := projections.MessagePosition(m)
			if err != nil || pos != positions[i] {
				t.Fatalf("message %d at %d (%v), want %d", i, pos, err, positions[i])
			}
			rec, err := projections.RecordFromMessage(m)
			if err != nil || rec.Type != "test.Happened.v1" || rec.Stream != fmt.Sprintf("%s%d", prefix, i%3) ||
				m.Metadata.Get(projections.MetadataName) != "test.Happened.v1" || string(rec.Metadata) != `{"actor":"t"}` ||
				m.UUID != rec.ID.String() || m.Metadata.Get(projections.MetadataMore) == "" {
				t.Fatalf("message %d: %+v %v", i, m.Metadata, err)
			}
			if m.Context() == nil {
				t.Fatal("message without context")
			}
			if i == 4 {
				// No next message before the ack.
				select {
				case extra := <-ch:
					t.Fatalf("got %s before acking", extra.Metadata.Get(projections.MetadataPosition))
				case <-time.After(100 * time.Millisecond):
				}
				// A nack sends the same message again.
				m.Nack()
				again := receive(t, ch)
				if again.UUID != m.UUID || again.Metadata.Get(projections.MetadataPosition) != m.Metadata.Get(projections.MetadataPosition) {
					t.Fatalf("after nack got %s, want %s again", again.UUID, m.UUID)
				}
				m = again
			}
			m.Ack()
		}
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
		// Close closes the output channel.
		for range ch {
		}
		if _, err := sub.Subscribe(ctx, "topic-a"); err == nil {
			t.Fatal("Subscribe after Close succeeded")
		}

		// A new subscriber resumes after the position its topic gives.
		sub2 := newSubscriber(t, store, []string{prefix}, func() eventstore.Position { return positions[9] })
		ch2, err := sub2.Subscribe(ctx, "topic-a")
		if err != nil {
			t.Fatal(err)
		}
		// A reader held back mid-backlog (by an older transaction still in
		// flight: a loaded machine) says it caught up with what is visible
		// then, once; otherwise the notice follows the backlog.
		caughtUp := false
		for i := 10; i < 20; {
			m := receive(t, ch2)
			switch m.Metadata.Get(projections.MetadataKind) {
			case projections.KindCaughtUp:
				caughtUp = true
			case projections.KindEvent:
				if pos, _ := projections.MessagePosition(m); pos != positions[i] {
					t.Fatalf("resumed message at %d, want %d", pos, positions[i])
				}
				i++
			}
			m.Ack()
		}
		// Then a caught-up notice (the backlog is delivered) and, as the
		// log grows live, more events.
		live := appendEvents(t, store, prefix, 2)
		for got := 0; got < 2; {
			m := receive(t, ch2)
			switch m.Metadata.Get(projections.MetadataKind) {
			case projections.KindCaughtUp:
				caughtUp = true
			case projections.KindEvent:
				if pos, _ := projections.MessagePosition(m); pos != live[got] {
					t.Fatalf("live message at %d, want %d", pos, live[got])
				}
				got++
			}
			m.Ack()
		}
		if !caughtUp {
			t.Fatal("no caught-up notice before live events")
		}
	})
}

func TestSubscriberContextAndCheckpoints(t *testing.T) {
	forEachStore(t, func(t *testing.T, store eventstore.Store) {
		prefix := "ctx" + uuid.NewString()[:8] + "-"
		other := "oth" + uuid.NewString()[:8] + "-"
		appendEvents(t, store, prefix, 2)
		sub := newSubscriber(t, store, []string{prefix}, func() eventstore.Position { return eventstore.Start })
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := sub.Subscribe(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		var last eventstore.Position
		for range 2 {
			m := nextEvent(t, ch)
			last, _ = projections.MessagePosition(m)
			m.Ack()
		}
		// Events of other streams only move the resume position, through
		// checkpoint messages.
		others := appendEvents(t, store, other, 100)
		deadline := time.After(15 * time.Second)
		for {
			var m *message.Message
			select {
			case m = <-ch:
			case <-deadline:
				t.Fatalf("no checkpoint past %d", others[0])
			}
			kind := m.Metadata.Get(projections.MetadataKind)
			pos, _ := projections.MessagePosition(m)
			m.Ack()
			if kind == projections.KindEvent {
				t.Fatalf("event of another stream delivered: %v", m.Metadata)
			}
			if pos < last {
				t.Fatalf("position went back from %d to %d", last, pos)
			}
			last = pos
			if kind == projections.KindCheckpoint && pos >= others[0] {
				break
			}
		}
		// Cancelling the subscription's context closes the channel.
		cancel()
		select {
		case _, ok := <-ch:
			for ok {
				_, ok = <-ch
			}
		case <-time.After(5 * time.Second):
			t.Fatal("channel not closed after the context ended")
		}
	})
}

func TestSubscriberMoreFlag(t *testing.T) {
	pool := pgtest.NewPool(t)
	if err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatal(err)
	}
	store, err := postgres.NewEventStore(pool, postgres.EventStoreConfig{PageSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	appendEvents(t, store, "more-", 120)
	sub := newSubscriber(t, store, []string{"more-"}, func() eventstore.Position { return eventstore.Start })
	ch, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	// The horizon is the whole cluster's oldest transaction in flight, so a
	// long transaction in another database (a parallel test package) can
	// hold the reader back mid-backlog: it then says it has caught up with
	// what is visible, and says so once.
	var flags []bool
	caughtUpEarly := false
	for len(flags) < 120 {
		m := receive(t, ch)
		switch m.Metadata.Get(projections.MetadataKind) {
		case projections.KindEvent:
			flags = append(flags, m.Metadata.Get(projections.MetadataMore) == "true")
		case projections.KindCaughtUp:
			caughtUpEarly = true
		}
		m.Ack()
	}
	// The backlog is read ahead across store pages, so events say more is
	// ready; the caught-up notice that ends the backlog says nothing is.
	trues := 0
	for _, f := range flags {
		if f {
			trues++
		}
	}
	if trues < 110 {
		t.Fatalf("more flags: %d of 120 true", trues)
	}
	if caughtUpEarly {
		t.Log("the horizon held the reader back mid-backlog; the caught-up notice came before the backlog's end")
		return
	}
	// A checkpoint may come first when the store's horizon made the reader
	// wait (a loaded machine); it is no event. Then the caught-up notice.
	m := receive(t, ch)
	for m.Metadata.Get(projections.MetadataKind) == projections.KindCheckpoint {
		m.Ack()
		m = receive(t, ch)
	}
	if m.Metadata.Get(projections.MetadataKind) != projections.KindCaughtUp || m.Metadata.Get(projections.MetadataMore) != "false" {
		t.Fatalf("after the backlog: %v, want the caught-up notice saying nothing more is ready", m.Metadata)
	}
	m.Ack()
}
