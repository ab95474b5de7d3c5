package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// Filter settings sent with every subscription. The server checkpoints every
// window × multiplier events it considers, which bounds how far behind the
// resume position of a consumer of a sparse stream can be.
const (
	searchWindow       = 32
	checkpointMultiple = 1
)

// errSubscriptionClosed is returned by Next after Close.
var errSubscriptionClosed = errors.New("esdb: subscription closed")

// SubscribeAll implements eventstore.Store. The server filters: by stream
// prefix when StreamPrefixes is set, otherwise by excluding system event
// types; system events that pass a prefix filter are dropped here.
func (s *Store) SubscribeAll(ctx context.Context, opts eventstore.SubscribeOptions) (eventstore.Subscription, error) {
	filter := esdbclient.ExcludeSystemEventsFilter()
	if len(opts.StreamPrefixes) > 0 {
		filter = &esdbclient.SubscriptionFilter{Type: esdbclient.StreamFilterType, Prefixes: opts.StreamPrefixes}
	}
	from := opts.From
	if from == eventstore.End {
		// Pin End to a concrete position now, so that a resubscription after
		// a drop resumes from there instead of skipping to a later end.
		head, err := s.lastPosition(ctx)
		if err != nil {
			return nil, err
		}
		from = head
	}
	subCtx, cancel := context.WithCancel(ctx)
	sub := &subscription{store: s, ctx: subCtx, cancel: cancel, filter: filter, last: from}
	ch, err := sub.subscribe()
	if err == nil {
		var cur *esdbclient.Subscription
		if cur, err = await(ctx, ch); err == nil {
			sub.start(cur)
			return sub, nil
		}
	}
	cancel()
	return nil, classify(ctx, "subscribe", err)
}

// lastPosition is the position of the last event of $all, system or not.
func (s *Store) lastPosition(ctx context.Context) (eventstore.Position, error) {
	head := eventstore.Start
	err := s.scanAll(ctx, false, eventstore.End, func(e *esdbclient.RecordedEvent) bool {
		head = eventstore.Position(e.Position.Commit)
		return false
	}, 1)
	if err != nil {
		return eventstore.Start, err
	}
	return head, nil
}

// subscription is an eventstore.Subscription over the client's
// subscriptions, which it replaces when they drop: the client never
// resubscribes by itself. Next runs in one goroutine; Close may come from
// another.
type subscription struct {
	store  *Store
	ctx    context.Context // ends with the caller's context or Close
	cancel context.CancelFunc
	filter *esdbclient.SubscriptionFilter

	// Owned by the goroutine calling Next. At most one of cur and
	// connecting is set; with neither, the next attempt is due at retryAt.
	last       eventstore.Position // resume token: the last message delivered
	cur        *esdbclient.Subscription
	msgs       chan *esdbclient.SubscriptionEvent
	connecting <-chan result[*esdbclient.Subscription]
	retryAt    time.Time
	failures   int   // drops and failed attempts since the last message
	failed     error // the subscription is over

	mu     sync.Mutex
	closed bool
	pumps  sync.WaitGroup
}

// subscribe asks for a subscription strictly after s.last.
func (s *subscription) subscribe() (<-chan result[*esdbclient.Subscription], error) {
	var from esdbclient.AllPosition = esdbclient.Start{}
	if s.last != eventstore.Start {
		from = esdbclient.Position{Commit: uint64(s.last), Prepare: uint64(s.last)}
	}
	opts := esdbclient.SubscribeToAllOptions{
		From:               from,
		Filter:             s.filter,
		MaxSearchWindow:    searchWindow,
		CheckpointInterval: checkpointMultiple,
	}
	return launch(s.store, func(c *esdbclient.Client) (*esdbclient.Subscription, error) {
		return c.SubscribeToAll(s.ctx, opts)
	})
}

// start begins pumping the messages of cur.
func (s *subscription) start(cur *esdbclient.Subscription) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = cur.Close()
		return
	}
	s.pumps.Add(1)
	s.mu.Unlock()
	s.cur, s.msgs = cur, make(chan *esdbclient.SubscriptionEvent, readAhead)
	go s.pump(cur, s.msgs)
}

// readAhead is how many messages the pump may receive before Next takes
// them: it lets a consumer see (Buffered) that more is ready and batch.
const readAhead = 512

// pump turns the client's blocking Recv into a channel so that Next can
// honour its context. Messages wait in the channel, in order, until Next
// takes them, so none is lost when Next gives up early; the drop that ends
// a subscription comes after all its messages. Recv returns once s.ctx
// ends, since the call runs under it.
func (s *subscription) pump(sub *esdbclient.Subscription, out chan<- *esdbclient.SubscriptionEvent) {
	defer s.pumps.Done()
	for {
		ev := sub.Recv()
		select {
		case out <- ev:
		case <-s.ctx.Done():
			return
		}
		if ev.SubscriptionDropped != nil {
			return
		}
	}
}

// Buffered implements eventstore.Buffered.
func (s *subscription) Buffered() int { return len(s.msgs) }

