package projections

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// loadGenerations reads the active and the building generation and the
// rebuild requests already handled.
func (rt *runner) loadGenerations(ctx context.Context) (active, building *generation, handled int64, err error) {
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
func (rt *runner) createGeneration(ctx context.Context, state string) (*generation, error) {
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
func (rt *runner) forget(schema string) {
	if c, ok := rt.p.(Cache); ok {
		c.Forget(schema)
	}
}

// abandon marks a generation that will never serve as failed and drops
// its schema.
func (rt *runner) abandon(ctx context.Context, gen *generation, reason string) error {
	defer rt.forget(gen.Schema)
	return rt.lock.tx(ctx, "", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE projections.generations SET state = 'failed', retired_at = now(), updated_at = now() WHERE projector = $1 AND generation = $2`, rt.p.Name(), gen.Number); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE projections.projectors SET rebuild_error = $2 WHERE name = $1`, rt.p.Name(), reason); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM projections.parked WHERE projector = $1 AND generation = $2`, rt.p.Name(), gen.Number); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{gen.Schema}.Sanitize()+` CASCADE`)
		return err
	})
}
