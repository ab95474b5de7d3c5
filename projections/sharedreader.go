package projections

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// SharedReader reads the global log once for every projector generation of
// a process. It offers the port's SubscribeAll, so the Subscriber (and
// Watermill above it) is unchanged: each subscription is a tap on a shared
// stream, one store subscription whose recent messages (a bounded window)
// every tap on it reads from. The store's own subscriptions stay beneath:
// each shared stream is one of them, so the ordering guarantees (a late
// commit is never skipped, see ARCHITECTURE.md) hold exactly as for a
// private reader.
//
// A tap that starts where no stream is (a rebuild from position 0, a new
// projector) gets a stream of its own, which is its private catch-up
// reader; other taps that start there join it, so projectors rebuilt
// together share one read. A tap moves to an older stream as soon as that
// stream's window holds its position, with room to spare, so catch-up
// streams merge into the live one and end. A tap whose consumer does not
// advance while its stream's window is full (Stall) is detached, so one
// stuck projector cannot hold back the others: it resumes on a stream of
// its own from where it was and joins again when it has caught up.
//
// Each tap delivers exactly what a store subscription from its position
// would: every message after it, in order, and one CaughtUp notice once it
// is at the tail of a stream that has caught up. The consumers' checkpoints,
// batches and transactions are their own.
type SharedReader struct {
	store    eventstore.Store
	prefixes []string
	window   int
	stall    time.Duration

	mu      sync.Mutex
	streams []*sharedStream // oldest first
	nextID  uint64
	stats   SharedReaderStats
	closed  bool
}

// SharedReaderStats count what a SharedReader did, for tests and logs.
type SharedReaderStats struct {
	// Streams is how many shared streams (store subscriptions) were opened.
	Streams int
	// Moves counts taps that moved to an older stream (a catch-up that
	// joined the shared stream).
	Moves int
	// Detached counts taps dropped from a full window because their
	// consumer stalled.
	Detached int
	// Open is how many streams are open now.
	Open int
}

// SharedReaderConfig configures a SharedReader.
type SharedReaderConfig struct {
	// Store is the event store read.
	Store eventstore.Store
	// StreamPrefixes is the filter of every subscription; SubscribeAll
	// refuses others.
	StreamPrefixes []string
	// Window is how many messages a stream keeps for the taps behind its
	// newest one. Default 32,768.
	Window int
	// Stall is how long a stream with a full window waits for its slowest
	// tap before it detaches it. Default 2 s.
	Stall time.Duration
}

// NewSharedReader returns a SharedReader. It reads nothing until a
// subscription asks.
func NewSharedReader(cfg SharedReaderConfig) (*SharedReader, error) {
	if cfg.Store == nil {
		return nil, errors.New("projections: shared reader: Store is required")
	}
	if cfg.Window == 0 {
		cfg.Window = 32_768
	}
	if cfg.Stall == 0 {
		cfg.Stall = 2 * time.Second
	}
	if cfg.Window < 2 || cfg.Stall < 0 {
		return nil, errors.New("projections: shared reader: Window must be at least 2 and Stall not negative")
	}
	return &SharedReader{store: cfg.Store, prefixes: slices.Clone(cfg.StreamPrefixes), window: cfg.Window, stall: cfg.Stall}, nil
}

// SharedReaderStats is what the engine's shared reader did so far; false
// with Config.PrivateReaders.
func (e *Engine) SharedReaderStats() (SharedReaderStats, bool) {
	if e.shared == nil {
		return SharedReaderStats{}, false
	}
	return e.shared.Stats(), true
}

// Stats returns what the reader did so far.
func (r *SharedReader) Stats() SharedReaderStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Open = len(r.streams)
	return st
}

// Close ends every stream; taps then fail with eventstore.ErrSubscriptionClosed.
func (r *SharedReader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, s := range slices.Clone(r.streams) {
		r.endStream(s, eventstore.ErrSubscriptionClosed)
	}
}

// SubscribeAll returns a tap delivering the log after opts.From. It has the
// signature of eventstore.Store's, so that a Subscriber reads through it.
func (r *SharedReader) SubscribeAll(ctx context.Context, opts eventstore.SubscribeOptions) (eventstore.Subscription, error) {
	if !slices.Equal(opts.StreamPrefixes, r.prefixes) {
		return nil, errors.New("projections: shared reader: a subscription must use the reader's stream prefixes")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, eventstore.ErrSubscriptionClosed
	}
	t := &sharedTap{r: r, last: opts.From, done: make(chan struct{})}
	stop := context.AfterFunc(ctx, func() { t.Close() })
	t.stop = stop
	return t, nil
}

