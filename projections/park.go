package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// Parking: an event a projector cannot apply (a permanent error from
// Apply, or an event the codec cannot read) must not stop the read side.
// The engine parks the event's stream in that generation: in the
// transaction that moves the checkpoint past the event it writes a row of
// projections.parked. Later events of a parked stream are passed without
// being applied (counted in waiting), so the stream's rows keep their last
// good state; every other stream goes on. A retry re-reads the stream from
// the parked revision up to the checkpoint, applies those events in order
// and deletes the row in one transaction; the events after the checkpoint
// are then applied by the worker as usual. Every write of a parked row
// runs on the projector's locked connection, so retries and batches are
// serialised and each event is still applied exactly once.

var (
	// ErrStillParked is matched (errors.Is) by the error of a retry that
	// failed again: the stream stays parked with one more attempt.
	ErrStillParked = errors.New("projections: the stream is still parked")
	// ErrNotParked: the projector has no such parked stream.
	ErrNotParked = errors.New("projections: the stream is not parked")
	// ErrRetryQueued: another process runs the projector; it retries the
	// stream at its next poll.
	ErrRetryQueued = errors.New("projections: the retry was queued for the process running the projector")
)

// Parked is a stream a projector generation could not apply an event of.
type Parked struct {
	Generation int
	Stream     string
	// Position, Revision, EventID and EventType are those of the first
	// event that could not be applied.
	Position  eventstore.Position
	Revision  uint64
	EventID   uuid.UUID
	EventType string
	// Err is the last error applying it.
	Err           string
	ParkedAt      time.Time
	LastAttemptAt time.Time
	// Attempts counts the tries: 1 when parked, +1 per failed retry.
	Attempts int
	// Waiting counts the stream's later events passed without applying.
	Waiting int64
	// RetryRequested: a retry waits for the process running the projector.
	RetryRequested bool
}

// StillParkedError is the error of a retry that failed.
type StillParkedError struct {
	Projector string
	Stream    string
	Attempts  int
	Err       string
}

func (e *StillParkedError) Error() string {
	return fmt.Sprintf("projections: %s: stream %s is still parked after %d attempts: %s", e.Projector, e.Stream, e.Attempts, e.Err)
}

// Is makes errors.Is(err, ErrStillParked) true.
func (e *StillParkedError) Is(target error) bool { return target == ErrStillParked }

// applyError marks an error returned by a projector's Apply (or a panic
// in it), as opposed to one of the engine's own statements: only the
// former park a stream.
type applyError struct{ err error }

func (e *applyError) Error() string { return e.err.Error() }
func (e *applyError) Unwrap() error { return e.err }

// parking is the event a commit parks the stream of.
type parking struct {
	rec   eventstore.RecordedEvent
	cause error
}