// Next implements eventstore.Subscription. A dropped subscription is
// re-established here, strictly after the last message delivered, so the
// consumer sees neither a gap nor a duplicate.
func (s *subscription) Next(ctx context.Context) (eventstore.Message, error) {
	for {
		if err := s.ended(); err != nil {
			return eventstore.Message{}, err
		}
		if s.failed != nil {
			return eventstore.Message{}, s.failed
		}
		var timer *time.Timer
		var wait <-chan time.Time
		switch {
		case s.cur != nil, s.connecting != nil:
		case time.Until(s.retryAt) > 0:
			timer = time.NewTimer(time.Until(s.retryAt))
			wait = timer.C
		default:
			ch, err := s.subscribe()
			if err != nil {
				s.failed = err
				continue
			}
			s.connecting = ch
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return eventstore.Message{}, ctx.Err()
		case <-s.ctx.Done():
		case <-wait:
		case r := <-s.connecting:
			s.connecting = nil
			s.connected(r)
		case ev := <-s.msgs:
			if msg, ok := s.handle(ev); ok {
				return msg, nil
			}
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// connected takes the outcome of a resubscription.
func (s *subscription) connected(r result[*esdbclient.Subscription]) {
	if r.err == nil {
		s.store.log.Info("esdb: resubscribed", "after", uint64(s.last), "attempts", s.failures)
		s.start(r.v)
		return
	}
	if s.ended() != nil {
		return
	}
	if !errors.Is(classify(s.ctx, "subscribe", r.err), eventstore.ErrUnavailable) && !retryable(r.err) {
		s.failed = fmt.Errorf("esdb: resubscribe: %w", r.err)
		return
	}
	s.backOff()
	s.store.log.Warn("esdb: resubscription failed; retrying", "after", uint64(s.last), "attempt", s.failures, "retry_at", s.retryAt, "err", r.err)
}

// backOff schedules the next attempt: immediately after the first drop
// following a healthy period, then exponentially later.
func (s *subscription) backOff() {
	s.failures++
	delay := time.Duration(0)
	if s.failures > 1 {
		delay = min(s.store.cfg.ReconnectMinBackoff<<min(s.failures-2, 20), s.store.cfg.ReconnectMaxBackoff)
	}
	s.retryAt = time.Now().Add(delay)
}

// handle turns one client message into a port message, if it is one.
func (s *subscription) handle(ev *esdbclient.SubscriptionEvent) (eventstore.Message, bool) {
	switch {
	case ev.EventAppeared != nil:
		e := ev.EventAppeared.OriginalEvent()
		pos := eventstore.Position(e.Position.Commit)
		if pos <= s.last || isSystem(e) {
			return eventstore.Message{}, false
		}
		s.last, s.failures = pos, 0
		return eventstore.Message{Kind: eventstore.EventAppeared, Event: toRecorded(e), Position: pos}, true
	case ev.CheckPointReached != nil:
		pos := eventstore.Position(ev.CheckPointReached.Commit)
		if pos <= s.last {
			return eventstore.Message{}, false
		}
		s.last, s.failures = pos, 0
		return eventstore.Message{Kind: eventstore.CheckpointReached, Position: pos}, true
	case ev.CaughtUp != nil:
		s.failures = 0
		return eventstore.Message{Kind: eventstore.CaughtUp, Position: s.last}, true
	case ev.SubscriptionDropped != nil:
		_ = s.cur.Close()
		s.cur, s.msgs = nil, nil
		err := ev.SubscriptionDropped.Error
		if s.ended() != nil {
			break
		}
		if !retryable(err) {
			s.failed = fmt.Errorf("esdb: subscription dropped: %w", err)
			break
		}
		s.backOff()
		s.store.log.Info("esdb: subscription dropped; resubscribing", "after", uint64(s.last), "retry_at", s.retryAt, "err", err)
	}
	return eventstore.Message{}, false // or fell behind: the server catches up by itself
}

// retryable reports a drop that a new subscription can recover from: the
// node went away, restarted, lost leadership or ended the call. The client
// hands these over as raw gRPC errors, or io.EOF when the call ended
// cleanly.
func retryable(err error) bool {
	if errors.Is(err, io.EOF) {
		return true
	}
	var e *esdbclient.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case esdbclient.ErrorCodeAccessDenied, esdbclient.ErrorCodeUnauthenticated, esdbclient.ErrorCodeStreamDeleted, esdbclient.ErrorCodeUnsupportedFeature:
			return false
		}
	}
	var grpcErr interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &grpcErr) {
		return false // not from the server: a closed store, a bad filter
	}
	switch grpcErr.GRPCStatus().Code() {
	case codes.Unavailable, codes.Aborted, codes.Internal, codes.ResourceExhausted,
		codes.DeadlineExceeded, codes.Canceled, codes.Unknown:
		return true
	}
	return false
}

// ended returns why the subscription is over, or nil.
func (s *subscription) ended() error {
	if s.ctx.Err() == nil {
		return nil
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errSubscriptionClosed
	}
	return fmt.Errorf("esdb: subscription ended: %w", s.ctx.Err())
}

// Close implements eventstore.Subscription. It may be called while another
// goroutine is blocked in Next, which then returns an error. It does not
// wait for a resubscription in progress, which may be stuck in the client
// until the node is reachable; that attempt fails by itself once it gets
// through, since it runs under the cancelled context.
func (s *subscription) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.pumps.Wait()
	return nil
}
