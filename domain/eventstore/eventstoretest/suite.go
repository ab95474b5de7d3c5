// Package eventstoretest is the conformance suite of the event-store port:
// one test body that every implementation must pass, so that code written
// against the embedded Postgres store behaves the same on EventStoreDB.
//
// The suite never assumes the global log is empty or private: it names its
// streams uniquely and reads the global log only between positions it wrote
// itself, so it also runs against a shared, real EventStoreDB.
package eventstoretest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// NewStore returns the store under test. It may return the same store to
// several tests; tests do not run in parallel with each other.
type NewStore func(t *testing.T) eventstore.Store

// Run runs every conformance test against the stores that newStore makes.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, eventstore.Store)
	}{
		{"RevisionsStartAtZeroWithoutGaps", testRevisionsStartAtZeroWithoutGaps},
		{"RecordedEventRoundTrip", testRecordedEventRoundTrip},
		{"ExpectedRevisionAny", testExpectedRevisionAny},
		{"ExpectedRevisionNoStream", testExpectedRevisionNoStream},
		{"ExpectedRevisionStreamExists", testExpectedRevisionStreamExists},
		{"ExpectedRevisionExact", testExpectedRevisionExact},
		{"ConcurrentAppendersOneWinnerPerRevision", testConcurrentAppendersOneWinnerPerRevision},
		{"ConcurrentAppendersLoseNothing", testConcurrentAppendersLoseNothing},
		{"IdempotentRetry", testIdempotentRetry},
		{"InvalidAppends", testInvalidAppends},
		{"AppendTooLarge", testAppendTooLarge},
		{"MultiEventAppendsAreAtomicAndContiguous", testMultiEventAppendsAreAtomicAndContiguous},
		{"ReadStreamForwards", testReadStreamForwards},
		{"ReadStreamBackwards", testReadStreamBackwards},
		{"ReadStreamNotFound", testReadStreamNotFound},
		{"ReadAllBothDirections", testReadAllBothDirections},
		{"GlobalOrder", testGlobalOrder},
		{"SubscriptionCatchUpThenLive", testSubscriptionCatchUpThenLive},
		{"SubscriptionResumesStrictlyAfter", testSubscriptionResumesStrictlyAfter},
		{"SubscriptionStreamPrefixFilter", testSubscriptionStreamPrefixFilter},
		{"SubscriptionCheckpointsOnSparseFilter", testSubscriptionCheckpointsOnSparseFilter},
		{"SubscriptionClose", testSubscriptionClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

// timeout bounds every wait of the suite; a correct store answers in far
// less, so hitting it is a failure, not slowness.
const timeout = 20 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// uniquePrefix names the streams of one test so that tests never see each
// other's streams, even on a shared server.
func uniquePrefix(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, t.Name())
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return fmt.Sprintf("conf%s%s-", name, hex.EncodeToString(b))
}

// newEvent makes an event whose data says which event it is, so a mix-up
// shows in the failure message.
func newEvent(label string) eventstore.EventData {
	id := uuid.New()
	data, _ := json.Marshal(map[string]string{"label": label})
	meta, _ := json.Marshal(map[string]string{"id": id.String()})
	return eventstore.EventData{ID: id, Type: "ConformanceTested", Data: data, Metadata: meta}
}

func newEvents(label string, n int) []eventstore.EventData {
	events := make([]eventstore.EventData, n)
	for i := range events {
		events[i] = newEvent(fmt.Sprintf("%s-%d", label, i))
	}
	return events
}

func mustAppend(t *testing.T, s eventstore.Store, stream string, expected eventstore.ExpectedRevision, events ...eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(testContext(t), stream, expected, events)
	if err != nil {
		t.Fatalf("append %d events to %s expecting %s: %v", len(events), stream, expected, err)
	}
	return res
}

func requireWrongExpectedRevision(t *testing.T, err error, stream string, current int64) {
	t.Helper()
	var wrong *eventstore.WrongExpectedRevisionError
	if !errors.As(err, &wrong) {
		t.Fatalf("got error %v, want *eventstore.WrongExpectedRevisionError", err)
	}
	if wrong.Stream != stream {
		t.Errorf("WrongExpectedRevisionError.Stream = %q, want %q", wrong.Stream, stream)
	}
	if wrong.Current != current {
		t.Errorf("WrongExpectedRevisionError.Current = %d, want %d", wrong.Current, current)
	}
}

func readWholeStream(t *testing.T, s eventstore.Store, stream string) []eventstore.RecordedEvent {
	t.Helper()
	events, err := s.ReadStream(testContext(t), stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: 0, Limit: 100000})
	if err != nil {
		t.Fatalf("read stream %s: %v", stream, err)
	}
	return events
}

