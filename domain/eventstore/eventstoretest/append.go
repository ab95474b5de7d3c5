package eventstoretest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// The append half of the suite: revisions, expected revisions, concurrency,
// idempotent retries, validation and the size limit.

func testRevisionsStartAtZeroWithoutGaps(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "s"
	res := mustAppend(t, s, stream, eventstore.NoStream, newEvent("a"))
	if res.Revision != 0 {
		t.Fatalf("first append revision = %d, want 0", res.Revision)
	}
	res = mustAppend(t, s, stream, eventstore.Exact(0), newEvents("b", 3)...)
	if res.Revision != 3 {
		t.Fatalf("revision after 4 events = %d, want 3", res.Revision)
	}
	mustAppend(t, s, stream, eventstore.Any, newEvent("c"))
	events := readWholeStream(t, s, stream)
	if len(events) != 5 {
		t.Fatalf("read %d events, want 5", len(events))
	}
	for i, e := range events {
		if e.Revision != uint64(i) {
			t.Errorf("event %d has revision %d", i, e.Revision)
		}
		if i > 0 && e.Position <= events[i-1].Position {
			t.Errorf("event %d position %d not after previous %d", i, e.Position, events[i-1].Position)
		}
	}
}

func testRecordedEventRoundTrip(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "s"
	in := eventstore.EventData{
		ID:       uuid.New(),
		Type:     "rapport.RoundTripped.v1",
		Data:     []byte(`{"b": 2,  "a":[1, 2.50, "x"], "unicode":"é✓"}`),
		Metadata: []byte(`{"z":1,"actor":"alice"}`),
	}
	before := time.Now().Add(-time.Minute)
	res := mustAppend(t, s, stream, eventstore.NoStream, in)
	after := time.Now().Add(time.Minute)
	events := readWholeStream(t, s, stream)
	if len(events) != 1 {
		t.Fatalf("read %d events, want 1", len(events))
	}
	got := events[0]
	if got.ID != in.ID || got.Type != in.Type || got.Stream != stream || got.Revision != 0 {
		t.Errorf("got id=%s type=%s stream=%s rev=%d, want %s %s %s 0", got.ID, got.Type, got.Stream, got.Revision, in.ID, in.Type, stream)
	}
	if string(got.Data) != string(in.Data) {
		t.Errorf("data not stored byte for byte: got %s want %s", got.Data, in.Data)
	}
	if string(got.Metadata) != string(in.Metadata) {
		t.Errorf("metadata not stored byte for byte: got %s want %s", got.Metadata, in.Metadata)
	}
	if got.Position != res.Position || got.Position == eventstore.Start {
		t.Errorf("position = %d, append said %d", got.Position, res.Position)
	}
	if got.RecordedAt.Before(before) || got.RecordedAt.After(after) {
		t.Errorf("recorded at %s, not within a minute of now", got.RecordedAt)
	}
}

func testExpectedRevisionAny(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "s"
	if res := mustAppend(t, s, stream, eventstore.Any, newEvent("a")); res.Revision != 0 {
		t.Fatalf("Any on a new stream gave revision %d, want 0", res.Revision)
	}
	if res := mustAppend(t, s, stream, eventstore.Any, newEvent("b")); res.Revision != 1 {
		t.Fatalf("Any on an existing stream gave revision %d, want 1", res.Revision)
	}
}

func testExpectedRevisionNoStream(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "s"
	mustAppend(t, s, stream, eventstore.NoStream, newEvent("a"), newEvent("b"))
	_, err := s.Append(testContext(t), stream, eventstore.NoStream, []eventstore.EventData{newEvent("c")})
	requireWrongExpectedRevision(t, err, stream, 1)
	if n := len(readWholeStream(t, s, stream)); n != 2 {
		t.Fatalf("stream has %d events after a rejected append, want 2", n)
	}
}

func testExpectedRevisionStreamExists(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "s"
	_, err := s.Append(testContext(t), stream, eventstore.StreamExists, []eventstore.EventData{newEvent("a")})
	requireWrongExpectedRevision(t, err, stream, eventstore.NoRevision)
	if _, err := s.ReadStream(testContext(t), stream, eventstore.ReadStreamOptions{Limit: 10}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("after a rejected StreamExists append, read gave %v, want ErrStreamNotFound", err)
	}
	mustAppend(t, s, stream, eventstore.NoStream, newEvent("b"))
	if res := mustAppend(t, s, stream, eventstore.StreamExists, newEvent("c")); res.Revision != 1 {
		t.Fatalf("StreamExists on an existing stream gave revision %d, want 1", res.Revision)
	}
}

