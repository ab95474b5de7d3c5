package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequestRebuild asks the process that runs the projector to rebuild it,
// and returns at once (POST /v1/projections/{name}/rebuild). The request is
// a row in projections.projectors: if no process runs the projector now,
// the next one to take it over rebuilds it. A rebuild already under way
// satisfies the request.
func (e *Engine) RequestRebuild(ctx context.Context, name string) error {
	rt, err := e.runner(name)
	if err != nil {
		return err
	}
	if _, err := e.cfg.Pool.Exec(ctx, `INSERT INTO projections.projectors AS p (name, rebuild_requested) VALUES ($1, 1)
		ON CONFLICT (name) DO UPDATE SET rebuild_requested = p.rebuild_requested + 1, updated_at = now()`, name); err != nil {
		return fmt.Errorf("projections: request rebuild of %s: %w", name, err)
	}
	select {
	case rt.kick <- struct{}{}: // wakes this process if it runs the projector
	default:
	}
	return nil
}

// Rebuild rebuilds a projector and returns when the new generation serves
// readers, calling progress (which may be nil) with the events gone
// through and the events to go through (the second grows while the log
// does). If a process runs the projector, it is asked to rebuild (as by
// RequestRebuild) and Rebuild follows its progress; if none does, Rebuild
// takes the projector's lock and does the work here (the CLI's case).
func (e *Engine) Rebuild(ctx context.Context, name string, progress func(done, total int64)) error {
	rt, err := e.runner(name)
	if err != nil {
		return err
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}
	e.runMu.Lock()
	running := e.running
	e.runMu.Unlock()

	var start int
	// A generation after start answers the request: a new one, or the one
	// a rebuild already under way is building.
	if err := e.cfg.Pool.QueryRow(ctx, `SELECT coalesce(max(generation), 0) FROM projections.generations WHERE projector = $1 AND state <> 'building'`, name).Scan(&start); err != nil {
		return fmt.Errorf("projections: rebuild %s: %w", name, err)
	}
	if !running {
		if done, err := rt.rebuildHere(ctx, progress); done || err != nil {
			return err
		}
	}
	if err := e.RequestRebuild(ctx, name); err != nil {
		return err
	}
	for {
		var (
			gen, state       = 0, ""
			applied, total   int64
			rebuildErr       *string
			haveGen, lockSet bool
		)
		err := e.cfg.Pool.QueryRow(ctx, `SELECT g.generation, g.state, g.events_applied, coalesce(g.rebuild_total, 0), p.rebuild_error
			FROM projections.generations g JOIN projections.projectors p ON p.name = g.projector
			WHERE g.projector = $1 AND g.generation > $2 ORDER BY g.generation DESC LIMIT 1`, name, start).
			Scan(&gen, &state, &applied, &total, &rebuildErr)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("projections: rebuild %s: %w", name, err)
		default:
			haveGen = true
		}
		if haveGen {
			switch state {
			case "active", "retired":
				progress(applied, applied)
				return nil
			case "failed":
				return fmt.Errorf("projections: rebuild of %s failed: %s", name, deref(rebuildErr))
			}
			progress(applied, max(total, applied))
		}
		if !running {
			// Nobody may be left to do it: take over if the lock is free.
			if err := e.cfg.Pool.QueryRow(ctx, lockHeldQuery(), lockNamespace, name).Scan(&lockSet); err == nil && !lockSet {
				if done, err := rt.rebuildHere(ctx, progress); done || err != nil {
					return err
				}
			}
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// rebuildHere takes the lock and rebuilds in this process; done is false
// when another process holds the lock.
func (rt *runner) rebuildHere(ctx context.Context, progress func(done, total int64)) (done bool, err error) {
	ok, err := rt.lock.tryLock(ctx)
	if err != nil || !ok {
		return false, err
	}
	defer rt.lock.release(context.Background())
	defer rt.setRole("")
	return true, rt.own(ctx, ownOptions{rebuildOnce: true, progress: progress})
}
