package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
	"github.com/rapport-crm/rapport/projections"
)

// TestSubscriberSkipsRunsOfUnhandledEvents: with Handles, the events a
// consumer wants come one message each and every run of the others as one
// KindSkipped message (at most MaxSkipped events) at the run's last
// position; together they account for every event, in order, and a
// subscription resuming after a skipped run goes on right after it.
func TestSubscriberSkipsRunsOfUnhandledEvents(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	if err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	store, err := postgres.NewEventStore(pool, postgres.EventStoreConfig{CheckpointInterval: 50 * time.Millisecond, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	prefix := "skip" + uuid.NewString()[:8] + "-"
	const n = 40
	var positions []eventstore.Position
	wanted := func(i int) bool { return i%7 == 0 || i == 20 || i == 21 }
	for i := range n {
		typ := "test.Other.v1"
		if wanted(i) {
			typ = "test.Wanted.v1"
		}
		data, _ := json.Marshal(map[string]int{"i": i})
		res, err := store.Append(ctx, fmt.Sprintf("%s%d", prefix, i%3), eventstore.Any,
			[]eventstore.EventData{{ID: uuid.New(), Type: typ, Data: data, Metadata: []byte(`{}`)}})
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, res.Position)
	}
	subscribe := func(from eventstore.Position) (<-chan *message.Message, func()) {
		sub, err := projections.NewSubscriber(projections.SubscriberConfig{
			Store: store, StreamPrefixes: []string{prefix}, Logger: testLogger(t), MaxSkipped: 3,
			Handles:    func(typ string) bool { return typ == "test.Wanted.v1" },
			ResumeFrom: func(context.Context, string) (eventstore.Position, error) { return from, nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		ch, err := sub.Subscribe(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		return ch, func() { _ = sub.Close() }
	}

	ch, closeSub := subscribe(eventstore.Start)
	i, skippedMessages := 0, 0
	var resumeAt eventstore.Position
	resumeIndex := -1
	for i < n {
		m := receive(t, ch)
		pos, err := projections.MessagePosition(m)
		if err != nil {
			t.Fatal(err)
		}
		switch m.Metadata.Get(projections.MetadataKind) {
		case projections.KindEvent:
			if !wanted(i) || pos != positions[i] || m.Metadata.Get(projections.MetadataName) != "test.Wanted.v1" {
				t.Fatalf("event %d at %d (%s), want event %d at %d, wanted %v", i, pos, m.Metadata.Get(projections.MetadataName), i, positions[i], wanted(i))
			}
			i++
		case projections.KindSkipped:
			k, err := strconv.Atoi(m.Metadata.Get(projections.MetadataSkipped))
			if err != nil || k < 1 || k > 3 || i+k > n {
				t.Fatalf("skipped message at %d counts %q", pos, m.Metadata.Get(projections.MetadataSkipped))
			}
			for j := i; j < i+k; j++ {
				if wanted(j) {
					t.Fatalf("a skipped run of %d from event %d holds wanted event %d", k, i, j)
				}
			}
			if pos != positions[i+k-1] || m.Metadata.Get(projections.MetadataRecordedAt) == "" || m.Metadata.Get(projections.MetadataMore) == "" {
				t.Fatalf("skipped run of events %d..%d at %d, want the last one's position %d; metadata %v", i, i+k-1, pos, positions[i+k-1], m.Metadata)
			}
			if k == 3 && i+k < n && !wanted(i+k) {
				skippedMessages++ // a run cut at MaxSkipped
			}
			i += k
			if resumeIndex < 0 && i > 10 {
				resumeAt, resumeIndex = pos, i
			}
		case projections.KindCheckpoint, projections.KindCaughtUp:
			if i > 0 && pos < positions[i-1] {
				t.Fatalf("checkpoint at %d before event %d at %d", pos, i-1, positions[i-1])
			}
		}
		m.Ack()
	}
	closeSub()
	if skippedMessages == 0 {
		t.Fatal("no run was cut at MaxSkipped")
	}

	// Resuming after a skipped run starts with the event after it.
	ch, closeSub = subscribe(resumeAt)
	defer closeSub()
	for {
		m := receive(t, ch)
		m.Ack()
		kind := m.Metadata.Get(projections.MetadataKind)
		if kind != projections.KindEvent && kind != projections.KindSkipped {
			continue
		}
		pos, _ := projections.MessagePosition(m)
		if kind == projections.KindEvent && pos != positions[resumeIndex] {
			t.Fatalf("resumed at event %d, want event %d at %d", pos, resumeIndex, positions[resumeIndex])
		}
		if kind == projections.KindSkipped {
			k, _ := strconv.Atoi(m.Metadata.Get(projections.MetadataSkipped))
			if wanted(resumeIndex) || pos != positions[resumeIndex+k-1] {
				t.Fatalf("resumed with a skipped run of %d at %d, want one from event %d", k, pos, resumeIndex)
			}
		}
		break
	}
}
