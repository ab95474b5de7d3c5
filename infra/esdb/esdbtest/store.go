package esdbtest

import (
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// record is one event in the log. Records are immutable once appended, so
// readers may use them after releasing the store lock.
type record struct {
	id          uuid.UUID
	stream      string
	revision    uint64
	pos         uint64 // commit == prepare, as for every v20+ append
	eventType   string
	contentType string
	created     int64 // .NET ticks (100 ns) since the Unix epoch
	data        []byte
	metadata    []byte // the client's custom metadata
}

// streamState indexes one stream's records by revision and by event id (the
// latter for the idempotency checks of Append).
type streamState struct {
	records []*record
	byID    map[uuid.UUID]uint64
}

func (s *streamState) current() int64 {
	if s == nil {
		return -1
	}
	return int64(len(s.records)) - 1
}

// firstPosition is where the first record goes. Real logs start after a chunk
// header, and a non-zero first position keeps Start (0) strictly before every
// event, which is what makes Start usable as an exclusive resume token.
const firstPosition = 128

// store is the in-memory transaction log: all records in log order plus a
// per-stream index. One RWMutex guards everything; appends take it for
// writing, so all events of one append become visible at once.
type store struct {
	mu         sync.RWMutex
	all        []*record
	streams    map[string]*streamState
	next       uint64
	live       map[*liveQueue]struct{}
	liveBuffer int
	now        func() time.Time
}

func newStore(liveBuffer int, now func() time.Time) *store {
	return &store{
		streams:    make(map[string]*streamState),
		next:       firstPosition,
		live:       make(map[*liveQueue]struct{}),
		liveBuffer: liveBuffer,
		now:        now,
	}
}

// recordSize is a pseudo on-disk size: it makes positions sparse and
// dependent on the event, as log byte offsets are, so that nothing can
// assume "next position = position + 1".
func recordSize(e *record) uint64 {
	n := 90 + len(e.stream) + len(e.eventType) + len(e.contentType) + len(e.data) + len(e.metadata)
	return uint64((n + 7) &^ 7)
}

// ticks converts a wall-clock time to the .NET ticks the client expects in
// the "created" metadata (it log.Fatalf's on anything else).
func ticks(t time.Time) int64 { return t.UnixNano() / 100 }

type expectKind int

const (
	expectAny expectKind = iota
	expectNoStream
	expectStreamExists
	expectRevision
)

type expectation struct {
	kind     expectKind
	revision uint64
}

type outcomeKind int

const (
	outcomeWritten outcomeKind = iota
	outcomeIdempotent
	outcomeWrongVersion
)

// outcome is the store's answer to an append: the revision and position of
// the last event written (or matched, when idempotent), or the stream's
// current revision when the expectation failed.
type outcome struct {
	kind     outcomeKind
	revision int64 // -1: the stream has no events (only for empty appends)
	position uint64
	current  int64 // for outcomeWrongVersion; -1 means no stream
}

// append checks exp against the stream and writes events atomically. The
// decision table is EventStoreDB's (IndexWriter.CheckCommit): retried event
// ids are recognised and answered with the original result, a partial overlap
// is a wrong expected version.
func (s *store) append(stream string, exp expectation, events []*record) outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[stream]
	cur := st.current()

	if len(events) == 0 {
		if d := decide(st, exp, nil); d.kind == outcomeWrongVersion {
			return d
		}
		pos := uint64(0)
		if cur >= 0 {
			pos = st.records[cur].pos
		}
		return outcome{kind: outcomeWritten, revision: cur, position: pos}
	}
	ids := make([]uuid.UUID, len(events))
	for i, e := range events {
		ids[i] = e.id
	}
	if d := decide(st, exp, ids); d.kind != outcomeWritten {
		return d
	}
	s.write(stream, events)
	last := events[len(events)-1]
	return outcome{kind: outcomeWritten, revision: int64(last.revision), position: last.pos}
}

// write assigns revisions and positions and publishes the records to live
// subscriptions. The caller holds the write lock.
func (s *store) write(stream string, events []*record) {
	st := s.streams[stream]
	if st == nil {
		st = &streamState{byID: make(map[uuid.UUID]uint64)}
		s.streams[stream] = st
	}
	created := ticks(s.now())
	for _, e := range events {
		e.stream = stream
		e.revision = uint64(len(st.records))
		e.pos = s.next
		e.created = created
		s.next += recordSize(e)
		st.records = append(st.records, e)
		st.byID[e.id] = e.revision
		s.all = append(s.all, e)
	}
	for q := range s.live {
		q.push(events)
	}
}

// decide applies the expected-revision table without writing. ids is nil
// for an empty append, which only checks the expectation.
func decide(st *streamState, exp expectation, ids []uuid.UUID) outcome {
	cur := st.current()
	wrong := outcome{kind: outcomeWrongVersion, current: cur}
	switch exp.kind {
	case expectNoStream:
		return decideFrom(st, -1, ids)
	case expectRevision:
		if exp.revision > math.MaxInt64 {
			return wrong
		}
		return decideFrom(st, int64(exp.revision), ids)
	case expectStreamExists:
		if cur < 0 {
			return wrong
		}
	}
	// Any and StreamExists: the first id decides whether this is a retry.
	if cur < 0 || len(ids) == 0 {
		return outcome{kind: outcomeWritten}
	}
	first, ok := st.byID[ids[0]]
	if !ok {
		return outcome{kind: outcomeWritten}
	}
	return matchFrom(st, int64(first)-1, ids)
}

