package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// States of a projector, as Status reports them.
const (
	// StateRunning: the active generation follows the log live.
	StateRunning = "running"
	// StateCatchingUp: the active generation is reading the log's backlog.
	StateCatchingUp = "catching_up"
	// StateRebuilding: a new generation is being built while the active one
	// serves (Status.Rebuild has the progress).
	StateRebuilding = "rebuilding"
	// StateStandby: another process is active; this one takes over when
	// that one dies.
	StateStandby = "standby"
	// StateStopped: a permanent error stopped the projector; Status.Poison
	// says at which event.
	StateStopped = "stopped"
	// StateStarting: the lock was just taken.
	StateStarting = "starting"
	// StateIdle: no process runs the projector.
	StateIdle = "idle"
)

// Engine runs projectors: each as a handler on a Watermill router fed by a
// Subscriber, at most one process at a time per projector (a Postgres
// session advisory lock), rebuilt without downtime into a new generation
// when asked or when its Version changes.
type Engine struct {
	cfg      Config
	runtimes []*runtime
	byName   map[string]*runtime
	metrics  *metrics
	wmLogger watermill.LoggerAdapter
	commits  eventstore.Signal // wakes WaitForPosition after commits here
	// decoded shares decoded events between the projectors; nil when
	// disabled.
	decoded *lru.Cache[eventstore.Position, eventcodec.Decoded]
	runMu   sync.Mutex
	running bool
}

// New returns an engine for cfg. It does no I/O.
func New(cfg Config) (*Engine, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, byName: map[string]*runtime{}, metrics: m}
	e.wmLogger = newWatermillLogger(cfg.Logger)
	if cfg.DecodeCacheSize > 0 {
		if e.decoded, err = lru.New[eventstore.Position, eventcodec.Decoded](cfg.DecodeCacheSize); err != nil {
			return nil, err
		}
	}
	for _, p := range cfg.Projectors {
		rt := &runtime{e: e, p: p, handles: map[string]bool{}, kick: make(chan struct{}, 1)}
		for _, t := range p.Handles() {
			rt.handles[t] = true
		}
		rt.lock = newLockConn(e, p.Name())
		e.runtimes = append(e.runtimes, rt)
		e.byName[p.Name()] = rt
		m.setState(p.Name(), StateIdle)
	}
	return e, nil
}

// Run runs every projector until ctx ends: each one in this process if it
// can take the projector's lock, else standing by to take over. On return
// the batches in hand were committed and the locks released.
func (e *Engine) Run(ctx context.Context) error {
	e.runMu.Lock()
	if e.running {
		e.runMu.Unlock()
		return errors.New("projections: engine already running")
	}
	e.running = true
	e.runMu.Unlock()
	defer func() {
		e.runMu.Lock()
		e.running = false
		e.runMu.Unlock()
	}()

	var wg sync.WaitGroup
	for _, rt := range e.runtimes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt.run(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.metricsLoop(ctx)
	}()
	wg.Wait()
	return nil
}

func (e *Engine) runtime(name string) (*runtime, error) {
	rt, ok := e.byName[name]
	if !ok {
		return nil, fmt.Errorf("projections: unknown projector %q", name)
	}
	return rt, nil
}

// runtime is one projector in this process.
type runtime struct {
	e       *Engine
	p       Projector
	handles map[string]bool
	lock    *lockConn
	kick    chan struct{} // an in-process rebuild request

	mu      sync.Mutex
	role    string // "", "standby", "active"
	live    *worker
	builder *worker
}

// run takes the lock (standing by until it can) and runs the projector,
// again and again until ctx ends.
func (rt *runtime) run(ctx context.Context) {
	log := rt.e.cfg.Logger.With("projector", rt.p.Name())
	for ctx.Err() == nil {
		ok, err := rt.lock.tryLock(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("projections: could not try the projector lock", "err", err)
		}
		if !ok {
			rt.setRole(StateStandby)
			sleepCtx(ctx, rt.e.cfg.LockRetryInterval)
			continue
		}
		log.Info("projections: this process is now active for the projector")
		err = rt.own(ctx, ownOptions{})
		rt.setRole("")
		rt.lock.release(context.Background())
		if ctx.Err() != nil {
			break
		}
		log.Warn("projections: projector stopped here; standing by", "err", err)
		sleepCtx(ctx, rt.e.cfg.LockRetryInterval)
	}
	rt.setRole("")
	rt.e.metrics.setState(rt.p.Name(), StateIdle)
}