// sharedStream is one store subscription and the window of its latest
// messages. Everything in it is guarded by the reader's mutex.
type sharedStream struct {
	id     uint64
	sub    eventstore.Subscription
	cancel context.CancelFunc

	// base: every message after this position is in entries or still to
	// come.
	base    eventstore.Position
	first   uint64 // sequence number of entries[0]
	entries []eventstore.Message
	// tail is the position of the newest message, or base.
	tail     eventstore.Position
	caughtUp bool
	err      error // why the store subscription ended
	taps     map[*sharedTap]struct{}

	changed chan struct{} // closed when entries grow or err is set
	space   chan struct{} // closed when a tap advances; nil unless the pump waits
}

func (s *sharedStream) end() uint64 { return s.first + uint64(len(s.entries)) }

// seqAfter is the sequence number of the first message after pos, for a
// position the stream covers (base <= pos).
func (s *sharedStream) seqAfter(pos eventstore.Position) uint64 {
	i := sort.Search(len(s.entries), func(i int) bool { return s.entries[i].Position > pos })
	return s.first + uint64(i)
}

// minNext is the oldest message a tap still needs, or end() without taps.
func (s *sharedStream) minNext() uint64 {
	m := s.end()
	for t := range s.taps {
		m = min(m, t.next)
	}
	return m
}

func (s *sharedStream) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// sharedTap is one subscription: a consumer's position on a stream.
type sharedTap struct {
	r    *SharedReader
	s    *sharedStream // nil until attached, or after a detach
	next uint64        // sequence number of the next message in s
	last eventstore.Position
	// caughtUp: a CaughtUp notice was delivered.
	caughtUp bool
	closed   bool
	polls    uint64 // Next calls: a move is looked for every 64
	stop     func() bool
	done     chan struct{} // closed by Close
}

var _ eventstore.Buffered = (*sharedTap)(nil)

// Next implements eventstore.Subscription.
func (t *sharedTap) Next(ctx context.Context) (eventstore.Message, error) {
	r := t.r
	for {
		r.mu.Lock()
		if t.closed {
			r.mu.Unlock()
			return eventstore.Message{}, eventstore.ErrSubscriptionClosed
		}
		if err := ctx.Err(); err != nil {
			r.mu.Unlock()
			return eventstore.Message{}, err
		}
		if t.s == nil {
			if err := r.attach(ctx, t); err != nil {
				r.mu.Unlock()
				return eventstore.Message{}, err
			}
		}
		if len(r.streams) > 1 && (t.polls%64 == 0 || t.next >= t.s.end()) {
			r.maybeMove(t)
		}
		t.polls++
		s := t.s
		if t.next < s.end() {
			m := s.entries[t.next-s.first]
			t.next++
			if s.space != nil {
				close(s.space)
				s.space = nil
			}
			if m.Kind == eventstore.CaughtUp {
				if t.caughtUp {
					// This tap said so already, on a stream it left.
					m.Kind = eventstore.CheckpointReached
				}
				t.caughtUp = true
			}
			t.last = m.Position
			r.mu.Unlock()
			return m, nil
		}
		if s.caughtUp && !t.caughtUp {
			t.caughtUp = true
			r.mu.Unlock()
			return eventstore.Message{Kind: eventstore.CaughtUp, Position: t.last}, nil
		}
		if s.err != nil {
			err := s.err
			r.leave(t)
			r.mu.Unlock()
			return eventstore.Message{}, err
		}
		changed := s.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-t.done:
		case <-ctx.Done():
		}
	}
}

// Buffered implements eventstore.Buffered: the messages this tap can have
// without waiting.
func (t *sharedTap) Buffered() int {
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	if t.s == nil {
		return 0
	}
	return int(t.s.end() - t.next)
}

// Close implements eventstore.Subscription.
func (t *sharedTap) Close() error {
	r := t.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	close(t.done)
	if t.stop != nil {
		t.stop()
	}
	r.leave(t)
	return nil
}

// attach puts a tap on the oldest stream that holds its position, or on a
// new stream of its own. Called with the mutex held.
func (r *SharedReader) attach(ctx context.Context, t *sharedTap) error {
	for _, s := range r.streams {
		if r.covers(s, t.last) {
			r.join(s, t)
			return nil
		}
	}
	if r.closed {
		return eventstore.ErrSubscriptionClosed
	}
	// The stream outlives the tap that opened it: its context is the
	// reader's, not the caller's.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sub, err := r.store.SubscribeAll(sctx, eventstore.SubscribeOptions{From: t.last, StreamPrefixes: r.prefixes})
	if err != nil {
		cancel()
		return err
	}
	r.nextID++
	r.stats.Streams++
	s := &sharedStream{
		id: r.nextID, sub: sub, cancel: cancel, base: t.last, tail: t.last,
		taps: map[*sharedTap]struct{}{}, changed: make(chan struct{}),
	}
	r.streams = append(r.streams, s)
	r.join(s, t)
	go r.pump(sctx, s)
	return nil
}

