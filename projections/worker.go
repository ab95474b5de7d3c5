package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// generation is a row of projections.generations.
type generation struct {
	Number        int
	Version       int
	Schema        string
	State         string
	Checkpoint    eventstore.Position
	EventsApplied int64
	RebuildTotal  int64
	// Lost: a building generation whose unlogged tables a database
	// restart emptied.
	Lost bool
}

// worker runs one generation of one projector: a Watermill router with one
// handler, fed by a Subscriber that resumes from the generation's
// checkpoint. The handler collects messages into a batch and flushes it
// (Apply and the checkpoint in one transaction on the locked connection)
// when the batch is full, when nothing more is ready, or on a checkpoint
// or caught-up notice.
//
// While catching up, flushing is pipelined one batch deep: the handler
// decodes the next batch while the previous one commits, so that the
// decoding (Go) and the writing (Postgres) use both cores. A batch's
// messages are acknowledged before it commits; that is safe because the
// checkpoint, not the acknowledgement, is what a restart resumes from, and
// a batch whose commit failed is kept and retried before anything else.
type worker struct {
	rt     *runner
	gen    generation
	topic  string
	router *message.Router

	// Handler state: Watermill hands one message at a time to the handler
	// (the subscriber waits for each ack), so only one handler at a time
	// touches these. But the router's Run can return while a handler is
	// still running (the subscription's channel closed under it), and
	// finish then flushes the batch in hand: handling serialises the two.
	handling sync.Mutex
	cur      *batch // being collected
	inflight *batch // sealed, committing or failed to commit
	seen     bool
	lastPos  eventstore.Position
	lastKind string

	mu            sync.Mutex
	committed     eventstore.Position // checkpoint committed
	eventsApplied int64
	caughtUp      bool
	failure       *PoisonError
	endErr        error
	active        bool // the generation serves readers; commits wake WaitForPosition

	// parkedHint: the generation may have parked streams, so commits look
	// for them. It is set before a stream is parked and never cleared.
	parkedHint atomic.Bool

	caughtUpCh chan struct{} // closed after the first caught-up notice is committed
	done       chan struct{} // closed when the worker has stopped
	progressed chan struct{} // signalled after each commit
}

// batch is a run of messages committed together.
type batch struct {
	events  []eventstore.RecordedEvent // handled events
	counts  []int64                    // counts[i]: messages of kind event in the batch up to events[i]
	nEvents int64                      // events (handled or not) in the batch
	end     eventstore.Position        // position of the last message
	endAt   time.Time                  // recorded_at of the last event

	decoded   []eventcodec.Decoded // set once decoded
	decodeErr error
	bad       int // index of the event that failed to decode

	done chan struct{} // closed when an asynchronous commit ended
	err  error         // why the last commit attempt failed
}

func newBatch(end eventstore.Position) *batch { return &batch{end: end} }

func newWorker(rt *runner, gen generation, active bool) *worker {
	return &worker{
		rt: rt, gen: gen, active: active,
		topic:      fmt.Sprintf("%s.g%d", rt.p.Name(), gen.Number),
		committed:  gen.Checkpoint,
		cur:        newBatch(gen.Checkpoint),
		caughtUpCh: make(chan struct{}),
		done:       make(chan struct{}),
		progressed: make(chan struct{}, 1),
	}
}

