// Package eventstore is Rapport's event-store port: the small interface that
// the command side appends to and the projections subscribe to, with one
// implementation per store (infra/postgres, infra/esdb, and memstore in
// memory for unit tests) and one conformance suite (eventstoretest) that
// every implementation must pass.
//
// The semantics follow EventStoreDB's, because EventStoreDB is the production
// store and the embedded Postgres store must not let code rely on anything the
// production store would not do:
//
//   - every stream's revisions start at 0 and have no gaps;
//   - the global log is totally ordered by Position; positions are sparse
//     (never assume p+1) and the events of one append are contiguous in it;
//   - an append is atomic and checked against an expected revision;
//   - retrying an append with the same event ids and the same expected
//     revision succeeds once and then returns the original result.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
)

// Store is the event-store port.
type Store interface {
	// Append writes events to the end of stream atomically if the stream is
	// at the expected revision. It returns the revision and global position
	// of the last event written. The caller chooses every event id: the same
	// ids appended again with the same expected revision are an idempotent
	// retry and return the original result without writing.
	Append(ctx context.Context, stream string, expected ExpectedRevision, events []EventData) (AppendResult, error)

	// ReadStream reads up to opts.Limit events of one stream, starting at
	// opts.From (inclusive) and going in opts.Direction. It returns
	// ErrStreamNotFound when the stream has no events.
	ReadStream(ctx context.Context, stream string, opts ReadStreamOptions) ([]RecordedEvent, error)

	// ReadAll reads up to opts.Limit events of the global log. Forwards it
	// returns events strictly after opts.From; backwards, strictly before it.
	// System events of the underlying store are never returned.
	ReadAll(ctx context.Context, opts ReadAllOptions) ([]RecordedEvent, error)

	// SubscribeAll delivers the global log strictly after opts.From: first
	// the events already written (catch-up), then a CaughtUp message, then
	// events as they commit (live), in global order, without gaps or
	// duplicates. The subscription ends when ctx ends or Close is called.
	SubscribeAll(ctx context.Context, opts SubscribeOptions) (Subscription, error)

	// HeadPosition returns the position of the newest event that readers
	// of the global log can see — the first event ReadAll returns
	// backwards from End — or Start when there is none. System events of
	// the underlying store do not count. An append that has returned may
	// take a moment to become visible (see ReadAll), but nothing ever
	// becomes visible at or below a head once reported, so a subscription
	// From it delivers exactly the events written after it. Projections
	// measure their lag against it: a checkpoint at the head is caught up.
	HeadPosition(ctx context.Context) (Position, error)
}

// Counter is implemented by stores that can count events without reading
// them (the Postgres store). Projections use it for their lag in events;
// with a store that cannot count (EventStoreDB) they read the log instead,
// up to a bound, and extrapolate beyond it. Check for it with a type
// assertion on the Store.
type Counter interface {
	// CountAfter counts the events strictly after the position whose
	// stream starts with one of prefixes, or every event when prefixes is
	// empty. Prefixes are plain strings (no pattern characters), matched
	// as SubscribeOptions.StreamPrefixes are. It may count events that
	// committed but are not yet visible to readers, never fewer than
	// ReadAll would return.
	CountAfter(ctx context.Context, after Position, prefixes []string) (int64, error)
}

// EventData is an event to append.
type EventData struct {
	// ID identifies the event. It must not be uuid.Nil: ids are chosen by the
	// caller (deterministically, by the command layer) so retries are safe.
	ID   uuid.UUID
	Type string
	// Data is a JSON document, stored byte for byte.
	Data []byte
	// Metadata is a JSON document, stored byte for byte, or empty.
	Metadata []byte
}

// RecordedEvent is an event as stored.
type RecordedEvent struct {
	ID       uuid.UUID
	Type     string
	Data     []byte
	Metadata []byte
	Stream   string
	// Revision is the event's 0-based number within its stream.
	Revision uint64
	// Position is the event's place in the global log.
	Position Position
	// RecordedAt is the store's clock when the event was written.
	RecordedAt time.Time
}