func (rt *runtime) setRole(role string) {
	rt.mu.Lock()
	changed := rt.role != role
	rt.role = role
	rt.mu.Unlock()
	if changed {
		rt.stateChanged()
	}
}

// localState is the state this process gives the projector, or "" when it
// neither runs it nor stands by.
func (rt *runtime) localState() string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	switch rt.role {
	case "":
		return ""
	case StateStandby:
		return StateStandby
	}
	if rt.live != nil {
		if rt.live.err() != nil && errors.As(rt.live.err(), new(*PoisonError)) {
			return StateStopped
		}
	}
	if rt.builder != nil {
		return StateRebuilding
	}
	if rt.live == nil {
		return StateStarting
	}
	if _, _, caughtUp := rt.live.progress(); !caughtUp {
		return StateCatchingUp
	}
	return StateRunning
}

// stateChanged updates the state metric and, for the active process, the
// state other processes read.
func (rt *runtime) stateChanged() {
	state := rt.localState()
	if state == "" {
		state = StateIdle
	}
	rt.e.metrics.setState(rt.p.Name(), state)
	rt.mu.Lock()
	active := rt.role != "" && rt.role != StateStandby
	rt.mu.Unlock()
	if active {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = rt.e.cfg.Pool.Exec(ctx, `UPDATE projections.projectors SET state = $2, owner = $3, updated_at = now() WHERE name = $1`,
			rt.p.Name(), state, rt.e.cfg.Instance)
	}
}

// ownOptions select how own runs.
type ownOptions struct {
	// rebuildOnce: rebuild (resuming a rebuild in progress, if any), switch
	// to the new generation and return, without following the log live.
	rebuildOnce bool
	progress    func(done, total int64)
}

