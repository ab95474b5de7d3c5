package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// Status is what GET /v1/projections shows of one projector. It is read
// from the bookkeeping tables and the store, so every process reports the
// same, whichever runs the projector.
type Status struct {
	Name string
	// Generation and Version of the active generation (0 before the first
	// run); CodeVersion is the projector's Version in this process.
	Generation  int
	Version     int
	CodeVersion int
	// Checkpoint is the position up to which the active generation has
	// applied the log; Head the store's last position.
	Checkpoint eventstore.Position
	Head       eventstore.Position
	// LagEvents counts the projected streams' events after Checkpoint
	// (LagEstimated when the store cannot count and it was extrapolated).
	LagEvents    int64
	LagEstimated bool
	// LagSeconds is the age of the oldest event not yet applied; 0 when
	// caught up.
	LagSeconds float64
	// EventsApplied counts the events the active generation went through.
	EventsApplied int64
	// State is one of the State constants; Owner the process running it.
	State string
	Owner string
	// Local is this process's part: "active", "standby" or "".
	Local string
	// Rebuild is set while a new generation is being built.
	Rebuild *RebuildProgress
	// RebuildError says why the last rebuild failed, if it did.
	RebuildError string
	// Poison is set when State is StateStopped: a message the engine
	// could not even read (events it cannot apply park their stream).
	Poison *Poison
	// Parked lists the streams the active (and building) generation
	// parked; a projector with any is degraded: those customers' rows
	// are stale.
	Parked []Parked
}

// RebuildProgress is the progress of a rebuild.
type RebuildProgress struct {
	Generation int
	Version    int
	Checkpoint eventstore.Position
	Done       int64
	Total      int64
}

// headPositioner is implemented by stores that know the log's last
// position (both of Rapport's).
type headPositioner interface {
	HeadPosition(ctx context.Context) (eventstore.Position, error)
}

// eventCounter is implemented by stores that can count the events of some
// streams after a position (the Postgres store).
type eventCounter interface {
	CountAfter(ctx context.Context, after eventstore.Position, prefixes []string) (int64, error)
}

