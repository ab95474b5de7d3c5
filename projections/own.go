package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ownOptions select how own runs.
type ownOptions struct {
	// rebuildOnce: rebuild (resuming a rebuild in progress, if any), switch
	// to the new generation and return, without following the log live.
	rebuildOnce bool
	progress    func(done, total int64)
}

// own runs the projector while this process holds its lock: the active
// generation's live worker, a rebuild when one is due, the switch-over.
func (rt *runner) own(ctx context.Context, opts ownOptions) error {
	rt.forget("")
	rt.setRole("active")
	defer rt.stopWorkers()
	handled, err := rt.startWorkers(ctx, opts)
	if err != nil {
		return err
	}
	return rt.supervise(ctx, opts, handled)
}

// stopWorkers stops the live worker and the builder (their batches in
// hand are committed) when own returns.
func (rt *runner) stopWorkers() {
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
}

// startWorkers reads the generations, settles what a previous owner left
// (a rebuild by another version, one a database restart emptied) and
// starts the live worker and, when one is due, the builder. It returns the
// rebuild requests already handled.
func (rt *runner) startWorkers(ctx context.Context, opts ownOptions) (handled int64, err error) {
	log := rt.e.cfg.Logger.With("projector", rt.p.Name())
	active, building, handled, err := rt.loadGenerations(ctx)
	if err != nil {
		return 0, err
	}
	if active == nil {
		if active, err = rt.createGeneration(ctx, "active"); err != nil {
			return 0, err
		}
		log.Info("projections: created the first generation", "generation", active.Number)
	}
	if building, err = rt.settleBuilding(ctx, building); err != nil {
		return 0, err
	}
	upgrade := active.Version != rt.p.Version()
	if !upgrade && !opts.rebuildOnce {
		if err := rt.startLive(ctx, *active); err != nil {
			return 0, err
		}
	} else if upgrade {
		// The active generation was built by other code: it keeps serving
		// as it is, frozen, rather than being fed by code that may not
		// match its tables, until the new generation replaces it.
		log.Info("projections: version changed; rebuilding", "active_version", active.Version, "version", rt.p.Version())
	}
	if building == nil && (upgrade || opts.rebuildOnce) {
		if building, err = rt.createGeneration(ctx, "building"); err != nil {
			return 0, err
		}
	}
	if building != nil {
		if err := rt.startBuilder(ctx, *building); err != nil {
			return 0, err
		}
	}
	return handled, nil
}

// settleBuilding drops a rebuild in progress that cannot be resumed: one
// made by another version (nil is returned), or one whose unlogged tables
// a database restart emptied (started again).
func (rt *runner) settleBuilding(ctx context.Context, building *generation) (*generation, error) {
	log := rt.e.cfg.Logger.With("projector", rt.p.Name())
	if building != nil && building.Version != rt.p.Version() {
		log.Info("projections: dropping a rebuild made by another version", "generation", building.Number, "version", building.Version)
		if err := rt.abandon(ctx, building, "superseded by version "+fmt.Sprint(rt.p.Version())); err != nil {
			return nil, err
		}
		return nil, nil
	}
	if building != nil && building.Lost {
		// The database server restarted since the rebuild began: its
		// unlogged tables were emptied. Start it again.
		log.Info("projections: restarting a rebuild interrupted by a database restart", "generation", building.Number)
		if err := rt.abandon(ctx, building, "database server restarted during the rebuild"); err != nil {
			return nil, err
		}
		return rt.createGeneration(ctx, "building")
	}
	return building, nil
}