// own runs the projector while this process holds its lock: the active
// generation's live worker, a rebuild when one is due, the switch-over.
func (rt *runtime) own(ctx context.Context, opts ownOptions) (err error) {
	name := rt.p.Name()
	log := rt.e.cfg.Logger.With("projector", name)
	rt.forget("")
	rt.setRole("active")
	defer func() {
		rt.mu.Lock()
		live, builder := rt.live, rt.builder
		rt.live, rt.builder = nil, nil
		rt.mu.Unlock()
		if live != nil {
			live.stop()
		}
		if builder != nil {
			builder.stop()
		}
		rt.stateChanged()
	}()

	active, building, handled, err := rt.loadGenerations(ctx)
	if err != nil {
		return err
	}
	if active == nil {
		if active, err = rt.createGeneration(ctx, "active"); err != nil {
			return err
		}
		log.Info("projections: created the first generation", "generation", active.Number)
	}
	if building != nil && building.Version != rt.p.Version() {
		log.Info("projections: dropping a rebuild made by another version", "generation", building.Number, "version", building.Version)
		if err := rt.abandon(ctx, building, "superseded by version "+fmt.Sprint(rt.p.Version())); err != nil {
			return err
		}
		building = nil
	}
	if building != nil && building.Lost {
		// The database server restarted since the rebuild began: its
		// unlogged tables were emptied. Start it again.
		log.Info("projections: restarting a rebuild interrupted by a database restart", "generation", building.Number)
		if err := rt.abandon(ctx, building, "database server restarted during the rebuild"); err != nil {
			return err
		}
		if building, err = rt.createGeneration(ctx, "building"); err != nil {
			return err
		}
	}
	upgrade := active.Version != rt.p.Version()
	if !upgrade && !opts.rebuildOnce {
		if err := rt.startLive(ctx, *active); err != nil {
			return err
		}
	} else if upgrade {
		// The active generation was built by other code: it keeps serving
		// as it is, frozen, rather than being fed by code that may not
		// match its tables, until the new generation replaces it.
		log.Info("projections: version changed; rebuilding", "active_version", active.Version, "version", rt.p.Version())
	}
	if building == nil && (upgrade || opts.rebuildOnce) {
		if building, err = rt.createGeneration(ctx, "building"); err != nil {
			return err
		}
	}
	if building != nil {
		if err := rt.startBuilder(ctx, *building); err != nil {
			return err
		}
	}

	interval := rt.e.cfg.PollInterval
	if opts.progress != nil {
		interval = min(interval, 200*time.Millisecond)
	}
	poll := time.NewTicker(interval)
	defer poll.Stop()
	var stoppedLive *worker // a live worker stopped on a poison event
	for {
		rt.mu.Lock()
		live, builder := rt.live, rt.builder
		rt.mu.Unlock()
		var liveDone, builderDone, builderCaughtUp <-chan struct{}
		if live != nil && live != stoppedLive {
			liveDone = live.done
		}
		if builder != nil {
			builderDone, builderCaughtUp = builder.done, builder.caughtUpCh
		}
		if opts.progress != nil && builder != nil {
			rt.reportProgress(builder, opts.progress)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-liveDone:
			err := live.err()
			if ctx.Err() != nil {
				return nil
			}
			if errors.As(err, new(*PoisonError)) {
				// Stopped on a poison event: keep the lock (a standby would
				// only stop on the same event) and keep serving what was
				// committed, until a rebuild replaces the generation or
				// the process restarts.
				stoppedLive = live
				rt.stateChanged()
				continue
			}
			return fmt.Errorf("projections: %s live worker ended: %w", name, err)
		case <-builderDone:
			err := builder.err()
			if ctx.Err() != nil {
				return nil
			}
			rt.mu.Lock()
			rt.builder = nil
			rt.mu.Unlock()
			if errors.Is(err, errLockLost) || IsTransient(err) {
				return err
			}
			log.Error("projections: rebuild failed", "generation", builder.gen.Number, "err", err)
			_ = rt.abandon(ctx, &builder.gen, fmt.Sprint(err))
			rt.stateChanged()
			if opts.rebuildOnce {
				return fmt.Errorf("projections: rebuild of %s failed: %w", name, err)
			}
		case <-builderCaughtUp:
			if err := rt.switchOver(ctx, builder); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			rt.mu.Lock()
			retry := rt.builder == builder
			rt.mu.Unlock()
			if retry {
				// The switch did not happen; the old generation serves on.
				sleepCtx(ctx, rt.e.cfg.PollInterval)
				continue
			}
			if opts.rebuildOnce {
				if opts.progress != nil {
					_, done, _ := builder.progress()
					opts.progress(done, done)
				}
				return nil
			}
		case <-rt.kick:
			if err := rt.maybeStartRebuild(ctx, &handled, true); err != nil {
				return err
			}
		case <-poll.C:
			if err := rt.lock.ping(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if err := rt.maybeStartRebuild(ctx, &handled, false); err != nil {
				return err
			}
			rt.stateChanged()
		}
	}
}

func (rt *runtime) reportProgress(b *worker, progress func(done, total int64)) {
	_, done, _ := b.progress()
	total := b.gen.RebuildTotal
	if total < done {
		total = done
	}
	progress(done, total)
}

// maybeStartRebuild starts a rebuild when one was requested (through the
// table, or in process when force) and none is running.
func (rt *runtime) maybeStartRebuild(ctx context.Context, handled *int64, force bool) error {
	var requested int64
	if err := rt.e.cfg.Pool.QueryRow(ctx, `SELECT rebuild_requested FROM projections.projectors WHERE name = $1`, rt.p.Name()).Scan(&requested); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		rt.e.cfg.Logger.Warn("projections: could not read rebuild requests", "projector", rt.p.Name(), "err", err)
		return nil
	}
	if requested <= *handled && !force {
		return nil
	}
	rt.mu.Lock()
	busy := rt.builder != nil
	rt.mu.Unlock()
	if !busy {
		gen, err := rt.createGeneration(ctx, "building")
		if err != nil {
			return err
		}
		if err := rt.startBuilder(ctx, *gen); err != nil {
			return err
		}
	}
	*handled = requested
	_, err := rt.e.cfg.Pool.Exec(ctx, `UPDATE projections.projectors SET rebuild_handled = greatest(rebuild_handled, $2), rebuild_error = NULL WHERE name = $1`, rt.p.Name(), requested)
	return err
}

