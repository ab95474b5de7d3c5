package reminders

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/cadence"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/sla"
)

// Config configures a Scheduler. Zero durations take the defaults.
type Config struct {
	Pool  *pgxpool.Pool
	Store eventstore.Store
	Codec *eventcodec.Codec
	// SLA and Cadence are the service's (the work queues' too).
	SLA     sla.Targets
	Cadence cadence.Cadence
	// WaitFor returns when the read models the scan reads (Reads) have
	// applied the log up to position, or fails when ctx ends first (the
	// projection engine's WaitForPosition).
	WaitFor func(ctx context.Context, position eventstore.Position, projectors ...string) error
	// Interval is the time between two scans. Default 5 s.
	Interval time.Duration
	// Overlap is how far before the high-water time a scan looks again:
	// the clocks of the processes that take turns may differ by that
	// much. Default 1 minute.
	Overlap time.Duration
	// Touched bounds the log events after the checkpoint one scan reads
	// for the customers they touch; beyond it the scan is full. Default
	// 10,000.
	Touched int
	// Sweep is how often a scan looks at every due set whole. Default 1 h.
	Sweep time.Duration
	// Backfill is how far back the first scan ever (the first start of a
	// service that had no scheduler) emits reminders whose time came
	// before it: those due earlier are never emitted, so that a database
	// with years of history does not flood its subscribers with reminders
	// of long ago. Default 24 h; negative: no limit.
	Backfill time.Duration
	// Batch bounds the reminders one query of a scan returns; a scan that
	// hit it does not move the high-water time, so the next goes on.
	// Default 500.
	Batch int
	// Now is the clock (default time.Now).
	Now        func() time.Time
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Interval == 0 {
		c.Interval = 5 * time.Second
	}
	if c.Overlap == 0 {
		c.Overlap = time.Minute
	}
	if c.Backfill == 0 {
		c.Backfill = 24 * time.Hour
	}
	if c.Touched == 0 {
		c.Touched = 10_000
	}
	if c.Sweep == 0 {
		c.Sweep = time.Hour
	}
	if c.Batch == 0 {
		c.Batch = 500
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SLA == nil {
		c.SLA = sla.Defaults()
	}
	c.Cadence.SetDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Pool == nil || c.Store == nil || c.Codec == nil || c.WaitFor == nil:
		return errors.New("reminders: Pool, Store, Codec and WaitFor are required")
	case c.Interval < 0 || c.Overlap < 0 || c.Sweep < 0 || c.Batch < 0 || c.Touched < 0:
		return errors.New("reminders: durations and the batch must not be negative")
	}
	return c.Cadence.Validate()
}

// Scheduler emits the reminders. Run it in every process that runs the
// projectors: one holds the lock and works, the others stand by.
type Scheduler struct {
	cfg     Config
	emitted *prometheus.CounterVec
	// scanned is the instant the last complete scan judged at: an alert
	// on its age sees a scheduler that stopped (or whose read models are
	// stuck behind the log).
	scanned prometheus.Gauge
}

// New returns a scheduler; Run starts it, Scan runs one scan.
func New(cfg Config) (*Scheduler, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Scheduler{cfg: cfg, emitted: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rapport_reminders_emitted_total",
		Help: "Reminders the scheduler appended to the log, by kind.",
	}, []string{"kind"}), scanned: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rapport_reminders_scanned_timestamp_seconds",
		Help: "The instant the reminder scheduler's last complete scan judged at (Unix seconds).",
	})}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.emitted, s.scanned} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("reminders: metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Reads names the projectors whose tables a scan reads.
func Reads() []string { return []string{"complaints", "contacts", "customers"} }

// lockNamespace keys the scheduler's session advisory lock (two-int form,
// like the projectors' and the deliverer's, with its own namespace).
const lockNamespace int32 = 0x52524d00 // "RRM\0"

// Run scans every Interval until ctx ends, while it holds the lock; when
// its locking connection dies it stops and waits for the lock again.
func (s *Scheduler) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		err := s.runLocked(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.cfg.Logger.Warn("reminders: scheduler stopped; waiting for the lock again", "err", err)
		}
		sleep(ctx, time.Second)
	}
	return nil
}