// AppendResult locates the last event written by an append.
type AppendResult struct {
	Revision uint64
	Position Position
}

// Position is a place in the global log. Positions are strictly increasing
// in log order but sparse: the next event's position is not Position+1.
type Position uint64

const (
	// Start is the position before the first event of the global log.
	Start Position = 0
	// End is the position after the last event of the global log.
	End Position = math.MaxUint64
)

// Direction is the order of a read.
type Direction int

const (
	Forwards Direction = iota
	Backwards
)

// LastRevision, used as ReadStreamOptions.From, starts a read at the
// stream's last event (useful backwards).
const LastRevision uint64 = math.MaxUint64

// ReadStreamOptions select events of one stream.
type ReadStreamOptions struct {
	Direction Direction
	// From is the first revision returned (inclusive), or LastRevision.
	From uint64
	// Limit bounds the number of events returned; it must be positive.
	Limit int
}

// ReadAllOptions select events of the global log.
type ReadAllOptions struct {
	Direction Direction
	// From is exclusive: forwards returns events after it (Start reads from
	// the beginning), backwards returns events before it (End reads from
	// the head).
	From Position
	// Limit bounds the number of events returned; it must be positive.
	Limit int
}

// SubscribeOptions configure a subscription to the global log.
type SubscribeOptions struct {
	// From is exclusive: the first event delivered is the first after it.
	// Pass the Position of the last message handled to resume.
	From Position
	// StreamPrefixes, when not empty, restricts delivery to streams whose
	// name starts with one of them. The filter runs inside the store, which
	// then sends CheckpointReached messages so that a consumer of a sparse
	// stream can still advance its resume position.
	StreamPrefixes []string
}

// Subscription is a live view of the global log. It is not safe for
// concurrent use: one goroutine calls Next.
type Subscription interface {
	// Next blocks until the next message. After an error the subscription is
	// finished; errors that the implementation can recover from (a dropped
	// connection) are retried inside Next and never surface.
	Next(ctx context.Context) (Message, error)
	// Close ends the subscription and releases its resources.
	Close() error
}

// Buffered is implemented by subscriptions that can tell how many messages
// Next would return without waiting. Consumers use it to size batches: keep
// collecting while more is buffered, commit when the subscription would
// block.
type Buffered interface {
	Buffered() int
}

// MessageKind says what a subscription message carries.
type MessageKind int

const (
	// EventAppeared carries an event.
	EventAppeared MessageKind = iota + 1
	// CheckpointReached says that no event matching the filter exists up to
	// Position; it is a resume token, not an event.
	CheckpointReached
	// CaughtUp says that every event written before the subscription
	// reached this point has been delivered; later events are live.
	CaughtUp
)

func (k MessageKind) String() string {
	switch k {
	case EventAppeared:
		return "event"
	case CheckpointReached:
		return "checkpoint"
	case CaughtUp:
		return "caught-up"
	}
	return fmt.Sprintf("MessageKind(%d)", int(k))
}

// Message is one delivery of a subscription.
type Message struct {
	Kind MessageKind
	// Event is set when Kind is EventAppeared.
	Event RecordedEvent
	// Position is the resume token: subscribing From it delivers exactly the
	// messages after this one. For an event it equals Event.Position.
	Position Position
}

// ExpectedRevision is the state a stream must be in for an append to go
// ahead.
type ExpectedRevision struct {
	kind     expectedKind
	revision uint64
}

type expectedKind int

const (
	expectAny expectedKind = iota
	expectNoStream
	expectStreamExists
	expectExact
)

var (
	// Any appends whatever the stream's state.
	Any = ExpectedRevision{kind: expectAny}
	// NoStream appends only if the stream has no events.
	NoStream = ExpectedRevision{kind: expectNoStream}
	// StreamExists appends only if the stream has at least one event.
	StreamExists = ExpectedRevision{kind: expectStreamExists}
)