// Status reports every projector of the engine.
func (e *Engine) Status(ctx context.Context) ([]Status, error) {
	out := make([]Status, 0, len(e.runners))
	var head eventstore.Position
	if hp, ok := e.cfg.Store.(headPositioner); ok {
		h, err := hp.HeadPosition(ctx)
		if err != nil {
			return nil, fmt.Errorf("projections: status: %w", err)
		}
		head = h
	}
	for _, rt := range e.runners {
		st, err := rt.status(ctx, head)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (rt *runner) status(ctx context.Context, head eventstore.Position) (Status, error) {
	name := rt.p.Name()
	st := Status{Name: name, CodeVersion: rt.p.Version(), Head: head}
	var (
		ownerState, owner *string
		rebuildError      *string
		held              bool
	)
	err := rt.e.cfg.Pool.QueryRow(ctx, `SELECT p.state, p.owner, p.rebuild_error, (`+lockHeldQuery()+`)
		FROM (SELECT 1) one LEFT JOIN projections.projectors p ON p.name = $2`, lockNamespace, name).
		Scan(&ownerState, &owner, &rebuildError, &held)
	if err != nil {
		return st, fmt.Errorf("projections: status of %s: %w", name, err)
	}
	if rebuildError != nil {
		st.RebuildError = *rebuildError
	}
	rows, err := rt.e.cfg.Pool.Query(ctx, `SELECT generation, version, state, checkpoint, events_applied, coalesce(rebuild_total, 0),
			stopped_at, poison_position, poison_stream, poison_revision, poison_event_id, poison_type, poison_error
		FROM projections.generations WHERE projector = $1 AND state IN ('active', 'building')`, name)
	if err != nil {
		return st, fmt.Errorf("projections: status of %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			gen, version           int
			state                  string
			cp, applied, total     int64
			stoppedAt              *time.Time
			pPos, pRev             *int64
			pStream, pType, pError *string
			pID                    *uuid.UUID
		)
		if err := rows.Scan(&gen, &version, &state, &cp, &applied, &total, &stoppedAt, &pPos, &pStream, &pRev, &pID, &pType, &pError); err != nil {
			return st, err
		}
		if state == "active" {
			st.Generation, st.Version, st.Checkpoint, st.EventsApplied = gen, version, eventstore.Position(cp), applied
			if stoppedAt != nil && pPos != nil {
				st.Poison = &Poison{Position: eventstore.Position(*pPos), Stream: deref(pStream), Revision: uint64(derefInt(pRev)),
					EventType: deref(pType), Err: deref(pError), At: *stoppedAt}
				if pID != nil {
					st.Poison.EventID = *pID
				}
			}
		} else {
			st.Rebuild = &RebuildProgress{Generation: gen, Version: version, Checkpoint: eventstore.Position(cp), Done: applied, Total: max(total, applied)}
		}
	}
	if err := rows.Err(); err != nil {
		return st, err
	}

	if st.Parked, err = parkedOf(ctx, rt.e.cfg.Pool, name); err != nil {
		return st, fmt.Errorf("projections: parked streams of %s: %w", name, err)
	}

	local := rt.localState()
	switch {
	case local != "" && local != StateStandby:
		st.State, st.Owner, st.Local = local, rt.e.cfg.Instance, "active"
	case held && ownerState != nil:
		st.State, st.Owner = *ownerState, deref(owner)
	case local == StateStandby:
		st.State = StateStandby
	default:
		st.State = StateIdle
	}
	if local == StateStandby {
		st.Local = StateStandby
	}
	if st.Poison != nil && st.State != StateIdle && st.State != StateStandby {
		st.State = StateStopped
	}
	if st.Generation > 0 {
		lag, estimated, age, err := rt.e.lag(ctx, st.Checkpoint, head)
		if err != nil {
			return st, fmt.Errorf("projections: lag of %s: %w", name, err)
		}
		st.LagEvents, st.LagEstimated, st.LagSeconds = lag, estimated, age
	}
	return st, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefInt(i *int64) int64 {
	if i == nil {
		return 0
	}
	return *i
}

// lagScanLimit bounds how many events lag reads when the store cannot
// count; beyond it the lag is extrapolated from the positions.
const lagScanLimit = 10_000

// lag counts the projected events after checkpoint and the age of the
// oldest of them.
func (e *Engine) lag(ctx context.Context, checkpoint, head eventstore.Position) (count int64, estimated bool, ageSeconds float64, err error) {
	if head != 0 && checkpoint >= head {
		return 0, false, 0, nil
	}
	page, err := e.cfg.Store.ReadAll(ctx, eventstore.ReadAllOptions{From: checkpoint, Limit: 500})
	if err != nil {
		return 0, false, 0, err
	}
	var oldest time.Time
	matched := int64(0)
	last := checkpoint
	for _, ev := range page {
		last = ev.Position
		if e.projected(ev.Stream) {
			if oldest.IsZero() {
				oldest = ev.RecordedAt
			}
			matched++
		}
	}
	if !oldest.IsZero() {
		ageSeconds = max(time.Since(oldest).Seconds(), 0)
	}
	if len(page) < 500 {
		// The whole backlog is in the page: the count is exact without
		// asking the store to count, which costs a scan of the log's tail
		// (a sequential scan of the whole log when PostgreSQL has no
		// statistics for it) once per projector.
		return matched, false, ageSeconds, nil
	}
	if c, ok := e.cfg.Store.(eventCounter); ok {
		n, err := c.CountAfter(ctx, checkpoint, e.cfg.StreamPrefixes)
		return n, false, ageSeconds, err
	}
	// Read on up to lagScanLimit events, then extrapolate over the
	// positions still ahead.
	scanned := int64(len(page))
	for scanned < lagScanLimit {
		page, err = e.cfg.Store.ReadAll(ctx, eventstore.ReadAllOptions{From: last, Limit: 1000})
		if err != nil {
			return 0, false, 0, err
		}
		for _, ev := range page {
			last = ev.Position
			if e.projected(ev.Stream) {
				if oldest.IsZero() {
					oldest = ev.RecordedAt
					ageSeconds = max(time.Since(oldest).Seconds(), 0)
				}
				matched++
			}
		}
		scanned += int64(len(page))
		if len(page) < 1000 {
			return matched, false, ageSeconds, nil
		}
	}
	if head > last && last > checkpoint {
		matched = int64(float64(matched) * float64(head-checkpoint) / float64(last-checkpoint))
	}
	return matched, true, ageSeconds, nil
}

func (e *Engine) projected(stream string) bool {
	if len(e.cfg.StreamPrefixes) == 0 {
		return true
	}
	for _, p := range e.cfg.StreamPrefixes {
		if strings.HasPrefix(stream, p) {
			return true
		}
	}
	return false
}

// countEvents counts the projected events after a position, for rebuild
// progress; -1 when it cannot be known cheaply.
func (e *Engine) countEvents(ctx context.Context, after eventstore.Position) int64 {
	head := eventstore.Position(0)
	if hp, ok := e.cfg.Store.(headPositioner); ok {
		if h, err := hp.HeadPosition(ctx); err == nil {
			head = h
		}
	}
	n, _, _, err := e.lag(ctx, after, head)
	if err != nil {
		return 0
	}
	return n
}

// metricsLoop refreshes the lag metrics of the projectors this process
// runs.
func (e *Engine) metricsLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.MetricsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var head eventstore.Position
		if hp, ok := e.cfg.Store.(headPositioner); ok {
			h, err := hp.HeadPosition(ctx)
			if err != nil {
				continue
			}
			head = h
		}
		for _, rt := range e.runners {
			rt.mu.Lock()
			live := rt.live
			rt.mu.Unlock()
			if live == nil {
				continue
			}
			cp := live.checkpoint()
			n, _, age, err := e.lag(ctx, cp, head)
			if err != nil {
				continue
			}
			name := rt.p.Name()
			e.metrics.lagEvents.WithLabelValues(name).Set(float64(n))
			e.metrics.lagSeconds.WithLabelValues(name).Set(age)
			e.metrics.checkpoint.WithLabelValues(name).Set(float64(cp))
			e.refreshParkedMetric(ctx, rt)
		}
	}
}

// metrics are the engine's Prometheus metrics, per projector.
type metrics struct {
	checkpoint *prometheus.GaugeVec
	lagEvents  *prometheus.GaugeVec
	lagSeconds *prometheus.GaugeVec
	applied    *prometheus.CounterVec
	batch      *prometheus.HistogramVec
	state      *prometheus.GaugeVec
	parked     *prometheus.GaugeVec
}

var allStates = []string{StateRunning, StateCatchingUp, StateRebuilding, StateStandby, StateStopped, StateStarting, StateIdle}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	label := []string{"projector"}
	m := &metrics{
		checkpoint: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "rapport", Subsystem: "projection", Name: "checkpoint",
			Help: "Global log position up to which the active generation has applied events."}, label),
		lagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "rapport", Subsystem: "projection", Name: "lag_events",
			Help: "Projected events after the checkpoint (in this process's projectors)."}, label),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "rapport", Subsystem: "projection", Name: "lag_seconds",
			Help: "Age of the oldest event not yet applied; 0 when caught up."}, label),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "rapport", Subsystem: "projection", Name: "events_applied_total",
			Help: "Events committed by this process, rebuilds included."}, label),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "rapport", Subsystem: "projection", Name: "batch_duration_seconds",
			Help: "Time to decode, apply and commit one batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, label),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "rapport", Subsystem: "projection", Name: "state",
			Help: "1 for the projector's current state in this process, 0 for the others."}, []string{"projector", "state"}),
		parked: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "rapport", Subsystem: "projection", Name: "parked_streams",
			Help: "Streams the active generation parked on an event it could not apply (a degraded projector when above 0)."}, label),
	}
	var err error
	m.checkpoint, err = register(reg, m.checkpoint)
	if err == nil {
		m.lagEvents, err = register(reg, m.lagEvents)
	}
	if err == nil {
		m.lagSeconds, err = register(reg, m.lagSeconds)
	}
	if err == nil {
		m.applied, err = register(reg, m.applied)
	}
	if err == nil {
		m.batch, err = register(reg, m.batch)
	}
	if err == nil {
		m.state, err = register(reg, m.state)
	}
	if err == nil {
		m.parked, err = register(reg, m.parked)
	}
	if err != nil {
		return nil, fmt.Errorf("projections: metrics: %w", err)
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name (a second engine on the same registry shares the metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *metrics) setState(projector, state string) {
	for _, s := range allStates {
		v := 0.0
		if s == state {
			v = 1
		}
		m.state.WithLabelValues(projector, s).Set(v)
	}
}

// activeCheckpoints reads the checkpoints of the active generations.
func activeCheckpoints(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, names []string) (map[string]eventstore.Position, error) {
	rows, err := q.Query(ctx, `SELECT projector, checkpoint FROM projections.generations WHERE state = 'active' AND projector = ANY($1)`, names)
	if err != nil {
		return nil, err
	}
	out := map[string]eventstore.Position{}
	for rows.Next() {
		var name string
		var cp int64
		if err := rows.Scan(&name, &cp); err != nil {
			rows.Close()
			return nil, err
		}
		out[name] = eventstore.Position(cp)
	}
	return out, rows.Err()
}