// start runs the worker's router until ctx ends or stop is called.
func (w *worker) start(ctx context.Context) error {
	e := w.rt.e
	if err := w.loadParkedHint(ctx); err != nil {
		return err
	}
	subCfg := SubscriberConfig{
		Store:          e.cfg.Store,
		StreamPrefixes: e.cfg.StreamPrefixes,
		ResumeFrom: func(context.Context, string) (eventstore.Position, error) {
			return w.checkpoint(), nil
		},
		NackResendSleep: e.cfg.NackResendSleep,
		// Enough to overlap reading with a batch's commit; its channel is
		// allocated whole, for each generation.
		ReadAhead: min(max(2*e.cfg.RebuildBatchSize, 256), 16_384),
		// Events the projector does not handle come in runs, one message
		// each: the router's work per message, for every projector and
		// every event of the log, was a third of a rebuild's CPU.
		Handles: func(eventType string) bool { return w.rt.handles[eventType] },
		Logger:  e.cfg.Logger,
	}
	if e.shared != nil {
		subCfg.Source = e.shared
	}
	sub, err := NewSubscriber(subCfg)
	if err != nil {
		return err
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: e.cfg.ShutdownTimeout + time.Minute}, e.wmLogger)
	if err != nil {
		return fmt.Errorf("projections: router: %w", err)
	}
	router.AddMiddleware(w.retryTransient, middleware.Recoverer)
	router.AddConsumerHandler(w.topic, w.topic, sub, w.handle)
	w.router = router
	go func() {
		err := router.Run(ctx)
		w.finish(err)
	}()
	select {
	case <-router.Running():
	case <-w.done:
	}
	return nil
}

// stop closes the router; the batch in hand is committed before done is
// closed.
func (w *worker) stop() {
	select {
	case <-w.done:
		// The router already ended by itself. Closing it now would wait
		// its whole CloseTimeout if it ended before its handler started
		// (a failed Subscribe): Watermill counts such a handler as
		// running forever.
		return
	default:
	}
	if w.router != nil {
		_ = w.router.Close()
	}
	<-w.done
}

func (w *worker) finish(routerErr error) {
	defer close(w.done)
	w.mu.Lock()
	failed := w.failure != nil || w.endErr != nil
	w.mu.Unlock()
	if !failed {
		ctx, cancel := context.WithTimeout(context.Background(), w.rt.e.cfg.ShutdownTimeout)
		defer cancel()
		w.handling.Lock()
		defer w.handling.Unlock()
		if err := w.flush(ctx, false); err != nil {
			w.rt.e.cfg.Logger.Warn("projections: could not commit the last batch at shutdown; it will be applied again", "projector", w.rt.p.Name(), "err", err)
		}
	}
	w.mu.Lock()
	if w.endErr == nil {
		w.endErr = routerErr
	}
	w.mu.Unlock()
}

// err is why the worker stopped by itself (poison, lost lock), or nil.
func (w *worker) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failure != nil {
		return w.failure
	}
	return w.endErr
}

func (w *worker) checkpoint() eventstore.Position {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.committed
}

func (w *worker) progress() (eventstore.Position, int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.committed, w.eventsApplied, w.caughtUp
}

// batchSize is the most events of one batch.
func (w *worker) batchSize() int64 {
	if w.isActive() {
		return int64(w.rt.e.cfg.BatchSize)
	}
	return int64(w.rt.e.cfg.RebuildBatchSize)
}

func (w *worker) isActive() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.active
}

func (w *worker) setActive() {
	w.mu.Lock()
	w.active = true
	w.mu.Unlock()
}