func (rt *runtime) startLive(ctx context.Context, gen generation) error {
	w := newWorker(rt, gen, true)
	if err := w.start(ctx); err != nil {
		return err
	}
	rt.mu.Lock()
	rt.live = w
	rt.mu.Unlock()
	rt.e.metrics.checkpoint.WithLabelValues(rt.p.Name()).Set(float64(gen.Checkpoint))
	rt.stateChanged()
	go rt.analyzeWhenCaughtUp(ctx, w, gen.Schema)
	return nil
}

// analyzeWhenCaughtUp refreshes the planner's statistics of a generation
// once its live worker has caught up. A first generation's tables were
// analysed empty, and a catch-up may have filled them since; the
// database's autovacuum would get there eventually, if it runs at all,
// but queries need the plans for the real sizes now.
func (rt *runtime) analyzeWhenCaughtUp(ctx context.Context, w *worker, schema string) {
	select {
	case <-w.caughtUpCh:
	case <-w.done:
		return
	case <-ctx.Done():
		return
	}
	tables, err := func() ([]string, error) {
		tx, err := rt.e.cfg.Pool.Begin(ctx)
		if err != nil {
			return nil, err
		}
		defer tx.Rollback(ctx)
		return schemaTables(ctx, tx, schema)
	}()
	for _, t := range tables {
		if err == nil {
			_, err = rt.e.cfg.Pool.Exec(ctx, `ANALYZE `+pgx.Identifier{schema, t}.Sanitize())
		}
	}
	if err != nil && ctx.Err() == nil {
		rt.e.cfg.Logger.Warn("projections: could not analyze the tables of a caught-up generation", "projector", rt.p.Name(), "schema", schema, "err", err)
	}
}

func (rt *runtime) startBuilder(ctx context.Context, gen generation) error {
	rt.e.cfg.Logger.Info("projections: rebuilding", "projector", rt.p.Name(), "generation", gen.Number, "from", uint64(gen.Checkpoint), "events", gen.RebuildTotal)
	w := newWorker(rt, gen, false)
	if err := w.start(ctx); err != nil {
		return err
	}
	rt.mu.Lock()
	rt.builder = w
	rt.mu.Unlock()
	rt.stateChanged()
	return nil
}

