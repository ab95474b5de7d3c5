package eventstoretest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// These cases race appends to different streams, as concurrent commands
// on different customers do. A store may commit such appends together
// (the Postgres store's group commit, EventStoreDB's own batching): each
// must still keep its own expected-revision check and outcome.

// testConcurrentAppendsToDifferentStreams has many appenders each write a
// two-event append and then a one-event append to a stream of its own, at
// once: every append succeeds with its own revisions, every position is
// distinct, and the global log holds each stream's events in revision
// order.
func testConcurrentAppendsToDifferentStreams(t *testing.T, s eventstore.Store) {
	const appenders = 32
	prefix := uniquePrefix(t)
	ctx := testContext(t)
	start := make(chan struct{})
	type written struct {
		first, second eventstore.AppendResult
		events        []eventstore.EventData
		err           error
	}
	results := make([]written, appenders)
	var wg sync.WaitGroup
	for i := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("%sw%d", prefix, i)
			w := &results[i]
			w.events = newEvents(stream, 3)
			<-start
			if w.first, w.err = s.Append(ctx, stream, eventstore.NoStream, w.events[:2]); w.err != nil {
				return
			}
			w.second, w.err = s.Append(ctx, stream, eventstore.Exact(1), w.events[2:])
		}()
	}
	close(start)
	wg.Wait()

	positions := map[eventstore.Position]string{}
	for i, w := range results {
		stream := fmt.Sprintf("%sw%d", prefix, i)
		if w.err != nil {
			t.Fatalf("%s: %v", stream, w.err)
		}
		if w.first.Revision != 1 || w.second.Revision != 2 {
			t.Errorf("%s: revisions %d and %d, want 1 and 2", stream, w.first.Revision, w.second.Revision)
		}
		if w.second.Position <= w.first.Position {
			t.Errorf("%s: second append at position %d, not after the first's %d", stream, w.second.Position, w.first.Position)
		}
		events := readWholeStream(t, s, stream)
		if got := ids(events); !equalIDs(got, dataIDs(w.events)) {
			t.Fatalf("%s holds %v, want %v", stream, got, dataIDs(w.events))
		}
		for _, e := range events {
			if other, dup := positions[e.Position]; dup {
				t.Fatalf("position %d given to %s and to %s", e.Position, other, e.Stream)
			}
			positions[e.Position] = e.Stream
		}
		if events[1].Position != w.first.Position || events[2].Position != w.second.Position {
			t.Errorf("%s: stored positions %d, %d; the appends answered %d, %d", stream, events[1].Position, events[2].Position, w.first.Position, w.second.Position)
		}
	}

	last := lastPositionOfStreams(t, s, prefix, appenders)
	waitVisible(t, s, last)
	first := eventstore.Position(^uint64(0))
	for p := range positions {
		first = min(first, p)
	}
	log := readOwnGlobalLog(t, s, positionBefore(t, s, first), prefix, 3*appenders)
	if len(log) != 3*appenders {
		t.Fatalf("the global log holds %d of the %d events", len(log), 3*appenders)
	}
	next := map[string]uint64{}
	for _, e := range log {
		if e.Revision != next[e.Stream] {
			t.Fatalf("the global log has %s revision %d where %d comes next", e.Stream, e.Revision, next[e.Stream])
		}
		next[e.Stream]++
	}
}

// testOneConflictAmongConcurrentAppends races one append with a stale
// expected revision among appends that are right: only it fails, with
// the stream's current revision, and writes nothing; the others are
// written.
func testOneConflictAmongConcurrentAppends(t *testing.T, s eventstore.Store) {
	const appenders = 24
	prefix := uniquePrefix(t)
	ctx := testContext(t)
	contested := prefix + "contested"
	mustAppend(t, s, contested, eventstore.NoStream, newEvent("existing"))

	start := make(chan struct{})
	errs := make([]error, appenders)
	written := make([][]uuid.UUID, appenders)
	var wg sync.WaitGroup
	for i := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream, expected := fmt.Sprintf("%sw%d", prefix, i), eventstore.NoStream
			if i == appenders/2 {
				stream, expected = contested, eventstore.Exact(5) // stale: the stream is at 0
			}
			events := newEvents(stream, 1+i%3)
			written[i] = dataIDs(events)
			<-start
			_, errs[i] = s.Append(ctx, stream, expected, events)
		}()
	}
	close(start)
	wg.Wait()

	for i, err := range errs {
		if i == appenders/2 {
			requireWrongExpectedRevision(t, err, contested, 0)
			if n := len(readWholeStream(t, s, contested)); n != 1 {
				t.Fatalf("the conflicting append wrote: %s holds %d events, want 1", contested, n)
			}
			continue
		}
		stream := fmt.Sprintf("%sw%d", prefix, i)
		if err != nil {
			t.Fatalf("%s failed beside the one conflict: %v", stream, err)
		}
		if got := ids(readWholeStream(t, s, stream)); !equalIDs(got, written[i]) {
			t.Fatalf("%s holds %v, want %v", stream, got, written[i])
		}
	}
}
