package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// Metadata keys of the messages the Subscriber emits.
const (
	// MetadataName is the event type. Watermill's cqrs component reads the
	// event name from this key, so handlers built with it work unchanged.
	MetadataName = "name"
	// MetadataStream, MetadataRevision, MetadataPosition and
	// MetadataRecordedAt locate the event (decimal numbers, RFC 3339 time).
	MetadataStream     = "stream"
	MetadataRevision   = "revision"
	MetadataPosition   = "position"
	MetadataRecordedAt = "recorded_at"
	// MetadataEventMetadata holds the event's own metadata document (raw
	// JSON, as stored).
	MetadataEventMetadata = "event_metadata"
	// MetadataKind is KindEvent, KindCheckpoint or KindCaughtUp.
	MetadataKind = "kind"
	// MetadataSkipped is, on a message of kind KindSkipped, how many
	// consecutive events (decimal) it stands for.
	MetadataSkipped = "skipped"
	// MetadataMore is "true" when the subscriber has further messages ready
	// right now: a consumer keeps collecting while it is true and commits
	// when it is false, so catch-up runs in large batches and live traffic
	// in small ones.
	MetadataMore = "more"
)

// Values of MetadataKind.
const (
	KindEvent      = "event"
	KindCheckpoint = "checkpoint"
	KindCaughtUp   = "caught_up"
	// KindSkipped stands for a run of consecutive events whose types the
	// consumer does not handle (SubscriberConfig.Handles); its position
	// and recorded_at are those of the run's last event.
	KindSkipped = "skipped"
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// Store is the event store whose global log is delivered.
	Store eventstore.Store
	// StreamPrefixes restricts delivery to streams with one of these
	// prefixes (["customer-"] for Rapport); empty means every stream. The
	// store filters, and reports checkpoints so that resume positions
	// advance past events that do not match.
	StreamPrefixes []string
	// ResumeFrom returns the position after which a subscription to topic
	// starts (exclusive). Required: the topic names a consumer (a projector
	// generation) and only its owner knows how far it got.
	ResumeFrom func(ctx context.Context, topic string) (eventstore.Position, error)
	// NackResendSleep is how long a nacked message waits before it is sent
	// again. Default 100 ms.
	NackResendSleep time.Duration
	// ReadAhead bounds how many messages are read from the store before
	// the consumer acknowledged the previous ones. Reading ahead overlaps
	// the store's reads with the consumer's work and lets MetadataMore see
	// past a store page. Default 2048.
	ReadAhead int
	// ResubscribeBackoff is the pause before resubscribing after the
	// store's subscription failed for good (the store already retries
	// what it can). Default 1 s.
	ResubscribeBackoff time.Duration
	// Logger receives subscription trouble. Default: discard.
	Logger *slog.Logger
	// Handles, when set, says which event types the consumer wants as
	// messages of their own. A run of consecutive events of other types
	// comes as one KindSkipped message instead (it ends at the next
	// wanted event, checkpoint or caught-up notice, when nothing more is
	// ready, or after MaxSkipped events): a consumer that only moves its
	// checkpoint past such events is spared a message for each. Nil: one
	// message per event.
	Handles func(eventType string) bool
	// MaxSkipped bounds the events of one KindSkipped message. Default
	// 4096.
	MaxSkipped int
	// Source, when set, is what subscriptions read through instead of
	// Store.SubscribeAll: the engine's SharedReader, so that every
	// projector reads one stream.
	Source interface {
		SubscribeAll(ctx context.Context, opts eventstore.SubscribeOptions) (eventstore.Subscription, error)
	}
}

