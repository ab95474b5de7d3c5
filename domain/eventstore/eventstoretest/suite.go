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
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// NewStore returns the store under test. It may return the same store to
// several tests; tests do not run in parallel with each other.
type NewStore func(t *testing.T) eventstore.Store

// Run runs every conformance test against the stores that newStore makes.
// The tests live by concern: append.go, concurrent.go, read.go, subscribe.go and head.go
// (the head position and the optional eventstore.Counter).
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
		{"ConcurrentAppendsToDifferentStreams", testConcurrentAppendsToDifferentStreams},
		{"OneConflictAmongConcurrentAppends", testOneConflictAmongConcurrentAppends},
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
		{"HeadPositionFollowsAppends", testHeadPositionFollowsAppends},
		{"SubscriptionFromHeadDeliversOnlyLaterEvents", testSubscriptionFromHeadDeliversOnlyLaterEvents},
		{"CountAfter", testCountAfter},
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