// handle is the Watermill handler.
func (w *worker) handle(msg *message.Message) error {
	w.handling.Lock()
	defer w.handling.Unlock()
	if err := w.err(); err != nil {
		return err
	}
	pos, err := MessagePosition(msg)
	if err != nil {
		return w.stopOnBadMessage(msg, err)
	}
	kind := msg.Metadata.Get(MetadataKind)
	// A message seen before is a redelivery (a retry of this handler or a
	// nack): it is already in a batch.
	fresh := !w.seen || pos > w.lastPos || (pos == w.lastPos && kind != w.lastKind)
	if fresh {
		w.seen, w.lastPos, w.lastKind = true, pos, kind
		b := w.cur
		if kind == KindEvent && pos > b.end {
			b.nEvents++
			if w.rt.handles[msg.Metadata.Get(MetadataName)] {
				rec, err := RecordFromMessage(msg)
				if err != nil {
					return w.stopOnBadMessage(msg, err)
				}
				b.events = append(b.events, rec)
				b.counts = append(b.counts, b.nEvents)
			}
			if at, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(MetadataRecordedAt)); err == nil {
				b.endAt = at
			}
		}
		if kind == KindSkipped && pos > b.end {
			// Events this projector does not handle, counted like the
			// others.
			n, err := strconv.ParseInt(msg.Metadata.Get(MetadataSkipped), 10, 64)
			if err != nil || n < 1 {
				return w.stopOnBadMessage(msg, fmt.Errorf("projections: skipped count %q", msg.Metadata.Get(MetadataSkipped)))
			}
			b.nEvents += n
			if at, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(MetadataRecordedAt)); err == nil {
				b.endAt = at
			}
		}
		if pos > b.end {
			b.end = pos
		}
	}
	more := (kind == KindEvent || kind == KindSkipped) && msg.Metadata.Get(MetadataMore) == "true"
	if more && w.cur.nEvents < w.batchSize() {
		return nil
	}
	// A full batch with more to come commits in the background while the
	// next one is collected; otherwise commit now, so that a live event is
	// visible as soon as it is handled.
	if err := w.flush(msg.Context(), more); err != nil {
		return err
	}
	if kind == KindCaughtUp {
		w.mu.Lock()
		if !w.caughtUp {
			w.caughtUp = true
			close(w.caughtUpCh)
		}
		w.mu.Unlock()
		w.rt.stateChanged()
	}
	return nil
}

// stopOnBadMessage stops the projector on a message it cannot even read.
func (w *worker) stopOnBadMessage(msg *message.Message, cause error) error {
	rec := eventstore.RecordedEvent{Stream: msg.Metadata.Get(MetadataStream), Type: msg.Metadata.Get(MetadataName)}
	rec.Position, _ = MessagePosition(msg)
	return w.poison(msg.Context(), rec, cause)
}

// flush seals the batch in hand and commits it: in the background when
// async, else before returning. The batch committing before (if any) is
// committed first, and retried here if its commit failed.
func (w *worker) flush(ctx context.Context, async bool) error {
	b := w.cur
	if b.end <= w.lastSealedEnd() && len(b.events) == 0 {
		return w.settle(ctx)
	}
	// Decode while the previous batch commits.
	w.decode(ctx, b)
	if err := w.settle(ctx); err != nil {
		return err
	}
	w.cur = newBatch(b.end)
	w.inflight = b
	if !async {
		return w.settle(ctx)
	}
	b.done = make(chan struct{})
	go func() {
		defer close(b.done)
		b.err = w.apply(ctx, b)
	}()
	return nil
}

// lastSealedEnd is where the batches sealed so far end.
func (w *worker) lastSealedEnd() eventstore.Position {
	if w.inflight != nil {
		return w.inflight.end
	}
	return w.checkpoint()
}