func (c *SubscriberConfig) setDefaults() {
	if c.NackResendSleep == 0 {
		c.NackResendSleep = 100 * time.Millisecond
	}
	if c.ReadAhead == 0 {
		c.ReadAhead = 2048
	}
	if c.ResubscribeBackoff == 0 {
		c.ResubscribeBackoff = time.Second
	}
	if c.MaxSkipped == 0 {
		c.MaxSkipped = 4096
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration that cannot work.
func (c SubscriberConfig) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("Store is required"))
	}
	if c.ResumeFrom == nil {
		errs = append(errs, errors.New("ResumeFrom is required"))
	}
	if c.NackResendSleep < 0 || c.ResubscribeBackoff < 0 {
		errs = append(errs, errors.New("NackResendSleep and ResubscribeBackoff must not be negative"))
	}
	if c.ReadAhead < 1 || c.MaxSkipped < 1 {
		errs = append(errs, errors.New("ReadAhead and MaxSkipped must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("projections: invalid subscriber config: %w", err)
	}
	return nil
}

// ErrSubscriberClosed is returned by Subscribe after Close.
var ErrSubscriberClosed = errors.New("projections: subscriber closed")

// Subscriber is a Watermill message.Subscriber over the event-store port:
// each Subscribe reads the global log (through eventstore.Store.SubscribeAll,
// so it works with every store) from the position its topic resumes from,
// and emits one message per event, checkpoint and caught-up notice (or,
// with SubscriberConfig.Handles, one per run of events the consumer does
// not handle).
//
// Delivery is ordered and one at a time: the next message is sent only
// after the previous one was acknowledged; a nacked message is sent again
// after NackResendSleep. Positions are never skipped, so a consumer that
// stores the position of each message it has handled can always resume.
type Subscriber struct {
	cfg SubscriberConfig

	ctx    context.Context // ended by Close
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

var _ message.Subscriber = (*Subscriber)(nil)

// NewSubscriber returns a Subscriber for cfg.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Subscriber{cfg: cfg, ctx: ctx, cancel: cancel}, nil
}

// Subscribe implements message.Subscriber. The output channel is closed
// when ctx ends or Close is called. Messages carry ctx as their context.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrSubscriberClosed
	}
	from, err := s.cfg.ResumeFrom(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("projections: resume position of %q: %w", topic, err)
	}
	subCtx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	r := &reader{s: s, topic: topic, msgCtx: ctx, last: from}
	if err := r.open(subCtx); err != nil {
		stop()
		cancel()
		return nil, err
	}
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer stop()
		defer cancel()
		defer close(out)
		r.run(subCtx, out)
	}()
	return out, nil
}

// Close implements message.Subscriber: it ends every subscription, closes
// their output channels and waits for them.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// item is one message read ahead, or the error that ended the store's
// subscription.
type item struct {
	msg eventstore.Message
	// buffered is what the store's subscription still had buffered when
	// msg was read.
	buffered int
	err      error
}

// reader runs one subscription: a goroutine reads the store ahead into
// items while run delivers them one at a time.
type reader struct {
	s      *Subscriber
	topic  string
	msgCtx context.Context

	// last is the position of the last message acknowledged (or the start).
	last eventstore.Position

	sub   eventstore.Subscription // nil while not subscribed
	items chan item
	done  chan struct{} // closed when the read-ahead goroutine has ended
	stop  context.CancelFunc

	// skipped is the run of events not handled read but not yet
	// delivered (Handles): count is 0 when there is none.
	skipped skippedRun
}

type skippedRun struct {
	count int
	last  eventstore.RecordedEvent
	// buffered is what the store's subscription still had buffered when
	// the run's last event was read: more is on its way.
	buffered int
}

// open subscribes to the store after r.last and starts reading ahead.
func (r *reader) open(ctx context.Context) error {
	var source interface {
		SubscribeAll(ctx context.Context, opts eventstore.SubscribeOptions) (eventstore.Subscription, error)
	} = r.s.cfg.Store
	if r.s.cfg.Source != nil {
		source = r.s.cfg.Source
	}
	sub, err := source.SubscribeAll(ctx, eventstore.SubscribeOptions{From: r.last, StreamPrefixes: r.s.cfg.StreamPrefixes})
	if err != nil {
		return fmt.Errorf("projections: subscribe %q: %w", r.topic, err)
	}
	readCtx, stop := context.WithCancel(ctx)
	r.sub, r.stop = sub, stop
	r.items = make(chan item, r.s.cfg.ReadAhead)
	r.done = make(chan struct{})
	go r.readAhead(readCtx, sub, r.items, r.done)
	return nil
}