// loadParkedHint tells the worker whether its generation has parked
// streams, so that commits look them up only then.
func (w *worker) loadParkedHint(ctx context.Context) error {
	var any bool
	err := w.rt.e.cfg.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM projections.parked WHERE projector = $1 AND generation = $2)`,
		w.rt.p.Name(), w.gen.Number).Scan(&any)
	if err != nil {
		return fmt.Errorf("projections: parked streams of %s: %w", w.rt.p.Name(), err)
	}
	if any {
		w.parkedHint.Store(true)
	}
	return nil
}

// holdParked removes from decoded the events of parked streams, counting
// them as waiting, inside the commit's transaction.
func (w *worker) holdParked(ctx context.Context, tx pgx.Tx, decoded []eventcodec.Decoded) ([]eventcodec.Decoded, error) {
	if !w.parkedHint.Load() || len(decoded) == 0 {
		return decoded, nil
	}
	streams := make([]string, 0, len(decoded))
	seen := map[string]bool{}
	for _, d := range decoded {
		if !seen[d.Record.Stream] {
			seen[d.Record.Stream] = true
			streams = append(streams, d.Record.Stream)
		}
	}
	rows, err := tx.Query(ctx, `SELECT stream FROM projections.parked WHERE projector = $1 AND generation = $2 AND stream = ANY($3)`,
		w.rt.p.Name(), w.gen.Number, streams)
	if err != nil {
		return nil, err
	}
	parked, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(parked) == 0 {
		return decoded, err
	}
	held := map[string]int64{}
	for _, s := range parked {
		held[s] = 0
	}
	kept := make([]eventcodec.Decoded, 0, len(decoded))
	for _, d := range decoded {
		if n, ok := held[d.Record.Stream]; ok {
			held[d.Record.Stream] = n + 1
			continue
		}
		kept = append(kept, d)
	}
	counts := make([]int64, len(parked))
	for i, s := range parked {
		counts[i] = held[s]
	}
	_, err = tx.Exec(ctx, `UPDATE projections.parked p SET waiting = p.waiting + h.n FROM unnest($3::text[], $4::bigint[]) AS h(stream, n)
		WHERE p.projector = $1 AND p.generation = $2 AND p.stream = h.stream`, w.rt.p.Name(), w.gen.Number, parked, counts)
	return kept, err
}

// writeParked records, in the commit's transaction, that pk's stream is
// parked; an event of a stream parked already waits behind the first.
func (w *worker) writeParked(ctx context.Context, tx pgx.Tx, pk *parking) error {
	r := pk.rec
	var id any
	if r.ID != uuid.Nil {
		id = r.ID
	}
	_, err := tx.Exec(ctx, `INSERT INTO projections.parked AS p (projector, generation, stream, position, revision, event_id, event_type, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (projector, generation, stream) DO UPDATE SET waiting = p.waiting + 1`,
		w.rt.p.Name(), w.gen.Number, r.Stream, int64(r.Position), int64(r.Revision), id, r.Type, pk.cause.Error())
	return err
}

// park moves the checkpoint past rec (events messages up to it) and parks
// its stream, in one transaction.
func (w *worker) park(ctx context.Context, rec eventstore.RecordedEvent, events int64, cause error) error {
	// The hint goes up before the row exists, never after: a commit that
	// misses a parked stream would apply what must wait.
	w.parkedHint.Store(true)
	if err := w.commit(ctx, nil, rec.Position, events, rec.RecordedAt, &parking{rec: rec, cause: cause}); err != nil {
		return err
	}
	w.rt.e.cfg.Logger.Error("projections: parked a stream whose event could not be applied; other streams go on", "projector", w.rt.p.Name(),
		"generation", w.gen.Number, "stream", rec.Stream, "revision", rec.Revision, "position", uint64(rec.Position), "type", rec.Type, "err", cause)
	w.rt.e.refreshParkedMetric(ctx, w.rt)
	return nil
}

// RetryParked retries a parked stream of the projector after a fix: its
// waiting events are applied in order and the stream un-parked, or, if
// applying fails again, it stays parked with one more attempt (a
// *StillParkedError). When another process runs the projector, the retry
// is queued for it and ErrRetryQueued returned.
func (e *Engine) RetryParked(ctx context.Context, name, stream string) error {
	rt, err := e.runner(name)
	if err != nil {
		return err
	}
	rt.mu.Lock()
	active := rt.role != "" && rt.role != StateStandby
	workers := []*worker{}
	for _, w := range []*worker{rt.live, rt.builder} {
		if w != nil {
			workers = append(workers, w)
		}
	}
	rt.mu.Unlock()
	if !active || len(workers) == 0 {
		tag, err := e.cfg.Pool.Exec(ctx, `UPDATE projections.parked SET retry_requested = true
			WHERE projector = $1 AND stream = $2 AND generation IN (SELECT generation FROM projections.generations WHERE projector = $1 AND state IN ('active', 'building'))`,
			name, stream)
		if err != nil {
			return fmt.Errorf("projections: retry %s in %s: %w", stream, name, err)
		}
		if tag.RowsAffected() == 0 {
			return ErrNotParked
		}
		return ErrRetryQueued
	}
	found := false
	var errs []error
	for _, w := range workers {
		err := w.retryParked(ctx, stream)
		switch {
		case errors.Is(err, ErrNotParked):
			continue
		case err != nil:
			errs = append(errs, err)
		}
		found = true
	}
	if !found {
		return ErrNotParked
	}
	return errors.Join(errs...)
}

// retryQueued retries the parked streams other processes asked to.
func (rt *runner) retryQueued(ctx context.Context) {
	rt.mu.Lock()
	workers := map[int]*worker{}
	for _, w := range []*worker{rt.live, rt.builder} {
		if w != nil {
			workers[w.gen.Number] = w
		}
	}
	rt.mu.Unlock()
	rows, err := rt.e.cfg.Pool.Query(ctx, `SELECT generation, stream FROM projections.parked WHERE projector = $1 AND retry_requested`, rt.p.Name())
	if err != nil {
		return
	}
	type req struct {
		gen    int
		stream string
	}
	reqs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (req, error) {
		var r req
		return r, row.Scan(&r.gen, &r.stream)
	})
	if err != nil {
		return
	}
	for _, r := range reqs {
		if w := workers[r.gen]; w != nil {
			if err := w.retryParked(ctx, r.stream); err != nil && !errors.Is(err, ErrStillParked) && !errors.Is(err, ErrNotParked) {
				rt.e.cfg.Logger.Warn("projections: queued retry of a parked stream failed", "projector", rt.p.Name(), "stream", r.stream, "err", err)
			}
		}
	}
}

// retryParked applies the waiting events of a parked stream of the
// worker's generation and un-parks it, in one transaction on the locked
// connection (so no batch commits meanwhile): the events from the parked
// revision up to the checkpoint. Those after the checkpoint are the
// worker's to apply, once the stream is no longer parked.
func (w *worker) retryParked(ctx context.Context, stream string) error {
	name := w.rt.p.Name()
	var applied bool
	err := w.rt.lock.txAfter(ctx, w.gen.Schema, func(tx pgx.Tx) error {
		var cp int64
		if err := tx.QueryRow(ctx, `SELECT checkpoint FROM projections.generations WHERE projector = $1 AND generation = $2 AND state IN ('active', 'building') FOR UPDATE`,
			name, w.gen.Number).Scan(&cp); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotParked
			}
			return err
		}
		var rev int64
		if err := tx.QueryRow(ctx, `SELECT revision FROM projections.parked WHERE projector = $1 AND generation = $2 AND stream = $3 FOR UPDATE`,
			name, w.gen.Number, stream).Scan(&rev); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotParked
			}
			return err
		}
		events, err := w.waitingEvents(ctx, stream, uint64(rev), eventstore.Position(cp))
		if err != nil {
			return err
		}
		if len(events) > 0 {
			applied = true
			if err := safeApply(withGeneration(ctx, w.gen.Schema), w.rt.p, tx, events); err != nil {
				return &applyError{err}
			}
		}
		_, err = tx.Exec(ctx, `DELETE FROM projections.parked WHERE projector = $1 AND generation = $2 AND stream = $3`, name, w.gen.Number, stream)
		return err
	}, func(err error) {
		if c, ok := w.rt.p.(Cache); ok && applied {
			c.AfterApply(w.gen.Schema, err == nil)
		}
	})
	if err == nil {
		w.rt.e.cfg.Logger.Info("projections: un-parked a stream", "projector", name, "generation", w.gen.Number, "stream", stream)
		w.rt.e.refreshParkedMetric(ctx, w.rt)
		return nil
	}
	var ae *applyError
	var de *decodeError
	if !errors.As(err, &ae) && !errors.As(err, &de) {
		return err
	}
	if IsTransient(err) || ctx.Err() != nil {
		return err
	}
	still := &StillParkedError{Projector: name, Stream: stream, Err: err.Error()}
	if uerr := w.rt.lock.tx(ctx, "", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `UPDATE projections.parked SET attempts = attempts + 1, error = $4, last_attempt_at = now(), retry_requested = false
			WHERE projector = $1 AND generation = $2 AND stream = $3 RETURNING attempts`, name, w.gen.Number, stream, err.Error()).Scan(&still.Attempts)
	}); uerr != nil {
		return fmt.Errorf("projections: record the failed retry of %s: %w (retry: %w)", stream, uerr, err)
	}
	w.rt.e.cfg.Logger.Warn("projections: retry of a parked stream failed; it stays parked", "projector", name, "stream", stream, "attempts", still.Attempts, "err", err)
	return still
}

// decodeError is an event of a parked stream the codec could not read at
// a retry.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// waitingEvents reads and decodes the handled events of stream from
// revision on, up to position upTo.
func (w *worker) waitingEvents(ctx context.Context, stream string, from uint64, upTo eventstore.Position) ([]eventcodec.Decoded, error) {
	var out []eventcodec.Decoded
	const page = 500
	for {
		recs, err := w.rt.e.cfg.Store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{From: from, Limit: page})
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			if rec.Position > upTo {
				return out, nil
			}
			if !w.rt.handles[rec.Type] {
				continue
			}
			d, err := w.rt.e.decodeOne(ctx, rec)
			if err != nil {
				if IsTransient(err) {
					return nil, err
				}
				return nil, &decodeError{fmt.Errorf("projections: decode %s@%d (position %d): %w", rec.Stream, rec.Revision, rec.Position, err)}
			}
			out = append(out, d)
		}
		if len(recs) < page {
			return out, nil
		}
		from = recs[len(recs)-1].Revision + 1
	}
}

// parkedOf reads the parked streams of the projector's active and
// building generations.
func parkedOf(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, name string) ([]Parked, error) {
	rows, err := q.Query(ctx, `SELECT p.generation, p.stream, p.position, p.revision, p.event_id, p.event_type, p.error, p.parked_at,
			p.last_attempt_at, p.attempts, p.waiting, p.retry_requested
		FROM projections.parked p JOIN projections.generations g USING (projector, generation)
		WHERE p.projector = $1 AND g.state IN ('active', 'building') ORDER BY p.generation, p.parked_at, p.stream`, name)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Parked, error) {
		var (
			p        Parked
			pos, rev int64
			id       *uuid.UUID
		)
		err := row.Scan(&p.Generation, &p.Stream, &pos, &rev, &id, &p.EventType, &p.Err, &p.ParkedAt, &p.LastAttemptAt, &p.Attempts, &p.Waiting, &p.RetryRequested)
		p.Position, p.Revision = eventstore.Position(pos), uint64(rev)
		if id != nil {
			p.EventID = *id
		}
		return p, err
	})
}

// refreshParkedMetric sets the parked-streams gauge of the projector's
// active generation.
func (e *Engine) refreshParkedMetric(ctx context.Context, rt *runner) {
	var n int64
	err := e.cfg.Pool.QueryRow(ctx, `SELECT count(*) FROM projections.parked p JOIN projections.generations g USING (projector, generation)
		WHERE p.projector = $1 AND g.state = 'active'`, rt.p.Name()).Scan(&n)
	if err == nil {
		e.metrics.parked.WithLabelValues(rt.p.Name()).Set(float64(n))
	}
}

// StaleFor names the projectors among names (all of the engine's when
// none is given) whose active generation has stream parked: their rows
// for that customer keep their last good state, so a query that reads
// them answers stale data and should say so (stale: true).
func (e *Engine) StaleFor(ctx context.Context, stream string, names ...string) ([]string, error) {
	if len(names) == 0 {
		for _, rt := range e.runners {
			names = append(names, rt.p.Name())
		}
	}
	rows, err := e.cfg.Pool.Query(ctx, `SELECT DISTINCT p.projector FROM projections.parked p JOIN projections.generations g USING (projector, generation)
		WHERE p.stream = $1 AND p.projector = ANY($2) AND g.state = 'active' ORDER BY 1`, stream, names)
	if err != nil {
		return nil, fmt.Errorf("projections: stale projectors of %s: %w", stream, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