// settle waits for the batch in flight, and commits it again here if it
// failed; it returns only when no batch is in flight, or with the error
// that keeps one there.
func (w *worker) settle(ctx context.Context) error {
	b := w.inflight
	if b == nil {
		return nil
	}
	if b.done != nil {
		select {
		case <-b.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		b.done = nil
		if b.err == nil {
			w.inflight = nil
			return nil
		}
		if errors.As(b.err, new(*PoisonError)) {
			return b.err
		}
	}
	if err := w.apply(ctx, b); err != nil {
		b.err = err
		return err
	}
	w.inflight = nil
	return nil
}

func (w *worker) decode(ctx context.Context, b *batch) {
	if b.decoded != nil || len(b.events) == 0 {
		return
	}
	b.decoded, b.bad, b.decodeErr = w.rt.e.decode(ctx, b.events)
}

// apply commits a sealed batch. On a permanent error it finds the event
// that fails on its own, commits everything before it, parks that event's
// stream (moving the checkpoint past it) and goes on with the rest.
func (w *worker) apply(ctx context.Context, b *batch) error {
	start := time.Now()
	for {
		if b.decodeErr != nil && (IsTransient(b.decodeErr) || cancelled(b.decodeErr) || ctx.Err() != nil) {
			b.decoded, b.decodeErr = nil, nil // decode again
		}
		w.decode(ctx, b)
		if b.decodeErr == nil {
			break
		}
		if IsTransient(b.decodeErr) || cancelled(b.decodeErr) || ctx.Err() != nil {
			return b.decodeErr
		}
		// Commit what comes before the undecodable event, park its
		// stream, and decode the rest again.
		if b.bad > 0 {
			last := b.events[b.bad-1]
			if err := w.commit(ctx, b.decoded[:b.bad], last.Position, b.counts[b.bad-1], last.RecordedAt, nil); err != nil {
				return err
			}
			b.dropFirst(b.bad)
			b.bad = 0
		}
		if err := w.park(ctx, b.events[0], b.counts[0], b.decodeErr); err != nil {
			return err
		}
		b.dropFirst(1)
		b.decoded, b.decodeErr = nil, nil
	}
	decoded := b.decoded
	for {
		err := w.commit(ctx, decoded, b.end, b.nEvents, b.endAt, nil)
		if err == nil {
			took := time.Since(start)
			w.rt.e.metrics.batch.WithLabelValues(w.rt.p.Name()).Observe(took.Seconds())
			w.rt.e.cfg.Logger.Debug("projections: batch committed", "projector", w.rt.p.Name(), "generation", w.gen.Number,
				"events", b.nEvents, "applied", len(decoded), "took", took)
			return nil
		}
		if IsTransient(err) || ctx.Err() != nil || errors.Is(err, errLockLost) || !errors.As(err, new(*applyError)) || len(decoded) == 0 {
			return err
		}
		// A permanent error: find the event that fails on its own.
		// Everything before it is committed, one event per transaction;
		// it parks its stream, and the rest is tried as a batch again.
		w.rt.e.cfg.Logger.Warn("projections: batch failed; applying its events one by one to find the one that fails", "projector", w.rt.p.Name(), "events", len(decoded), "err", err)
		for len(decoded) > 0 {
			d := decoded[0]
			err := w.commit(ctx, decoded[:1], d.Record.Position, b.counts[0], d.Record.RecordedAt, nil)
			if err != nil {
				if IsTransient(err) || ctx.Err() != nil || errors.Is(err, errLockLost) || !errors.As(err, new(*applyError)) {
					return err
				}
				if err := w.park(ctx, d.Record, b.counts[0], err); err != nil {
					return err
				}
			}
			decoded = decoded[1:]
			b.decoded = decoded
			b.dropFirst(1)
			if err != nil {
				break
			}
		}
	}
}

// dropFirst removes the first n handled events after they were committed.
func (b *batch) dropFirst(n int) {
	done := b.counts[n-1]
	b.events = b.events[n:]
	b.counts = b.counts[n:]
	for i := range b.counts {
		b.counts[i] -= done
	}
	b.nEvents -= done
}

// commit applies decoded and moves the checkpoint to end in one transaction
// on the locked connection. The checkpoint moves only from the value this
// worker last committed: if it moved otherwise, either an earlier commit
// whose outcome was unknown (the connection broke during COMMIT) did
// happen, or another process wrote, and this one must stop.
//
// With pk, the commit parks pk's stream instead (decoded is then empty).
// Events of parked streams in decoded are not applied but counted as
// waiting.
func (w *worker) commit(ctx context.Context, decoded []eventcodec.Decoded, end eventstore.Position, events int64, lastAt time.Time, pk *parking) error {
	name := w.rt.p.Name()
	from := w.checkpoint()
	if end < from {
		end = from
	}
	var already, applied bool
	var at any
	if !lastAt.IsZero() {
		at = lastAt
	}
	err := w.rt.lock.txSelfMarked(ctx, func(tx pgx.Tx) error {
		// One round trip opens the batch: it marks the transaction as a
		// projector's (ReadModelApplicationName), moves the checkpoint (only
		// from the value this worker committed; it locks the generation's
		// row until the commit), sets the search_path for Apply and, for
		// a generation that serves nobody yet, asynchronous commit: a
		// server crash may then lose its last commits, but never half of
		// one, since rows and checkpoint commit together; the lost batches
		// are applied again. If Apply fails, the rollback takes the
		// checkpoint back with the rows. (Four statements did this before;
		// a rebuild commits every projector's batches, so they counted.)
		var moved bool
		err := tx.QueryRow(ctx, `UPDATE projections.generations SET checkpoint = $3, events_applied = events_applied + $4,
			last_recorded_at = coalesce($5, last_recorded_at), updated_at = now()
			WHERE projector = $1 AND generation = $2 AND state IN ('active', 'building') AND checkpoint = $6
			RETURNING set_config('application_name', $9, true) IS NOT NULL AND set_config('search_path', $7, true) IS NOT NULL AND (NOT $8 OR set_config('synchronous_commit', 'off', true) IS NOT NULL)`,
			name, w.gen.Number, int64(end), events, at, int64(from), pgx.Identifier{w.gen.Schema}.Sanitize(), !w.isActive(), ReadModelApplicationName).Scan(&moved)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if !moved {
			var current int64
			if err := tx.QueryRow(ctx, `SELECT checkpoint FROM projections.generations WHERE projector = $1 AND generation = $2 AND state IN ('active', 'building') FOR UPDATE`,
				name, w.gen.Number).Scan(&current); err != nil {
				if errors.Is(err, pgx.ErrNoRows) {
					return fmt.Errorf("%w: generation %d of %s is no longer in use", errLockLost, w.gen.Number, name)
				}
				return err
			}
			if eventstore.Position(current) == end {
				already = true
				return nil
			}
			return fmt.Errorf("%w: checkpoint of %s generation %d is %d, this process expected %d", errLockLost, name, w.gen.Number, current, from)
		}
		if pk != nil {
			if err := w.writeParked(ctx, tx, pk); err != nil {
				return err
			}
		}
		decoded, err := w.holdParked(ctx, tx, decoded)
		if err != nil {
			return err
		}
		if len(decoded) > 0 {
			applied = true
			if err := safeApply(withGeneration(ctx, w.gen.Schema), w.rt.p, tx, decoded); err != nil {
				return &applyError{err}
			}
		}
		return nil
	}, func(err error) {
		if c, ok := w.rt.p.(Cache); ok && applied {
			c.AfterApply(w.gen.Schema, err == nil)
		}
	})
	if err != nil {
		return err
	}
	if already {
		w.rt.e.cfg.Logger.Info("projections: a commit whose outcome was unknown had succeeded", "projector", name, "checkpoint", uint64(end))
	}
	w.mu.Lock()
	w.committed = end
	w.eventsApplied += events
	active := w.active
	w.mu.Unlock()
	select {
	case w.progressed <- struct{}{}:
	default:
	}
	m := w.rt.e.metrics
	m.applied.WithLabelValues(name).Add(float64(events))
	if active {
		m.checkpoint.WithLabelValues(name).Set(float64(end))
		w.rt.e.commits.Broadcast()
	}
	return nil
}

// safeApply turns a panic in a projector into a permanent error, so that
// the poison event is isolated like for any other bug.
func safeApply(ctx context.Context, p Projector, tx pgx.Tx, batch []eventcodec.Decoded) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("projector %s panicked: %v\n%s", p.Name(), r, debug.Stack())
		}
	}()
	return p.Apply(ctx, tx, batch)
}