// supervise waits on the workers, the rebuild requests and the lock until
// ctx ends, or until the rebuild of a rebuildOnce run has switched over.
func (rt *runner) supervise(ctx context.Context, opts ownOptions, handled int64) error {
	// Progress is reported often, from memory; the database is polled
	// (lock ping, rebuild requests, retries, state) every PollInterval
	// only: five polls a second for each of a dozen projectors rebuilt
	// together cost the rebuild's own statements their turn.
	poll := time.NewTicker(rt.e.cfg.PollInterval)
	defer poll.Stop()
	var progressTick <-chan time.Time
	if opts.progress != nil && rt.e.cfg.PollInterval > 200*time.Millisecond {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		progressTick = t.C
	}
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
		var (
			finished bool
			err      error
		)
		select {
		case <-ctx.Done():
			return nil
		case <-liveDone:
			if finished, err = rt.liveEnded(ctx, live); err == nil && !finished {
				stoppedLive = live
			}
		case <-builderDone:
			finished, err = rt.builderEnded(ctx, builder, opts)
		case <-builderCaughtUp:
			finished, err = rt.builderCaughtUp(ctx, builder, opts)
		case <-rt.kick:
			err = rt.maybeStartRebuild(ctx, &handled, true)
		case <-poll.C:
			err = rt.pollOwned(ctx, &handled)
		case <-progressTick:
		}
		if err != nil || finished {
			return err
		}
	}
}

// liveEnded handles the end of the live worker: finished when own must
// return (ctx ended), an error when the projector cannot go on here. A
// worker stopped on a poison event leaves the rest running.
func (rt *runner) liveEnded(ctx context.Context, live *worker) (finished bool, err error) {
	err = live.err()
	if ctx.Err() != nil {
		return true, nil
	}
	if errors.As(err, new(*PoisonError)) {
		// Stopped on a poison event: keep the lock (a standby would
		// only stop on the same event) and keep serving what was
		// committed, until a rebuild replaces the generation or
		// the process restarts.
		rt.stateChanged()
		return false, nil
	}
	return false, fmt.Errorf("projections: %s live worker ended: %w", rt.p.Name(), err)
}

// builderEnded handles a rebuild that stopped before switching over.
func (rt *runner) builderEnded(ctx context.Context, builder *worker, opts ownOptions) (finished bool, err error) {
	err = builder.err()
	if ctx.Err() != nil {
		return true, nil
	}
	rt.mu.Lock()
	rt.builder = nil
	rt.mu.Unlock()
	if errors.Is(err, errLockLost) || IsTransient(err) {
		return false, err
	}
	rt.e.cfg.Logger.Error("projections: rebuild failed", "projector", rt.p.Name(), "generation", builder.gen.Number, "err", err)
	_ = rt.abandon(ctx, &builder.gen, fmt.Sprint(err))
	rt.stateChanged()
	if opts.rebuildOnce {
		return false, fmt.Errorf("projections: rebuild of %s failed: %w", rt.p.Name(), err)
	}
	return false, nil
}

// builderCaughtUp switches over to a rebuilt generation that caught up.
func (rt *runner) builderCaughtUp(ctx context.Context, builder *worker, opts ownOptions) (finished bool, err error) {
	if err := rt.switchOver(ctx, builder); err != nil {
		if ctx.Err() != nil {
			return true, nil
		}
		return false, err
	}
	rt.mu.Lock()
	retry := rt.builder == builder
	rt.mu.Unlock()
	if retry {
		// The switch did not happen; the old generation serves on.
		sleepCtx(ctx, rt.e.cfg.PollInterval)
		return false, nil
	}
	if opts.rebuildOnce {
		if opts.progress != nil {
			_, done, _ := builder.progress()
			opts.progress(done, done)
		}
		return true, nil
	}
	return false, nil
}

// pollOwned checks the locking connection and looks for rebuild requests.
func (rt *runner) pollOwned(ctx context.Context, handled *int64) error {
	if err := rt.lock.ping(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := rt.maybeStartRebuild(ctx, handled, false); err != nil {
		return err
	}
	rt.retryQueued(ctx)
	rt.stateChanged()
	return nil
}

func (rt *runner) reportProgress(b *worker, progress func(done, total int64)) {
	_, done, _ := b.progress()
	total := b.gen.RebuildTotal
	if total < done {
		total = done
	}
	progress(done, total)
}

// maybeStartRebuild starts a rebuild when one was requested (through the
// table, or in process when force) and none is running.
func (rt *runner) maybeStartRebuild(ctx context.Context, handled *int64, force bool) error {
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

func (rt *runner) startLive(ctx context.Context, gen generation) error {
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
func (rt *runner) analyzeWhenCaughtUp(ctx context.Context, w *worker, schema string) {
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

func (rt *runner) startBuilder(ctx context.Context, gen generation) error {
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