// switchOver makes the rebuilt generation the active one: stop the live
// worker (its last batch is committed), let the new generation reach at
// least the old one's checkpoint, then in one transaction point the views
// at it and mark it active; finally drop the old generation's schema.
// Readers see the old generation until the commit and the new one, at
// least as far along, after it.
func (rt *runtime) switchOver(ctx context.Context, b *worker) error {
	name := rt.p.Name()
	// Indexes are built and the tables made logged (written to the WAL
	// once, as a whole) before the live worker stops, so that the old
	// generation stays fresh meanwhile; the builder goes on after this.
	if err := rt.lock.tx(ctx, b.gen.Schema, func(tx pgx.Tx) error {
		if indexer, ok := rt.p.(Indexer); ok {
			if err := indexer.CreateIndexes(withGeneration(ctx, b.gen.Schema), tx); err != nil {
				return fmt.Errorf("projections: indexes of %s: %w", name, err)
			}
		}
		tables, err := schemaTables(ctx, tx, b.gen.Schema)
		if err != nil {
			return err
		}
		for _, t := range tables {
			if _, err := tx.Exec(ctx, `ALTER TABLE `+pgx.Identifier{b.gen.Schema, t}.Sanitize()+` SET LOGGED`); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	rt.mu.Lock()
	live := rt.live
	rt.mu.Unlock()
	if live != nil {
		live.stop()
	}
	var old generation
	err := rt.lock.tx(ctx, "", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT generation, schema_name, checkpoint FROM projections.generations WHERE projector = $1 AND state = 'active'`, name).
			Scan(&old.Number, &old.Schema, &old.Checkpoint)
	})
	if err != nil {
		return rt.resumeLive(ctx, live, err)
	}
	// The new generation follows the log live; it passes the old
	// checkpoint with the next event or store checkpoint.
	for {
		pos, _, _ := b.progress()
		if pos >= old.Checkpoint {
			break
		}
		select {
		case <-ctx.Done():
			return rt.resumeLive(ctx, live, ctx.Err())
		case <-b.done:
			return rt.resumeLive(ctx, live, fmt.Errorf("projections: rebuild of %s stopped before the switch: %w", name, b.err()))
		case <-b.progressed:
		case <-time.After(50 * time.Millisecond):
		}
	}
	err = rt.lock.tx(ctx, "", func(tx pgx.Tx) error {
		var cp int64
		if err := tx.QueryRow(ctx, `SELECT checkpoint FROM projections.generations WHERE projector = $1 AND generation = $2 AND state = 'building' FOR UPDATE`, name, b.gen.Number).Scan(&cp); err != nil {
			return err
		}
		if eventstore.Position(cp) < old.Checkpoint {
			return fmt.Errorf("projections: generation %d of %s is at %d, behind the active one at %d", b.gen.Number, name, cp, old.Checkpoint)
		}
		if _, err := tx.Exec(ctx, `UPDATE projections.generations SET state = 'retired', retired_at = now(), updated_at = now() WHERE projector = $1 AND generation = $2`, name, old.Number); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE projections.generations SET state = 'active', activated_at = now(), updated_at = now() WHERE projector = $1 AND generation = $2`, name, b.gen.Number); err != nil {
			return err
		}
		return switchViews(ctx, tx, old.Schema, b.gen.Schema)
	})
	if err != nil {
		return rt.resumeLive(ctx, live, err)
	}
	b.setActive()
	pos, _, _ := b.progress()
	rt.e.metrics.checkpoint.WithLabelValues(name).Set(float64(pos))
	rt.e.commits.Broadcast()
	rt.mu.Lock()
	rt.live, rt.builder = b, nil
	rt.mu.Unlock()
	rt.stateChanged()
	rt.e.cfg.Logger.Info("projections: switched to the rebuilt generation", "projector", name, "generation", b.gen.Number, "retired", old.Number)
	rt.forget(old.Schema)
	if err := rt.lock.tx(ctx, "", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{old.Schema}.Sanitize()+` CASCADE`)
		return err
	}); err != nil {
		rt.e.cfg.Logger.Warn("projections: could not drop a retired generation; it is dropped at the next rebuild", "schema", old.Schema, "err", err)
	}
	return nil
}

// resumeLive restarts the live worker that switchOver stopped, when the
// switch could not happen.
func (rt *runtime) resumeLive(ctx context.Context, stopped *worker, cause error) error {
	if stopped == nil || ctx.Err() != nil || errors.Is(cause, errLockLost) {
		return cause
	}
	if errors.As(stopped.err(), new(*PoisonError)) {
		return nil
	}
	rt.e.cfg.Logger.Warn("projections: switch to the rebuilt generation failed; the active one goes on", "projector", rt.p.Name(), "err", cause)
	gen := stopped.gen
	gen.Checkpoint = stopped.checkpoint()
	return rt.startLive(ctx, gen)
}