func (s *Scheduler) runLocked(ctx context.Context) error {
	conn, err := s.cfg.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext('reminders'))`, lockNamespace).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return nil // another process schedules
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, hashtext('reminders'))`, lockNamespace)
	}()
	s.cfg.Logger.Info("reminders: scheduling")
	for ctx.Err() == nil {
		if err := conn.Ping(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reminders: lock connection: %w", err)
		}
		res, err := s.Scan(ctx)
		switch {
		case errors.Is(err, readmodel.ErrNotReady) || errors.Is(err, projections.ErrNotCaughtUp):
			// The first start, before the projectors made their tables, or
			// read models behind the log: the next scan tries again.
			s.cfg.Logger.Debug("reminders: read models not ready", "err", err)
		case err != nil && ctx.Err() == nil:
			s.cfg.Logger.Warn("reminders: scan failed", "err", err)
		case res.Emitted > 0:
			s.cfg.Logger.Info("reminders: emitted", "reminders", res.Emitted, "full", res.Full)
		}
		if err == nil && !res.Complete {
			continue // a batch was full: go on at once
		}
		sleep(ctx, s.cfg.Interval)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Result says what one scan did.
type Result struct {
	// Found is how many due reminders the scan found not yet recorded;
	// Emitted how many appends of them the log accepted. (An append the
	// log recognises as a retry — the same event id, expecting no
	// stream — is accepted without writing; only one event per reminder
	// is ever in the log.)
	Found, Emitted int
	// Full: the scan looked at the due sets whole, not since the
	// high-water time.
	Full bool
	// Complete: no query hit the batch, so the high-water time moved to
	// the scan's instant.
	Complete bool
	// At is the instant judged at.
	At time.Time
	// Last is the log position of the last reminder appended (0 when
	// none), for a caller that waits for the feed to pass it.
	Last eventstore.Position
}

// Scan runs one scan at the clock's now: it waits for the read models to
// reach the log's head, finds the reminders due and not yet emitted,
// appends each and moves the high-water time. Two scans may run at once
// (in tests, or two processes during a failover): neither emits what the
// other did.
func (s *Scheduler) Scan(ctx context.Context) (Result, error) {
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	res := Result{At: now}
	head, err := s.cfg.Store.HeadPosition(ctx)
	if err != nil {
		return res, fmt.Errorf("reminders: log head: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, max(s.cfg.Interval, 10*time.Second))
	err = s.cfg.WaitFor(wctx, head, Reads()...)
	cancel()
	if err != nil {
		return res, fmt.Errorf("reminders: read models behind the log: %w", err)
	}
	var (
		scannedTo, sweptAt, floor time.Time
		position                  int64
		config                    string
		known                     = true
	)
	err = s.cfg.Pool.QueryRow(ctx, `SELECT scanned_to, position, swept_at, config, floor FROM rapport.reminder_scheduler`).Scan(&scannedTo, &position, &sweptAt, &config, &floor)
	if errors.Is(err, pgx.ErrNoRows) {
		known, err = false, nil
		floor = now.Add(-s.cfg.Backfill)
		if s.cfg.Backfill < 0 {
			floor = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
		}
	}
	if err != nil {
		return res, fmt.Errorf("reminders: checkpoint: %w", err)
	}
	judging := s.config()
	res.Full = !known || now.Sub(sweptAt) >= s.cfg.Sweep || config != judging
	floor = floor.UTC()
	sc := scope{floor: floor}
	if known {
		// The customers the log touched since the checkpoint, for a full
		// scan too: a full scan reads the open complaints, and a step done
		// late while no scan ran is found only through its customer.
		touched, all, err := s.touched(ctx, eventstore.Position(position), head)
		if err != nil {
			return res, err
		}
		if !all {
			res.Full = true
		} else {
			sc.customers = touched
		}
	}
	if !res.Full {
		t := scannedTo.Add(-s.cfg.Overlap)
		sc.since = &t
	}
	due, complete, err := s.due(ctx, sc, now)
	if err != nil {
		return res, err
	}
	res.Found, res.Complete = len(due), complete
	for _, r := range due {
		position, err := s.emit(ctx, r, now)
		if err != nil {
			return res, err
		}
		if position != nil {
			res.Emitted++
			res.Last = max(res.Last, *position)
		}
	}
	if !complete {
		return res, nil
	}
	swept := sweptAt
	if res.Full {
		swept = now
	}
	// GREATEST: a scan that ran with an earlier clock (another process's)
	// never moves the marks back.
	if _, err := s.cfg.Pool.Exec(ctx, `
		INSERT INTO rapport.reminder_scheduler (scanned_to, position, swept_at, config, floor) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET scanned_to = GREATEST(rapport.reminder_scheduler.scanned_to, EXCLUDED.scanned_to),
			position = GREATEST(rapport.reminder_scheduler.position, EXCLUDED.position),
			swept_at = GREATEST(rapport.reminder_scheduler.swept_at, EXCLUDED.swept_at), config = EXCLUDED.config`,
		now, int64(head), swept, judging, floor); err != nil {
		return res, fmt.Errorf("reminders: move the high-water time: %w", err)
	}
	s.scanned.Set(float64(now.UnixNano()) / 1e9)
	return res, nil
}

// config is what the scan judges with: a change of SLA targets or
// cadence can make reminders due in the past, so it makes a scan full.
func (s *Scheduler) config() string {
	return s.cfg.SLA.String() + ";" + s.cfg.Cadence.String()
}

// touched reads the log after the checkpoint up to head and returns the
// customers its events touched: a fact recorded late (a complaint filed
// hours after it was made, a reopening, a new tier) may be due already,
// before the high-water time, and only these customers can have such
// facts. all is false when there were more than Config.Touched events
// (then the scan is full instead).
func (s *Scheduler) touched(ctx context.Context, after, head eventstore.Position) (customers []uuid.UUID, all bool, err error) {
	seen := map[uuid.UUID]bool{}
	read := 0
	for after < head {
		page, err := s.cfg.Store.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Forwards, From: after, Limit: 1000})
		if err != nil {
			return nil, false, fmt.Errorf("reminders: read the log: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, rec := range page {
			if rec.Position > head {
				return customers, true, nil
			}
			after = rec.Position
			if read++; read > s.cfg.Touched {
				return nil, false, nil
			}
			if id, ok := domain.CustomerIDFromStream(rec.Stream); ok && !seen[id] {
				seen[id] = true
				customers = append(customers, id)
			}
		}
	}
	return customers, true, nil
}

// emit appends the reminder's event to its own stream, expecting none,
// and records it. position is nil when the stream held another event
// already (which the deterministic id makes impossible but for a retry
// the store does not recognise as one).
func (s *Scheduler) emit(ctx context.Context, r reminder, now time.Time) (position *eventstore.Position, err error) {
	id := domain.ReminderID(r.kind, r.subject, r.basis)
	stream := domain.ReminderStreamName(id)
	data, _, err := s.cfg.Codec.Encode(ctx, eventcodec.Batch{
		Stream: stream, FirstRevision: 0,
		Metadata: eventcodec.Metadata{
			// When it is stored (the hashed time auditors check against
			// the store's), not the instant it was judged at.
			CustomerID: r.customer, RecordedAt: time.Now().UTC(), Actor: "reminders",
			CorrelationID: id.String(), CausationID: id,
		},
		Events: []domain.Event{r.event}, IDs: []uuid.UUID{id},
	})
	if err != nil {
		return nil, fmt.Errorf("reminders: encode %s: %w", r.kind, err)
	}
	var stored *int64
	out, err := s.cfg.Store.Append(ctx, stream, eventstore.NoStream, data)
	var wrong *eventstore.WrongExpectedRevisionError
	switch {
	case errors.As(err, &wrong):
		// Emitted already: by another scheduler, or by this one before
		// its record was lost.
	case err != nil:
		return nil, fmt.Errorf("reminders: append %s: %w", stream, err)
	default:
		p := int64(out.Position)
		stored, position = &p, &out.Position
		s.emitted.WithLabelValues(r.kind).Inc()
	}
	if _, err := s.cfg.Pool.Exec(ctx, `
		INSERT INTO rapport.reminders (kind, subject_id, basis, id, customer_id, due_at, position, emitted_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
		r.kind, r.subject, r.basis, id, r.customer, r.due, stored, now); err != nil {
		return position, fmt.Errorf("reminders: record %s: %w", stream, err)
	}
	return position, nil
}
