package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// switchOver makes the rebuilt generation the active one: stop the live
// worker (its last batch is committed), let the new generation reach at
// least the old one's checkpoint, then in one transaction point the views
// at it and mark it active; finally drop the old generation's schema.
// Readers see the old generation until the commit and the new one, at
// least as far along, after it.
func (rt *runner) switchOver(ctx context.Context, b *worker) error {
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
		// The retired generation's parked streams go with it; the new one
		// has its own.
		if _, err := tx.Exec(ctx, `DELETE FROM projections.parked WHERE projector = $1 AND generation = $2`, name, old.Number); err != nil {
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
	rt.e.refreshParkedMetric(ctx, rt)
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
func (rt *runner) resumeLive(ctx context.Context, stopped *worker, cause error) error {
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