// switchViews points readmodels.<table> at the tables of schema newSchema,
// and drops the views of tables the old generation had and the new one
// has not. A view is replaced in place when its columns allow it, so that
// analysts' own views on top of it survive.
func switchViews(ctx context.Context, tx pgx.Tx, oldSchema, newSchema string) error {
	tables, err := schemaTables(ctx, tx, newSchema)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, t := range tables {
		keep[t] = true
		view := pgx.Identifier{"readmodels", t}.Sanitize()
		def := ` AS SELECT * FROM ` + pgx.Identifier{newSchema, t}.Sanitize()
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := sp.Exec(ctx, `CREATE OR REPLACE VIEW `+view+def); err == nil {
			if err := sp.Commit(ctx); err != nil {
				return err
			}
			continue
		}
		if err := sp.Rollback(ctx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DROP VIEW IF EXISTS `+view); err != nil {
			return fmt.Errorf("projections: replace view %s: %w", view, err)
		}
		if _, err := tx.Exec(ctx, `CREATE VIEW `+view+def); err != nil {
			return fmt.Errorf("projections: create view %s: %w", view, err)
		}
	}
	if oldSchema != "" {
		old, err := schemaTables(ctx, tx, oldSchema)
		if err != nil {
			return err
		}
		for _, t := range old {
			if !keep[t] {
				if _, err := tx.Exec(ctx, `DROP VIEW IF EXISTS `+pgx.Identifier{"readmodels", t}.Sanitize()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func schemaTables(ctx context.Context, tx pgx.Tx, schema string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`, schema)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// loadGenerations reads the active and the building generation and the
// rebuild requests already handled.
func (rt *runtime) loadGenerations(ctx context.Context) (active, building *generation, handled int64, err error) {
	name := rt.p.Name()
	err = rt.lock.tx(ctx, "", func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT rebuild_handled FROM projections.projectors WHERE name = $1`, name).Scan(&handled); err != nil {
			return err
		}
		// A poisoned generation is tried again by the new lock holder: the
		// code may have been fixed.
		if _, err := tx.Exec(ctx, `UPDATE projections.generations SET stopped_at = NULL WHERE projector = $1 AND state IN ('active', 'building') AND stopped_at IS NOT NULL`, name); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT generation, version, schema_name, state, checkpoint, events_applied, coalesce(rebuild_total, 0),
				state = 'building' AND build_server_start IS DISTINCT FROM pg_postmaster_start_time()
			FROM projections.generations WHERE projector = $1 AND state IN ('active', 'building')`, name)
		if err != nil {
			return err
		}
		gens, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (generation, error) {
			var g generation
			var cp int64
			err := row.Scan(&g.Number, &g.Version, &g.Schema, &g.State, &cp, &g.EventsApplied, &g.RebuildTotal, &g.Lost)
			g.Checkpoint = eventstore.Position(cp)
			return g, err
		})
		if err != nil {
			return err
		}
		for i := range gens {
			if gens[i].State == "active" {
				active = &gens[i]
			} else {
				building = &gens[i]
			}
		}
		return nil
	})
	return active, building, handled, err
}