func testExpectedRevisionExact(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "s"
	_, err := s.Append(testContext(t), stream, eventstore.Exact(0), []eventstore.EventData{newEvent("a")})
	requireWrongExpectedRevision(t, err, stream, eventstore.NoRevision)

	mustAppend(t, s, stream, eventstore.NoStream, newEvents("b", 3)...) // revisions 0..2
	if res := mustAppend(t, s, stream, eventstore.Exact(2), newEvent("c")); res.Revision != 3 {
		t.Fatalf("Exact(2) gave revision %d, want 3", res.Revision)
	}
	// Too high: the stream is at 3.
	_, err = s.Append(testContext(t), stream, eventstore.Exact(7), []eventstore.EventData{newEvent("d")})
	requireWrongExpectedRevision(t, err, stream, 3)
	// Too low with new event ids: a stale writer, not a retry.
	_, err = s.Append(testContext(t), stream, eventstore.Exact(1), []eventstore.EventData{newEvent("e")})
	requireWrongExpectedRevision(t, err, stream, 3)
	if n := len(readWholeStream(t, s, stream)); n != 4 {
		t.Fatalf("stream has %d events after rejected appends, want 4", n)
	}
}

// testConcurrentAppendersOneWinnerPerRevision races appenders that all
// expect the same revision: exactly one may win each round.
func testConcurrentAppendersOneWinnerPerRevision(t *testing.T, s eventstore.Store) {
	const appenders, rounds = 8, 10
	stream := uniquePrefix(t) + "s"
	ctx := testContext(t)
	var winners []uuid.UUID
	for round := range rounds {
		expected := eventstore.NoStream
		if round > 0 {
			expected = eventstore.Exact(uint64(round - 1))
		}
		start := make(chan struct{})
		type outcome struct {
			id  uuid.UUID
			res eventstore.AppendResult
			err error
		}
		outcomes := make(chan outcome, appenders)
		for i := range appenders {
			go func() {
				e := newEvent(fmt.Sprintf("round%d-appender%d", round, i))
				<-start
				res, err := s.Append(ctx, stream, expected, []eventstore.EventData{e})
				outcomes <- outcome{e.ID, res, err}
			}()
		}
		close(start)
		wins := 0
		for range appenders {
			o := <-outcomes
			if o.err == nil {
				wins++
				winners = append(winners, o.id)
				if o.res.Revision != uint64(round) {
					t.Errorf("round %d: winner got revision %d", round, o.res.Revision)
				}
				continue
			}
			requireWrongExpectedRevision(t, o.err, stream, int64(round))
		}
		if wins != 1 {
			t.Fatalf("round %d: %d appenders won, want exactly 1", round, wins)
		}
	}
	if got := ids(readWholeStream(t, s, stream)); !equalIDs(got, winners) {
		t.Fatalf("stream holds %v, want exactly the winners %v", got, winners)
	}
}

// testConcurrentAppendersLoseNothing has appenders retry on conflict until
// each has written its share: every event must be there exactly once.
func testConcurrentAppendersLoseNothing(t *testing.T, s eventstore.Store) {
	const appenders, perAppender = 8, 15
	stream := uniquePrefix(t) + "s"
	ctx := testContext(t)
	var (
		mu      sync.Mutex
		written = map[uuid.UUID]bool{}
		wg      sync.WaitGroup
		errs    = make(chan error, appenders)
	)
	for i := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < perAppender; {
				expected := eventstore.NoStream
				last, err := s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.LastRevision, Limit: 1})
				switch {
				case errors.Is(err, eventstore.ErrStreamNotFound):
				case err != nil:
					errs <- err
					return
				default:
					expected = eventstore.Exact(last[0].Revision)
				}
				e := newEvent(fmt.Sprintf("appender%d-%d", i, j))
				_, err = s.Append(ctx, stream, expected, []eventstore.EventData{e})
				var wrong *eventstore.WrongExpectedRevisionError
				if errors.As(err, &wrong) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				written[e.ID] = true
				mu.Unlock()
				j++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("appender failed: %v", err)
	}
	events := readWholeStream(t, s, stream)
	if len(events) != appenders*perAppender {
		t.Fatalf("stream has %d events, want %d", len(events), appenders*perAppender)
	}
	seen := map[uuid.UUID]bool{}
	for i, e := range events {
		if e.Revision != uint64(i) {
			t.Fatalf("event %d has revision %d: gap or duplicate", i, e.Revision)
		}
		if seen[e.ID] || !written[e.ID] {
			t.Fatalf("event %s duplicated or never acknowledged", e.ID)
		}
		seen[e.ID] = true
	}
}