func (r *reader) readAhead(ctx context.Context, sub eventstore.Subscription, items chan<- item, done chan<- struct{}) {
	defer close(done)
	buffered, _ := sub.(eventstore.Buffered)
	for {
		m, err := sub.Next(ctx)
		it := item{msg: m, err: err}
		if err == nil && buffered != nil {
			it.buffered = buffered.Buffered()
		}
		select {
		case items <- it:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// shut stops the read-ahead goroutine and the store's subscription.
func (r *reader) shut() {
	if r.sub == nil {
		return
	}
	r.stop()
	<-r.done
	_ = r.sub.Close()
	r.sub = nil
}

func (r *reader) run(ctx context.Context, out chan<- *message.Message) {
	defer r.shut()
	log := r.s.cfg.Logger
	for {
		var it item
		if r.skipped.count > 0 && r.skipped.buffered == 0 {
			// A run of skipped events is delivered as soon as nothing
			// more is ready: it may be the tail a consumer waits for.
			select {
			case it = <-r.items:
			default:
				if !r.deliverSkipped(ctx, out, false) {
					return
				}
				continue
			}
		} else {
			select {
			case it = <-r.items:
			case <-ctx.Done():
				return
			}
		}
		if it.err != nil {
			if ctx.Err() != nil {
				return
			}
			// The run in hand is read again after the resubscription,
			// which resumes after the last message acknowledged.
			r.skipped = skippedRun{}
			log.Warn("projections: subscription failed; resubscribing", "topic", r.topic, "from", uint64(r.last), "err", it.err)
			r.shut()
			for {
				if !sleepCtx(ctx, r.s.cfg.ResubscribeBackoff) {
					return
				}
				err := r.open(ctx)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return
				}
				log.Warn("projections: resubscribe failed", "topic", r.topic, "err", err)
			}
			continue
		}
		more := it.buffered > 0 || len(r.items) > 0
		if r.s.cfg.Handles != nil && it.msg.Kind == eventstore.EventAppeared && !r.s.cfg.Handles(it.msg.Event.Type) {
			r.skipped.count++
			r.skipped.last, r.skipped.buffered = it.msg.Event, it.buffered
			if r.skipped.count >= r.s.cfg.MaxSkipped && !r.deliverSkipped(ctx, out, more) {
				return
			}
			continue
		}
		if r.skipped.count > 0 && !r.deliverSkipped(ctx, out, true) {
			return
		}
		msg := r.toMessage(it, more)
		if !r.deliver(ctx, out, msg) {
			return
		}
		r.last = it.msg.Position
	}
}

// deliverSkipped delivers the run of skipped events in hand as one
// KindSkipped message.
func (r *reader) deliverSkipped(ctx context.Context, out chan<- *message.Message, more bool) bool {
	e := r.skipped.last
	pos := strconv.FormatUint(uint64(e.Position), 10)
	msg := message.NewMessage(KindSkipped+"-"+pos, nil)
	msg.Metadata = message.Metadata{
		MetadataKind:       KindSkipped,
		MetadataPosition:   pos,
		MetadataSkipped:    strconv.Itoa(r.skipped.count),
		MetadataRecordedAt: e.RecordedAt.UTC().Format(time.RFC3339Nano),
		MetadataMore:       strconv.FormatBool(more),
	}
	msg.SetContext(r.msgCtx)
	if !r.deliver(ctx, out, msg) {
		return false
	}
	r.last = e.Position
	r.skipped = skippedRun{}
	return true
}

// deliver sends msg until it is acknowledged; it reports false when the
// subscription ended first.
func (r *reader) deliver(ctx context.Context, out chan<- *message.Message, msg *message.Message) bool {
	for {
		select {
		case out <- msg:
		case <-ctx.Done():
			return false
		}
		select {
		case <-msg.Acked():
			return true
		case <-msg.Nacked():
			if !sleepCtx(ctx, r.s.cfg.NackResendSleep) {
				return false
			}
			resent := msg.Copy()
			resent.SetContext(r.msgCtx)
			msg = resent
		case <-ctx.Done():
			return false
		}
	}
}

func (r *reader) toMessage(it item, more bool) *message.Message {
	m := it.msg
	var msg *message.Message
	switch m.Kind {
	case eventstore.EventAppeared:
		e := m.Event
		msg = message.NewMessage(e.ID.String(), e.Data)
		msg.Metadata = message.Metadata{
			MetadataName:       e.Type,
			MetadataStream:     e.Stream,
			MetadataRevision:   strconv.FormatUint(e.Revision, 10),
			MetadataPosition:   strconv.FormatUint(uint64(e.Position), 10),
			MetadataRecordedAt: e.RecordedAt.UTC().Format(time.RFC3339Nano),
			MetadataKind:       KindEvent,
		}
		if len(e.Metadata) > 0 {
			msg.Metadata[MetadataEventMetadata] = string(e.Metadata)
		}
	default:
		kind := KindCheckpoint
		if m.Kind == eventstore.CaughtUp {
			kind = KindCaughtUp
		}
		pos := strconv.FormatUint(uint64(m.Position), 10)
		msg = message.NewMessage(kind+"-"+pos, nil)
		msg.Metadata = message.Metadata{MetadataPosition: pos, MetadataKind: kind}
	}
	msg.Metadata[MetadataMore] = strconv.FormatBool(more)
	msg.SetContext(r.msgCtx)
	return msg
}

// RecordFromMessage rebuilds the stored event that a message of kind
// KindEvent carries.
func RecordFromMessage(msg *message.Message) (eventstore.RecordedEvent, error) {
	md := msg.Metadata
	if md.Get(MetadataKind) != KindEvent {
		return eventstore.RecordedEvent{}, fmt.Errorf("projections: message %s is a %q, not an event", msg.UUID, md.Get(MetadataKind))
	}
	id, err := uuid.Parse(msg.UUID)
	if err != nil {
		return eventstore.RecordedEvent{}, fmt.Errorf("projections: event id %q: %w", msg.UUID, err)
	}
	revision, err := strconv.ParseUint(md.Get(MetadataRevision), 10, 64)
	if err != nil {
		return eventstore.RecordedEvent{}, fmt.Errorf("projections: revision of %s: %w", msg.UUID, err)
	}
	position, err := MessagePosition(msg)
	if err != nil {
		return eventstore.RecordedEvent{}, err
	}
	recordedAt, err := time.Parse(time.RFC3339Nano, md.Get(MetadataRecordedAt))
	if err != nil {
		return eventstore.RecordedEvent{}, fmt.Errorf("projections: recorded_at of %s: %w", msg.UUID, err)
	}
	rec := eventstore.RecordedEvent{
		ID: id, Type: md.Get(MetadataName), Data: msg.Payload, Stream: md.Get(MetadataStream),
		Revision: revision, Position: position, RecordedAt: recordedAt,
	}
	if raw := md.Get(MetadataEventMetadata); raw != "" {
		rec.Metadata = []byte(raw)
	}
	return rec, nil
}

// MessagePosition is the global log position a message stands for: resuming
// after it delivers exactly the messages that follow.
func MessagePosition(msg *message.Message) (eventstore.Position, error) {
	p, err := strconv.ParseUint(msg.Metadata.Get(MetadataPosition), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("projections: position of message %s: %w", msg.UUID, err)
	}
	return eventstore.Position(p), nil
}

// sleepCtx waits d; it reports false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