// createGeneration makes the next generation of the projector: its row,
// its schema and (through Setup) its tables. The first generation is
// active at once (there is nothing else to serve); later ones are built
// first.
func (rt *runtime) createGeneration(ctx context.Context, state string) (*generation, error) {
	name := rt.p.Name()
	var total int64
	if state == "building" {
		total = rt.e.countEvents(ctx, eventstore.Start)
	}
	var gen generation
	err := rt.lock.tx(ctx, "", func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(generation), 0) + 1 FROM projections.generations WHERE projector = $1`, name).Scan(&gen.Number); err != nil {
			return err
		}
		gen.Version, gen.Schema, gen.State, gen.RebuildTotal = rt.p.Version(), schemaName(name, gen.Number), state, total
		if _, err := tx.Exec(ctx, `INSERT INTO projections.generations (projector, generation, version, schema_name, state, rebuild_total, activated_at)
			VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $5 = 'active' THEN now() END)`,
			name, gen.Number, gen.Version, gen.Schema, state, total); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{gen.Schema}.Sanitize()+` CASCADE`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{gen.Schema}.Sanitize()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+pgx.Identifier{gen.Schema}.Sanitize()); err != nil {
			return err
		}
		if err := rt.p.Setup(withGeneration(ctx, gen.Schema), tx); err != nil {
			return fmt.Errorf("projections: setup of %s: %w", name, err)
		}
		if state == "building" {
			// No WAL while the generation is filled; switchOver makes the
			// tables logged before they serve.
			tables, err := schemaTables(ctx, tx, gen.Schema)
			if err != nil {
				return err
			}
			for _, t := range tables {
				if _, err := tx.Exec(ctx, `ALTER TABLE `+pgx.Identifier{gen.Schema, t}.Sanitize()+` SET UNLOGGED`); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, `UPDATE projections.generations SET build_server_start = pg_postmaster_start_time() WHERE projector = $1 AND generation = $2`, name, gen.Number); err != nil {
				return err
			}
		}
		if state == "active" {
			if indexer, ok := rt.p.(Indexer); ok {
				if err := indexer.CreateIndexes(withGeneration(ctx, gen.Schema), tx); err != nil {
					return fmt.Errorf("projections: indexes of %s: %w", name, err)
				}
			}
		}
		if _, err := tx.Exec(ctx, `SET LOCAL search_path TO DEFAULT`); err != nil {
			return err
		}
		if state == "active" {
			return switchViews(ctx, tx, "", gen.Schema)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("projections: create generation of %s: %w", name, err)
	}
	return &gen, nil
}

// forget tells a caching projector to drop what it remembers.
func (rt *runtime) forget(schema string) {
	if c, ok := rt.p.(Cache); ok {
		c.Forget(schema)
	}
}

// abandon marks a generation that will never serve as failed and drops
// its schema.
func (rt *runtime) abandon(ctx context.Context, gen *generation, reason string) error {
	defer rt.forget(gen.Schema)
	return rt.lock.tx(ctx, "", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE projections.generations SET state = 'failed', retired_at = now(), updated_at = now() WHERE projector = $1 AND generation = $2`, rt.p.Name(), gen.Number); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE projections.projectors SET rebuild_error = $2 WHERE name = $1`, rt.p.Name(), reason); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{gen.Schema}.Sanitize()+` CASCADE`)
		return err
	})
}

// decode decodes a batch in parallel. On failure it returns the events
// decoded before the first one that failed, that one's index and its error.
// decodeOne decodes an event, or takes it from the events decoded for
// another projector. Decoded events are shared read-only.
func (e *Engine) decodeOne(ctx context.Context, rec eventstore.RecordedEvent) (eventcodec.Decoded, error) {
	if e.decoded != nil {
		if d, ok := e.decoded.Get(rec.Position); ok && d.Record.ID == rec.ID {
			return d, nil
		}
	}
	d, err := e.cfg.Codec.Decode(ctx, rec)
	if err == nil && e.decoded != nil {
		e.decoded.Add(rec.Position, d)
	}
	return d, err
}

func (e *Engine) decode(ctx context.Context, recs []eventstore.RecordedEvent) ([]eventcodec.Decoded, int, error) {
	out := make([]eventcodec.Decoded, len(recs))
	errs := make([]error, len(recs))
	workers := min(e.cfg.DecodeWorkers, (len(recs)+31)/32)
	if workers <= 1 {
		for i, rec := range recs {
			d, err := e.decodeOne(ctx, rec)
			if err != nil {
				return out[:i], i, fmt.Errorf("projections: decode %s@%d (position %d): %w", rec.Stream, rec.Revision, rec.Position, err)
			}
			out[i] = d
		}
		return out, 0, nil
	}
	var wg sync.WaitGroup
	chunk := (len(recs) + workers - 1) / workers
	for lo := 0; lo < len(recs); lo += chunk {
		hi := min(lo+chunk, len(recs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				out[i], errs[i] = e.decodeOne(ctx, recs[i])
				if errs[i] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			rec := recs[i]
			return out[:i], i, fmt.Errorf("projections: decode %s@%d (position %d): %w", rec.Stream, rec.Revision, rec.Position, err)
		}
	}
	return out, 0, nil
}