func ids(events []eventstore.RecordedEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func dataIDs(events []eventstore.EventData) []uuid.UUID {
	out := make([]uuid.UUID, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func equalIDs(a, b []uuid.UUID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

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

// readOwnGlobalLog reads the global log forwards after `after` and keeps
// only the events of streams with prefix, until it has want of them.
func readOwnGlobalLog(t *testing.T, s eventstore.Store, after eventstore.Position, prefix string, want int) []eventstore.RecordedEvent {
	t.Helper()
	ctx := testContext(t)
	var own []eventstore.RecordedEvent
	from := after
	for len(own) < want {
		page, err := s.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Forwards, From: from, Limit: 500})
		if err != nil {
			t.Fatalf("read all after %d: %v", from, err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if e.Position <= from {
				t.Fatalf("ReadAll forwards after %d returned position %d", from, e.Position)
			}
			from = e.Position
			if strings.HasPrefix(e.Stream, prefix) {
				own = append(own, e)
			}
		}
	}
	return own
}

// waitVisible waits until the global log's readers see position p: a store
// may publish an append to readers of the global log a little after the
// append returns (the Postgres store waits for older transactions to end).
func waitVisible(t *testing.T, s eventstore.Store, p eventstore.Position) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		head, err := s.ReadAll(testContext(t), eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
		if err != nil {
			t.Fatalf("read the head of the global log: %v", err)
		}
		if len(head) > 0 && head[0].Position >= p {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("position %d never became visible in the global log", p)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// positionBefore returns a position strictly before the event at p, found
// by reading backwards, so that a forwards read after it starts at p.
func positionBefore(t *testing.T, s eventstore.Store, p eventstore.Position) eventstore.Position {
	t.Helper()
	page, err := s.ReadAll(testContext(t), eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: p, Limit: 1})
	if err != nil {
		t.Fatalf("read all backwards before %d: %v", p, err)
	}
	if len(page) == 0 {
		return eventstore.Start
	}
	return page[0].Position
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

func testReadStreamForwards(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "s"
	written := newEvents("e", 10)
	mustAppend(t, s, stream, eventstore.NoStream, written...)
	ctx := testContext(t)
	cases := []struct {
		from       uint64
		limit      int
		wantFirst  uint64
		wantLength int
	}{
		{0, 3, 0, 3},
		{4, 3, 4, 3},
		{8, 5, 8, 2},
		{0, 100, 0, 10},
		{10, 5, 0, 0},
	}
	for _, c := range cases {
		got, err := s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: c.from, Limit: c.limit})
		if err != nil {
			t.Fatalf("forwards from %d limit %d: %v", c.from, c.limit, err)
		}
		if len(got) != c.wantLength {
			t.Fatalf("forwards from %d limit %d: %d events, want %d", c.from, c.limit, len(got), c.wantLength)
		}
		for i, e := range got {
			if e.Revision != c.wantFirst+uint64(i) || e.ID != written[e.Revision].ID {
				t.Fatalf("forwards from %d: event %d is revision %d id %s", c.from, i, e.Revision, e.ID)
			}
		}
	}
}

func testReadStreamBackwards(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "s"
	written := newEvents("e", 10)
	mustAppend(t, s, stream, eventstore.NoStream, written...)
	ctx := testContext(t)
	cases := []struct {
		from       uint64
		limit      int
		wantFirst  uint64
		wantLength int
	}{
		{eventstore.LastRevision, 3, 9, 3},
		{eventstore.LastRevision, 100, 9, 10},
		{5, 2, 5, 2},
		{1, 5, 1, 2},
		{0, 5, 0, 1},
	}
	for _, c := range cases {
		got, err := s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: c.from, Limit: c.limit})
		if err != nil {
			t.Fatalf("backwards from %d limit %d: %v", c.from, c.limit, err)
		}
		if len(got) != c.wantLength {
			t.Fatalf("backwards from %d limit %d: %d events, want %d", c.from, c.limit, len(got), c.wantLength)
		}
		for i, e := range got {
			if e.Revision != c.wantFirst-uint64(i) || e.ID != written[e.Revision].ID {
				t.Fatalf("backwards from %d: event %d is revision %d id %s", c.from, i, e.Revision, e.ID)
			}
		}
	}
}

func testReadStreamNotFound(t *testing.T, s eventstore.Store) {
	stream := uniquePrefix(t) + "never-written"
	for _, dir := range []eventstore.Direction{eventstore.Forwards, eventstore.Backwards} {
		_, err := s.ReadStream(testContext(t), stream, eventstore.ReadStreamOptions{Direction: dir, From: 0, Limit: 10})
		if !errors.Is(err, eventstore.ErrStreamNotFound) {
			t.Fatalf("direction %d: got %v, want ErrStreamNotFound", dir, err)
		}
	}
}

func testReadAllBothDirections(t *testing.T, s eventstore.Store) {
	prefix := uniquePrefix(t)
	var positions []eventstore.Position
	var written []uuid.UUID
	for i := range 6 {
		e := newEvent(fmt.Sprint(i))
		res := mustAppend(t, s, fmt.Sprintf("%s%d", prefix, i%2), eventstore.Any, e)
		positions = append(positions, res.Position)
		written = append(written, e.ID)
	}
	ctx := testContext(t)
	waitVisible(t, s, positions[5])
	// Forwards is exclusive of From.
	got, err := s.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Forwards, From: positions[1], Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !equalIDs(ids(got), written[2:5]) {
		t.Fatalf("forwards after event 1, limit 3: got %v, want %v", ids(got), written[2:5])
	}
	// Backwards is exclusive of From too.
	got, err = s.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: positions[4], Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !equalIDs(ids(got), []uuid.UUID{written[3], written[2]}) {
		t.Fatalf("backwards before event 4, limit 2: got %v, want %v", ids(got), []uuid.UUID{written[3], written[2]})
	}
	// Backwards from End starts at the head and comes down to ours (other
	// writers of a shared server may have written since).
	got, err = s.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var ownBackwards []eventstore.RecordedEvent
	for i, e := range got {
		if i > 0 && e.Position >= got[i-1].Position {
			t.Fatalf("backwards from End: position %d after %d", e.Position, got[i-1].Position)
		}
		if strings.HasPrefix(e.Stream, prefix) {
			ownBackwards = append(ownBackwards, e)
		}
	}
	if len(ownBackwards) == 0 || ownBackwards[0].ID != written[5] {
		t.Fatalf("backwards from End: our newest event is %v, want the last event written %s", ids(ownBackwards), written[5])
	}
	// Forwards from Start reaches our events, in order, eventually.
	own := readOwnGlobalLog(t, s, eventstore.Start, prefix, 6)
	if !equalIDs(ids(own), written) {
		t.Fatalf("forwards from Start: our events %v, want %v", ids(own), written)
	}
	// Nothing of ours after the last one.
	got, err = s.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Forwards, From: positions[5], Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if strings.HasPrefix(e.Stream, prefix) {
			t.Fatalf("forwards after the last event returned our event %s", e.ID)
		}
	}
	// Invalid limits are refused rather than read as "everything".
	if _, err := s.ReadAll(ctx, eventstore.ReadAllOptions{From: eventstore.Start, Limit: 0}); err == nil {
		t.Fatal("ReadAll with limit 0 succeeded")
	}
}

func testGlobalOrder(t *testing.T, s eventstore.Store) {
	prefix := uniquePrefix(t)
	var written []uuid.UUID
	var results []eventstore.AppendResult
	for i := range 12 {
		events := newEvents(fmt.Sprint(i), 1+i%3)
		res := mustAppend(t, s, fmt.Sprintf("%s%d", prefix, i%4), eventstore.Any, events...)
		if len(results) > 0 && res.Position <= results[len(results)-1].Position {
			t.Fatalf("append %d got position %d, not after %d", i, res.Position, results[len(results)-1].Position)
		}
		results = append(results, res)
		written = append(written, dataIDs(events)...)
	}
	waitVisible(t, s, results[len(results)-1].Position)
	start := positionBefore(t, s, results[0].Position) // append 0 wrote one event
	own := readOwnGlobalLog(t, s, start, prefix, len(written))
	if !equalIDs(ids(own), written) {
		t.Fatalf("global log order %v, want append order %v", ids(own), written)
	}
	last := 0
	for _, res := range results {
		for last < len(own) && own[last].Position != res.Position {
			last++
		}
		if last == len(own) {
			t.Fatalf("append result position %d is not an event position in the global log", res.Position)
		}
	}
}

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