// Exact appends only if the stream's last event has this revision.
func Exact(revision uint64) ExpectedRevision {
	return ExpectedRevision{kind: expectExact, revision: revision}
}

// IsAny reports whether e is Any.
func (e ExpectedRevision) IsAny() bool { return e.kind == expectAny }

// IsNoStream reports whether e is NoStream.
func (e ExpectedRevision) IsNoStream() bool { return e.kind == expectNoStream }

// IsStreamExists reports whether e is StreamExists.
func (e ExpectedRevision) IsStreamExists() bool { return e.kind == expectStreamExists }

// Revision returns the exact revision expected, if e is Exact.
func (e ExpectedRevision) Revision() (uint64, bool) {
	return e.revision, e.kind == expectExact
}

func (e ExpectedRevision) String() string {
	switch e.kind {
	case expectAny:
		return "any"
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	}
	return fmt.Sprintf("revision %d", e.revision)
}

// NoRevision is the current revision of a stream without events.
const NoRevision int64 = -1

// WrongExpectedRevisionError rejects an append whose expected revision did
// not match the stream.
type WrongExpectedRevisionError struct {
	Stream   string
	Expected ExpectedRevision
	// Current is the stream's last revision, or NoRevision.
	Current int64
}

func (e *WrongExpectedRevisionError) Error() string {
	current := "no stream"
	if e.Current != NoRevision {
		current = fmt.Sprintf("revision %d", e.Current)
	}
	return fmt.Sprintf("eventstore: wrong expected revision on stream %q: expected %s, stream is at %s", e.Stream, e.Expected, current)
}

var (
	// ErrStreamNotFound is returned when reading a stream with no events.
	ErrStreamNotFound = errors.New("eventstore: stream not found")
	// ErrAppendTooLarge rejects an append above MaxAppendSize bytes.
	ErrAppendTooLarge = errors.New("eventstore: append too large")
	// ErrInvalidAppend rejects an append that no store could write: no
	// events, an event without id or type, data that is not JSON.
	ErrInvalidAppend = errors.New("eventstore: invalid append")
	// ErrSubscriptionClosed ends a subscription that was closed.
	ErrSubscriptionClosed = errors.New("eventstore: subscription closed")
	// ErrUnavailable says that the store could not be reached; the outcome
	// of an append that fails with it is unknown, so retry it with the same
	// event ids.
	ErrUnavailable = errors.New("eventstore: store unavailable")
)

// MaxAppendSize is the largest append, in bytes, that every store accepts.
// It is EventStoreDB's default limit, counted the way EventStoreDB counts it
// (data + metadata + twice the type, per event); the Postgres store enforces
// the same limit so that nothing passes in development that production
// refuses.
const MaxAppendSize = 1 << 20

// AppendSize is the size of events as counted against MaxAppendSize.
func AppendSize(events []EventData) int {
	n := 0
	for _, e := range events {
		n += len(e.Data) + len(e.Metadata) + 2*len(e.Type)
	}
	return n
}

// ValidateAppend checks what every store requires of an append before it
// touches the store.
func ValidateAppend(stream string, events []EventData) error {
	if stream == "" {
		return fmt.Errorf("%w: empty stream name", ErrInvalidAppend)
	}
	if len(events) == 0 {
		return fmt.Errorf("%w: no events", ErrInvalidAppend)
	}
	for i, e := range events {
		if e.ID == uuid.Nil {
			return fmt.Errorf("%w: event %d has no id", ErrInvalidAppend, i)
		}
		if e.Type == "" {
			return fmt.Errorf("%w: event %d has no type", ErrInvalidAppend, i)
		}
		if !json.Valid(e.Data) {
			return fmt.Errorf("%w: event %d data is not JSON", ErrInvalidAppend, i)
		}
		if len(e.Metadata) > 0 && !json.Valid(e.Metadata) {
			return fmt.Errorf("%w: event %d metadata is not JSON", ErrInvalidAppend, i)
		}
	}
	if size := AppendSize(events); size > MaxAppendSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrAppendTooLarge, size, MaxAppendSize)
	}
	return nil
}