// poison records that rec stopped the generation, and stops the worker.
// The checkpoint stays where it is, before rec.
func (w *worker) poison(ctx context.Context, rec eventstore.RecordedEvent, cause error) error {
	name := w.rt.p.Name()
	pe := &PoisonError{Projector: name, Generation: w.gen.Number, Poison: Poison{
		Position: rec.Position, Stream: rec.Stream, Revision: rec.Revision, EventID: rec.ID, EventType: rec.Type,
		Err: cause.Error(), At: time.Now().UTC(),
	}}
	err := w.rt.lock.tx(ctx, "", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE projections.generations SET stopped_at = now(), poison_position = $3, poison_stream = $4,
			poison_revision = $5, poison_event_id = $6, poison_type = $7, poison_error = $8, updated_at = now()
			WHERE projector = $1 AND generation = $2`,
			name, w.gen.Number, int64(rec.Position), rec.Stream, int64(rec.Revision), rec.ID, rec.Type, cause.Error())
		return err
	})
	if err != nil && (IsTransient(err) || ctx.Err() != nil) {
		return err // try again: the batch is still in hand
	}
	w.rt.e.cfg.Logger.Error("projections: projector stopped on a poison event", "projector", name, "generation", w.gen.Number,
		"position", uint64(rec.Position), "stream", rec.Stream, "revision", rec.Revision, "type", rec.Type, "err", cause)
	w.mu.Lock()
	w.failure = pe
	w.mu.Unlock()
	w.rt.stateChanged()
	go func() { _ = w.router.Close() }()
	return pe
}

// retryTransient is the router's retry middleware: a handler that failed
// with a transient error (IsTransient) is called again after an
// exponential backoff (Config.Retry), other outcomes pass through. It does
// what Watermill's Retry middleware did here, without setting up a backoff
// for every message: the handler runs once per message of the log for
// every projector, and almost always succeeds at once, so that set-up was
// 5% of a rebuild's CPU.
func (w *worker) retryTransient(h message.HandlerFunc) message.HandlerFunc {
	cfg := w.rt.e.cfg.Retry
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		delay := cfg.InitialInterval
		for n := 1; err != nil && IsTransient(err) && n <= cfg.MaxRetries; n++ {
			w.rt.e.cfg.Logger.Warn("projections: retrying after a transient error", "projector", w.rt.p.Name(), "generation", w.gen.Number, "retry", n, "delay", delay, "err", err)
			t := time.NewTimer(delay)
			select {
			case <-msg.Context().Done():
				t.Stop()
				return nil, msg.Context().Err()
			case <-t.C:
			}
			out, err = h(msg)
			delay = min(time.Duration(float64(delay)*cfg.Multiplier), cfg.MaxInterval)
		}
		return out, err
	}
}

// newWatermillLogger adapts slog for Watermill, one level quieter: the
// router's informational messages are debug noise here.
func newWatermillLogger(logger *slog.Logger) watermill.LoggerAdapter {
	return gatedLogger{watermill.NewSlogLoggerWithLevelMapping(logger, map[slog.Level]slog.Level{
		slog.LevelInfo: slog.LevelDebug,
	}), logger}
}

// gatedLogger asks slog whether a level is enabled before Watermill's
// adapter turns the fields into attributes: the router traces every
// message it handles, and building those attributes only to drop them was
// 3% of a rebuild's CPU.
type gatedLogger struct {
	watermill.LoggerAdapter
	slog *slog.Logger
}

func (g gatedLogger) enabled(level slog.Level) bool {
	return g.slog.Enabled(context.Background(), level)
}

func (g gatedLogger) Info(msg string, fields watermill.LogFields) {
	if g.enabled(slog.LevelDebug) { // Info is mapped to Debug
		g.LoggerAdapter.Info(msg, fields)
	}
}

func (g gatedLogger) Debug(msg string, fields watermill.LogFields) {
	if g.enabled(slog.LevelDebug) {
		g.LoggerAdapter.Debug(msg, fields)
	}
}

func (g gatedLogger) Trace(msg string, fields watermill.LogFields) {
	if g.enabled(watermill.LevelTrace) {
		g.LoggerAdapter.Trace(msg, fields)
	}
}

func (g gatedLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return gatedLogger{g.LoggerAdapter.With(fields), g.slog}
}

// cancelled reports a decode that failed because some context ended — a
// key load shared with a caller going away, a shutdown reaching the key
// store before the worker — rather than because of the event: it says
// nothing about the event, so it must never park its stream (the batch is
// decoded again).
func cancelled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