func testIdempotentRetry(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "s"
	first := newEvents("first", 2)
	res1 := mustAppend(t, s, stream, eventstore.NoStream, first...)
	if again := mustAppend(t, s, stream, eventstore.NoStream, first...); again != res1 {
		t.Fatalf("retry of a NoStream append returned %+v, want the original %+v", again, res1)
	}
	second := newEvents("second", 3)
	res2 := mustAppend(t, s, stream, eventstore.Exact(1), second...)
	if again := mustAppend(t, s, stream, eventstore.Exact(1), second...); again != res2 {
		t.Fatalf("retry of an Exact append returned %+v, want the original %+v", again, res2)
	}
	// A later append does not stop an earlier one from being retried.
	mustAppend(t, s, stream, eventstore.Exact(4), newEvent("third"))
	if again := mustAppend(t, s, stream, eventstore.Exact(1), second...); again != res2 {
		t.Fatalf("late retry returned %+v, want the original %+v", again, res2)
	}
	// Partial overlap is not a retry: it is a conflict.
	partial := []eventstore.EventData{second[0], newEvent("stranger")}
	_, err := s.Append(testContext(t), stream, eventstore.Exact(1), partial)
	requireWrongExpectedRevision(t, err, stream, 5)

	want := append(dataIDs(first), dataIDs(second)...)
	got := ids(readWholeStream(t, s, stream))
	if len(got) != 6 || !equalIDs(got[:5], want) {
		t.Fatalf("stream holds %v, want %v then one more", got, want)
	}
}

func testInvalidAppends(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "s"
	ctx := testContext(t)
	cases := map[string][]eventstore.EventData{
		"no events":         nil,
		"nil event id":      {{Type: "T", Data: []byte(`{}`)}},
		"empty type":        {{ID: uuid.New(), Data: []byte(`{}`)}},
		"data not JSON":     {{ID: uuid.New(), Type: "T", Data: []byte(`{"a":`)}},
		"metadata not JSON": {{ID: uuid.New(), Type: "T", Data: []byte(`{}`), Metadata: []byte(`nope`)}},
	}
	for name, events := range cases {
		if _, err := s.Append(ctx, stream, eventstore.Any, events); !errors.Is(err, eventstore.ErrInvalidAppend) {
			t.Errorf("%s: got %v, want ErrInvalidAppend", name, err)
		}
	}
	if _, err := s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Limit: 1}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("invalid appends wrote something: %v", err)
	}
}

func testAppendTooLarge(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "s"
	big := []byte(`{"blob":"` + strings.Repeat("x", eventstore.MaxAppendSize/2) + `"}`)
	events := []eventstore.EventData{
		{ID: uuid.New(), Type: "Big", Data: big},
		{ID: uuid.New(), Type: "Big", Data: big},
	}
	if _, err := s.Append(testContext(t), stream, eventstore.Any, events); !errors.Is(err, eventstore.ErrAppendTooLarge) {
		t.Fatalf("append of %d bytes gave %v, want ErrAppendTooLarge", eventstore.AppendSize(events), err)
	}
	// Just under the limit is fine.
	fits := []byte(`{"blob":"` + strings.Repeat("x", eventstore.MaxAppendSize-100) + `"}`)
	mustAppend(t, s, stream, eventstore.NoStream, eventstore.EventData{ID: uuid.New(), Type: "Big", Data: fits})
}

func testMultiEventAppendsAreAtomicAndContiguous(t *testing.T, s eventstore.Store) {
	const writers, appendsPerWriter, batch = 6, 10, 5
	prefix := uniquePrefix(t)
	ctx := testContext(t)
	marker := mustAppend(t, s, prefix+"marker", eventstore.NoStream, newEvent("marker"))
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("%sw%d", prefix, w)
			for a := range appendsPerWriter {
				events := newEvents(fmt.Sprintf("w%d-a%d", w, a), batch)
				res, err := s.Append(ctx, stream, eventstore.Any, events)
				if err != nil {
					errs <- err
					return
				}
				if res.Revision != uint64((a+1)*batch-1) {
					errs <- fmt.Errorf("append %d of writer %d returned revision %d", a, w, res.Revision)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitVisible(t, s, lastPositionOfStreams(t, s, prefix, writers))
	own := readOwnGlobalLog(t, s, marker.Position, prefix, writers*appendsPerWriter*batch)
	if len(own) != writers*appendsPerWriter*batch {
		t.Fatalf("global log holds %d of our events, want %d", len(own), writers*appendsPerWriter*batch)
	}
	// Each batch of 5 must appear as a run: same stream, consecutive
	// revisions, no other event of ours in between.
	for i := 0; i < len(own); i += batch {
		first := own[i]
		if first.Revision%batch != 0 {
			t.Fatalf("global event %d (stream %s revision %d) does not start a batch: appends interleaved", i, first.Stream, first.Revision)
		}
		for j := 1; j < batch; j++ {
			e := own[i+j]
			if e.Stream != first.Stream || e.Revision != first.Revision+uint64(j) {
				t.Fatalf("batch starting at %s@%d is interrupted by %s@%d", first.Stream, first.Revision, e.Stream, e.Revision)
			}
		}
	}
}

// lastPositionOfStreams is the highest position of the last events of
// streams prefix+"w0" … prefix+"w<n-1>".
func lastPositionOfStreams(t *testing.T, s eventstore.Store, prefix string, n int) eventstore.Position {
	t.Helper()
	var last eventstore.Position
	for w := range n {
		events, err := s.ReadStream(testContext(t), fmt.Sprintf("%sw%d", prefix, w), eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.LastRevision, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, events[0].Position)
	}
	return last
}