// covers says whether a tap at pos may read from s: s holds every message
// after pos and, for a tap that would move there, pos is far enough from
// the window's oldest end that the tap does not stall s at once.
func (r *SharedReader) covers(s *sharedStream, pos eventstore.Position) bool {
	if s.err != nil || s.base > pos || s.tail < pos {
		return false
	}
	seq := s.seqAfter(pos)
	if seq >= s.minNext() {
		return true // no further back than a tap already there
	}
	return s.end()-seq <= uint64(r.window/2)
}

// maybeMove moves a tap to the oldest stream older than its own that holds
// its position, so that streams merge towards the oldest and end.
func (r *SharedReader) maybeMove(t *sharedTap) {
	for _, s := range r.streams {
		if s.id >= t.s.id {
			return
		}
		if r.covers(s, t.last) {
			r.leave(t)
			r.join(s, t)
			r.stats.Moves++
			return
		}
	}
}

func (r *SharedReader) join(s *sharedStream, t *sharedTap) {
	t.s = s
	t.next = s.seqAfter(t.last)
	s.taps[t] = struct{}{}
}

// leave takes a tap off its stream; a stream without taps ends.
func (r *SharedReader) leave(t *sharedTap) {
	s := t.s
	if s == nil {
		return
	}
	t.s = nil
	delete(s.taps, t)
	if s.space != nil {
		close(s.space)
		s.space = nil
	}
	if len(s.taps) == 0 {
		r.endStream(s, eventstore.ErrSubscriptionClosed)
	}
}

func (r *SharedReader) endStream(s *sharedStream, err error) {
	if i := slices.Index(r.streams, s); i >= 0 {
		r.streams = slices.Delete(r.streams, i, i+1)
	}
	if s.err == nil {
		s.err = err
		s.notify()
	}
	s.cancel()
	_ = s.sub.Close()
}

// pumpBatch bounds the messages a pump takes from the store subscription's
// buffer before it hands them to the taps.
const pumpBatch = 512

// pump reads the store subscription into the stream's window.
func (r *SharedReader) pump(ctx context.Context, s *sharedStream) {
	buffered, _ := s.sub.(eventstore.Buffered)
	limit := min(pumpBatch, r.window/2) // a batch always fits the window
	batch := make([]eventstore.Message, 0, limit)
	for {
		batch = batch[:0]
		m, err := s.sub.Next(ctx)
		if err == nil {
			batch = append(batch, m)
			for buffered != nil && len(batch) < limit && buffered.Buffered() > 0 {
				m, err = s.sub.Next(ctx)
				if err != nil {
					break
				}
				batch = append(batch, m)
			}
		}
		r.mu.Lock()
		if len(batch) > 0 && !r.add(ctx, s, batch) {
			r.mu.Unlock()
			return
		}
		if err != nil {
			if s.err == nil {
				s.err = err
				s.notify()
			}
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// add appends a batch to the window, making room first: messages every tap
// has read are dropped; when the slowest tap holds the window full for
// Stall, it is detached. It reports false when the stream ended meanwhile.
// Called with the mutex held; it may release it while it waits.
func (r *SharedReader) add(ctx context.Context, s *sharedStream, batch []eventstore.Message) bool {
	var deadline time.Time
	for len(s.entries)+len(batch) > r.window {
		if s.err != nil {
			return false
		}
		if drop := min(int(s.minNext()-s.first), len(s.entries)+len(batch)-r.window); drop > 0 {
			s.base = s.entries[drop-1].Position
			clear(s.entries[:drop])
			s.entries = s.entries[drop:]
			s.first += uint64(drop)
			deadline = time.Time{} // the slowest tap moves: no stall
			continue
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(r.stall)
		}
		if !now.Before(deadline) {
			slowest := s.minNext()
			for t := range s.taps {
				if t.next == slowest {
					delete(s.taps, t)
					t.s = nil
					r.stats.Detached++
				}
			}
			if len(s.taps) == 0 {
				r.endStream(s, eventstore.ErrSubscriptionClosed)
				return false
			}
			s.notify() // wake the detached taps
			continue
		}
		if s.space == nil {
			s.space = make(chan struct{})
		}
		space := s.space
		r.mu.Unlock()
		timer := time.NewTimer(deadline.Sub(now))
		select {
		case <-space:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		r.mu.Lock()
	}
	if s.err != nil {
		return false
	}
	for _, m := range batch {
		s.entries = append(s.entries, m)
		s.tail = m.Position
		if m.Kind == eventstore.CaughtUp {
			s.caughtUp = true
		}
	}
	s.notify()
	return true
}
