// Package memstore is an event store in memory: the port's semantics with
// nothing behind them, for unit tests of the layers above the store (the
// command side) that would otherwise need a database, and for tools that
// want a throwaway log. It passes the same conformance suite as the
// Postgres and EventStoreDB adapters (eventstoretest.Run), so code tested
// against it meets the same rules in production: revisions without gaps,
// expected revisions, idempotent retries by event id, the 1 MiB append
// limit, sparse global positions, catch-up then live subscriptions with
// stream-prefix filters and checkpoints.
//
// What it does not model: durability (the log lives as long as the Store)
// and unavailability. Being in the process, it never returns
// eventstore.ErrUnavailable; an append whose context has ended fails with
// the context's error before it touches the log, so its outcome is always
// known.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// positionGap spaces the global positions of consecutive events by more
// than one (plus the event's size, as EventStoreDB's byte offsets are), so
// that code assuming the next event is at Position+1 fails here as it
// would in production.
const positionGap = 64

// Store is an eventstore.Store and eventstore.Counter in memory. It is safe
// for concurrent use; its zero value is not: use New.
type Store struct {
	now func() time.Time

	mu      sync.RWMutex
	log     []eventstore.RecordedEvent // the global log, in position order
	streams map[string]*stream
	// appended wakes subscriptions after every append.
	appended eventstore.Signal
}

// stream indexes one stream's events in the global log.
type stream struct {
	events []int // indexes into Store.log, by revision
	// firstRevision maps an event id to the first revision that carries it,
	// to recognise the retry of an append that expected Any or
	// StreamExists.
	firstRevision map[uuid.UUID]uint64
}

var (
	_ eventstore.Store   = (*Store)(nil)
	_ eventstore.Counter = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{now: time.Now, streams: map[string]*stream{}}
}

// Append implements eventstore.Store, with the retry rule of the other
// stores: an append is a retry, answered with the original result, only if
// the same ids already sit, in order, exactly where it would have put them.
func (s *Store) Append(ctx context.Context, name string, expected eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateAppend(name, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("memstore: append: %w", err)
	}
	s.mu.Lock()
	res, err := s.appendLocked(name, expected, events)
	s.mu.Unlock()
	if err == nil {
		s.appended.Broadcast()
	}
	return res, err
}

func (s *Store) appendLocked(name string, expected eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, error) {
	st := s.streams[name]
	current := eventstore.NoRevision
	if st != nil {
		current = int64(len(st.events)) - 1
	}
	wrong := &eventstore.WrongExpectedRevisionError{Stream: name, Expected: expected, Current: current}

	// retryAt is the revision where a retry of this append would begin, or
	// -1 when the append is not a candidate for one.
	retryAt := int64(-1)
	switch rev, exact := expected.Revision(); {
	case exact:
		switch {
		case current < 0 || rev > uint64(current):
			return eventstore.AppendResult{}, wrong
		case rev < uint64(current):
			retryAt = int64(rev) + 1
		}
	case expected.IsNoStream():
		if current >= 0 {
			retryAt = 0
		}
	case expected.IsStreamExists() && current < 0:
		return eventstore.AppendResult{}, wrong
	default: // Any, or StreamExists on a stream that exists
		if st != nil {
			if first, ok := st.firstRevision[events[0].ID]; ok {
				retryAt = int64(first)
			}
		}
	}
	if retryAt >= 0 {
		last := retryAt + int64(len(events)) - 1
		if last > current {
			return eventstore.AppendResult{}, wrong
		}
		for i, e := range events {
			if s.log[st.events[retryAt+int64(i)]].ID != e.ID {
				return eventstore.AppendResult{}, wrong
			}
		}
		rec := s.log[st.events[last]]
		return eventstore.AppendResult{Revision: rec.Revision, Position: rec.Position}, nil
	}

	if st == nil {
		st = &stream{firstRevision: map[uuid.UUID]uint64{}}
		s.streams[name] = st
	}
	position := s.headLocked()
	recordedAt := s.now()
	for _, e := range events {
		position += positionGap + eventstore.Position(eventstore.AppendSize([]eventstore.EventData{e}))
		revision := uint64(len(st.events))
		s.log = append(s.log, eventstore.RecordedEvent{
			ID:         e.ID,
			Type:       e.Type,
			Data:       clone(e.Data),
			Metadata:   clone(e.Metadata),
			Stream:     name,
			Revision:   revision,
			Position:   position,
			RecordedAt: recordedAt,
		})
		st.events = append(st.events, len(s.log)-1)
		if _, seen := st.firstRevision[e.ID]; !seen {
			st.firstRevision[e.ID] = revision
		}
	}
	return eventstore.AppendResult{Revision: uint64(len(st.events) - 1), Position: position}, nil
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, name string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	if opts.Limit < 1 {
		return nil, errors.New("memstore: read stream: limit must be positive")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: read stream: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.streams[name]
	if st == nil {
		return nil, fmt.Errorf("%w: %s", eventstore.ErrStreamNotFound, name)
	}
	n := uint64(len(st.events))
	var out []eventstore.RecordedEvent
	if opts.Direction == eventstore.Backwards {
		from := min(opts.From, n-1)
		for rev := int64(from); rev >= 0 && len(out) < opts.Limit; rev-- {
			out = append(out, copyEvent(s.log[st.events[rev]]))
		}
		return out, nil
	}
	for rev := opts.From; rev < n && len(out) < opts.Limit; rev++ {
		out = append(out, copyEvent(s.log[st.events[rev]]))
	}
	return out, nil
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error) {
	if opts.Limit < 1 {
		return nil, errors.New("memstore: read all: limit must be positive")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: read all: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []eventstore.RecordedEvent
	if opts.Direction == eventstore.Backwards {
		for i := s.indexAfterLocked(opts.From) - 1; i >= 0 && len(out) < opts.Limit; i-- {
			if s.log[i].Position < opts.From {
				out = append(out, copyEvent(s.log[i]))
			}
		}
		return out, nil
	}
	for i := s.indexAfterLocked(opts.From); i < len(s.log) && len(out) < opts.Limit; i++ {
		out = append(out, copyEvent(s.log[i]))
	}
	return out, nil
}

// HeadPosition implements eventstore.Store. An append is visible as soon
// as it returns.
func (s *Store) HeadPosition(ctx context.Context) (eventstore.Position, error) {
	if err := ctx.Err(); err != nil {
		return eventstore.Start, fmt.Errorf("memstore: head position: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.headLocked(), nil
}

// CountAfter implements eventstore.Counter, by counting: it is meant for
// logs that fit in memory.
func (s *Store) CountAfter(ctx context.Context, after eventstore.Position, prefixes []string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memstore: count: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var n int64
	for i := s.indexAfterLocked(after); i < len(s.log); i++ {
		if matches(s.log[i].Stream, prefixes) {
			n++
		}
	}
	return n, nil
}

func (s *Store) headLocked() eventstore.Position {
	if len(s.log) == 0 {
		return eventstore.Start
	}
	return s.log[len(s.log)-1].Position
}

// indexAfterLocked is the index of the first event strictly after p.
func (s *Store) indexAfterLocked(p eventstore.Position) int {
	return sort.Search(len(s.log), func(i int) bool { return s.log[i].Position > p })
}

// matches reports whether a stream passes a prefix filter; no prefixes
// pass everything.
func matches(name string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// copyEvent gives a reader its own bytes, so that nothing a caller does to
// a returned event changes the log.
func copyEvent(e eventstore.RecordedEvent) eventstore.RecordedEvent {
	e.Data, e.Metadata = clone(e.Data), clone(e.Metadata)
	return e
}
