package memstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// pageSize bounds how much of the log one look at it turns into messages,
// so that a subscription far behind neither holds the store's lock nor
// copies the whole log at once; it is also how often a filtered
// subscription reports a checkpoint while it passes unwanted events.
const pageSize = 256

// SubscribeAll implements eventstore.Store. From eventstore.End delivers
// what is appended after the call. The subscription does its work in Next,
// on the caller's goroutine: it starts none of its own.
func (s *Store) SubscribeAll(ctx context.Context, opts eventstore.SubscribeOptions) (eventstore.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: subscribe: %w", err)
	}
	from := opts.From
	if from == eventstore.End {
		s.mu.RLock()
		from = s.headLocked()
		s.mu.RUnlock()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	return &subscription{
		store:    s,
		ctx:      ctx,
		cancel:   cancel,
		prefixes: slices.Clone(opts.StreamPrefixes),
		last:     from,
	}, nil
}

// subscription reads the log after the last position it delivered or
// passed, and waits for the store's append signal when it has read it all.
type subscription struct {
	store    *Store
	ctx      context.Context
	cancel   context.CancelCauseFunc
	prefixes []string

	last     eventstore.Position // every event up to here was delivered or filtered out
	pending  []eventstore.Message
	caughtUp bool
}

var _ eventstore.Buffered = (*subscription)(nil)

// Next implements eventstore.Subscription.
func (sub *subscription) Next(ctx context.Context) (eventstore.Message, error) {
	for {
		if len(sub.pending) > 0 {
			msg := sub.pending[0]
			sub.pending = sub.pending[1:]
			return msg, nil
		}
		if err := sub.done(ctx); err != nil {
			return eventstore.Message{}, err
		}
		// Take the wake-up channel before looking, so that an append made
		// while we look still wakes the wait below.
		woken := sub.store.appended.Wait()
		if more := sub.fill(); more || len(sub.pending) > 0 {
			continue
		}
		select {
		case <-woken:
		case <-ctx.Done():
		case <-sub.ctx.Done():
		}
	}
}

// fill turns the next page of the log into pending messages: the events
// that pass the filter, a checkpoint when the page ends with events that
// did not, and CaughtUp the first time the page reaches the head. It
// reports whether more of the log is waiting.
func (sub *subscription) fill() (more bool) {
	s := sub.store
	s.mu.RLock()
	defer s.mu.RUnlock()
	i := s.indexAfterLocked(sub.last)
	end := min(i+pageSize, len(s.log))
	scanned := sub.last
	for ; i < end; i++ {
		e := s.log[i]
		scanned = e.Position
		if matches(e.Stream, sub.prefixes) {
			sub.pending = append(sub.pending, eventstore.Message{Kind: eventstore.EventAppeared, Event: copyEvent(e), Position: e.Position})
			sub.last = e.Position
		}
	}
	if scanned > sub.last {
		// Only a filter skips events: tell the consumer how far it looked,
		// so that it can resume past them.
		sub.last = scanned
		sub.pending = append(sub.pending, eventstore.Message{Kind: eventstore.CheckpointReached, Position: scanned})
	}
	more = end < len(s.log)
	if !more && !sub.caughtUp {
		sub.caughtUp = true
		sub.pending = append(sub.pending, eventstore.Message{Kind: eventstore.CaughtUp, Position: sub.last})
	}
	return more
}

// done reports why the subscription must end, if it must: Close, or the
// end of the context it was created with or of the one Next got.
func (sub *subscription) done(ctx context.Context) error {
	if sub.ctx.Err() != nil {
		return context.Cause(sub.ctx)
	}
	return ctx.Err()
}

// Close implements eventstore.Subscription. It may be called from any
// goroutine, any number of times.
func (sub *subscription) Close() error {
	sub.cancel(eventstore.ErrSubscriptionClosed)
	return nil
}

// Buffered implements eventstore.Buffered.
func (sub *subscription) Buffered() int { return len(sub.pending) }