// decideFrom handles an exact expectation n (-1 for NoStream).
func decideFrom(st *streamState, n int64, ids []uuid.UUID) outcome {
	cur := st.current()
	switch {
	case n == cur:
		return outcome{kind: outcomeWritten}
	case n > cur || len(ids) == 0:
		return outcome{kind: outcomeWrongVersion, current: cur}
	}
	return matchFrom(st, n, ids)
}

// matchFrom reports an idempotent retry when ids are exactly the events
// after revision n, and a wrong expected version otherwise.
func matchFrom(st *streamState, n int64, ids []uuid.UUID) outcome {
	cur := st.current()
	for k, id := range ids {
		rev := n + 1 + int64(k)
		if rev > cur || st.records[rev].id != id {
			return outcome{kind: outcomeWrongVersion, current: cur}
		}
	}
	last := st.records[n+int64(len(ids))]
	return outcome{kind: outcomeIdempotent, revision: int64(last.revision), position: last.pos}
}

// allFrom returns up to n records of $all with a position >= from (forwards)
// or < from (backwards, newest first), skipping the records the server's
// default $all filter hides.
func (s *store) allFrom(from uint64, forwards bool, n int) []*record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := sort.Search(len(s.all), func(i int) bool { return s.all[i].pos >= from })
	var out []*record
	if forwards {
		for ; i < len(s.all) && len(out) < n; i++ {
			if !hiddenFromAll(s.all[i]) {
				out = append(out, s.all[i])
			}
		}
		return out
	}
	for i--; i >= 0 && len(out) < n; i-- {
		if !hiddenFromAll(s.all[i]) {
			out = append(out, s.all[i])
		}
	}
	return out
}

// streamFrom returns up to n records of stream starting at revision from
// (inclusive), forwards or backwards, and whether the stream exists.
func (s *store) streamFrom(stream string, from uint64, forwards bool, n int) ([]*record, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.streams[stream]
	if st == nil {
		return nil, false
	}
	var out []*record
	if forwards {
		for i := from; i < uint64(len(st.records)) && len(out) < n; i++ {
			out = append(out, st.records[i])
		}
		return out, true
	}
	i := int64(len(st.records)) - 1
	if from < uint64(len(st.records)) {
		i = int64(from)
	}
	for ; i >= 0 && len(out) < n; i-- {
		out = append(out, st.records[i])
	}
	return out, true
}

// after returns up to n records following a subscription cursor: for $all
// the records with a position > pos, for a stream those with a revision >
// rev. It also reports whether the page reaches the end of the log.
func (s *store) after(c *cursor, n int) ([]*record, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var src []*record
	if c.stream == "" {
		i := sort.Search(len(s.all), func(i int) bool { return s.all[i].pos > c.pos })
		src = s.all[i:]
	} else if st := s.streams[c.stream]; st != nil && c.rev+1 < int64(len(st.records)) {
		src = st.records[c.rev+1:]
	}
	if len(src) > n {
		return src[:n:n], false
	}
	return src[:len(src):len(src)], true
}

// subscribe registers a live queue and, when fromEnd, moves the cursor to
// the current end, in one critical section so that no event falls between
// the two.
func (s *store) subscribe(c *cursor, fromEnd bool) *liveQueue {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := newLiveQueue(c.stream, s.liveBuffer)
	s.live[q] = struct{}{}
	if fromEnd {
		if c.stream == "" {
			if len(s.all) > 0 {
				c.pos = s.all[len(s.all)-1].pos
			}
		} else {
			c.rev = s.streams[c.stream].current()
		}
	}
	return q
}

func (s *store) unsubscribe(q *liveQueue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, q)
}

// dropAll makes every live subscription end with Unavailable.
func (s *store) dropAll() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for q := range s.live {
		q.drop()
	}
	return len(s.live)
}

// hiddenFromAll is the server's default $all filter: only the epoch records
// and the $all persistent-subscription bookkeeping streams are hidden; every
// other system event is visible.
func hiddenFromAll(r *record) bool {
	if r.stream == "$epoch-information" {
		return true
	}
	return strings.HasPrefix(r.stream, "$persistentsubscription-$all::") &&
		(strings.HasSuffix(r.stream, "-checkpoint") || strings.HasSuffix(r.stream, "-parked"))
}

// liveQueue buffers the records committed while a subscription is busy. It
// is filled under the store lock and drained by the subscription without
// it. When it overflows, the subscription silently falls back to catch-up,
// as the real server does.
type liveQueue struct {
	stream string // "" for $all

	mu       sync.Mutex
	records  []*record
	limit    int
	overflow bool
	signal   chan struct{}

	dropOnce sync.Once
	dropped  chan struct{}
}

func newLiveQueue(stream string, limit int) *liveQueue {
	return &liveQueue{stream: stream, limit: limit, signal: make(chan struct{}, 1), dropped: make(chan struct{})}
}

func (q *liveQueue) push(events []*record) {
	q.mu.Lock()
	for _, e := range events {
		if q.stream != "" && e.stream != q.stream {
			continue
		}
		if q.overflow {
			break
		}
		if len(q.records) >= q.limit {
			q.overflow, q.records = true, nil
			break
		}
		q.records = append(q.records, e)
	}
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// take empties the queue; overflow means some records were dropped and the
// subscription must catch up from the log again.
func (q *liveQueue) take() (records []*record, overflow bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	records, overflow = q.records, q.overflow
	q.records, q.overflow = nil, false
	return records, overflow
}

func (q *liveQueue) drop() { q.dropOnce.Do(func() { close(q.dropped) }) }
