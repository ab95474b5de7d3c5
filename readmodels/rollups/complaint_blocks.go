package rollups

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Complaint blocks. The complaint report's medians and breaches need every
// complaint of the period (an exact median is not a sum), so no day total
// can answer it; but it need not scan and sort the facts row by row
// either. complaint_blocks holds, per dimension, key and UTC day of
// filed_at, the facts of that day as parallel columns, each packed into
// one bytea, in complaint_id order (severity code, opened_at, first
// response and resolution instants in microseconds, both durations in
// seconds as the documented SQL computes them, resolved or not). A report reads one row per group and day and
// computes the figures in Go (package analytics): 90 days at 100,000
// customers are 90 rows per group instead of 59,000 facts.
//
// A block is a function of the facts filed on its day under its key, so
// it is recomputed, not edited: Apply recomputes the days whose facts the
// batch changed or re-keyed, under their old and new keys. Recomputing a
// day reads its facts, which is cheap for a live batch (its complaints are
// recent, a few days) and not for the start of a log laid out customer by
// customer, so blocks are built only once the projector has caught up:
// complaint_blocks_state.built is false until CreateIndexes (a rebuilt
// generation that caught up) or the first batch smaller than
// blockBuildBatch that changes complaints (a first generation, whose
// CreateIndexes ran before it had any fact) builds every block in one pass; from then on every batch
// maintains them. Until then (and whenever built is false) the report
// reads the same columns aggregated from the facts: the figures are the
// same either way, only their cost differs.

// blockBuildBatch is the batch size below which an unbuilt generation is
// taken to have caught up with the log and builds its blocks.
const blockBuildBatch = 64

// severityCodes numbers the severities as the blocks store them (0 for
// another, which no target names); package analytics reads them back.
const severityCodes = `coalesce(array_position(ARRAY['critical', 'high', 'medium', 'low']::text[], f.severity), 0)::smallint`

// BlockArrays aggregates the facts f (alias f) of a block, in complaint_id order,
// each column packed into a bytea of big-endian values (the send format
// of its type): severity codes as int2, instants as int8 microseconds
// (the minimum int8 for none), durations as float8 (NaN for none),
// resolved as one byte. Packed, a block reads back without pgx's
// per-element array decoding: with int8[]/float8[] arrays the 90-day
// report at 100,000 customers took 54 ms p50 of which the SQL was 9 ms;
// packed (and with the medians selected, not sorted) 12.5 ms. The two
// runs had other loads (6 and 1), so the split is not measured exactly.
var BlockArrays = `count(*)::int,
	string_agg(int2send(` + severityCodes + `), ''::bytea ORDER BY f.complaint_id),
	string_agg(int8send(` + micros("f.opened_at") + `), ''::bytea ORDER BY f.complaint_id),
	string_agg(int8send(coalesce(` + micros("f.first_response_at") + `, -9223372036854775808)), ''::bytea ORDER BY f.complaint_id),
	string_agg(int8send(coalesce(` + micros("f.resolved_at") + `, -9223372036854775808)), ''::bytea ORDER BY f.complaint_id),
	string_agg(float8send(coalesce(f.first_response_s, 'NaN')), ''::bytea ORDER BY f.complaint_id),
	string_agg(float8send(coalesce(f.resolution_s, 'NaN')), ''::bytea ORDER BY f.complaint_id),
	string_agg(boolsend(f.status = 'resolved'), ''::bytea ORDER BY f.complaint_id)`

// micros is a timestamptz in microseconds since 1970 (exact: extract
// gives a numeric).
func micros(ts string) string { return `(extract(epoch FROM ` + ts + `) * 1000000)::int8` }

const blockColumns = `dim, key, day, n, severity, opened_us, first_response_us, resolved_us, first_response_s, resolution_s, resolved`

func setupComplaintBlocks(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE complaint_blocks (
			dim               text      NOT NULL,
			key               text      NOT NULL,
			day               date      NOT NULL,
			n                 integer   NOT NULL,
			severity          bytea   NOT NULL,
			opened_us         bytea   NOT NULL,
			first_response_us bytea   NOT NULL,
			resolved_us       bytea   NOT NULL,
			first_response_s  bytea   NOT NULL,
			resolution_s      bytea   NOT NULL,
			resolved          bytea   NOT NULL,
			PRIMARY KEY (dim, key, day)
		);
		CREATE TABLE complaint_blocks_state (built boolean NOT NULL);
		INSERT INTO complaint_blocks_state VALUES (false);`)
	return err
}

// maintainBlocks keeps the blocks after a batch that changed the
// complaints of the customers changed (and re-keyed the customers in
// moved: their old keys by dimension), or builds them all when they are
// not built and the batch is a small one.
func maintainBlocks(ctx context.Context, tx pgx.Tx, batchLen int, changed []uuid.UUID, moved rekeyed) error {
	if len(changed) == 0 && len(moved.id) == 0 {
		// No block changes; an unbuilt generation builds them at the
		// next small batch that has complaints to recompute.
		return nil
	}
	var built bool
	if err := tx.QueryRow(ctx, `SELECT built FROM complaint_blocks_state`).Scan(&built); err != nil {
		return fmt.Errorf("rollups: complaint blocks: %w", err)
	}
	if !built {
		if batchLen >= blockBuildBatch {
			return nil
		}
		return buildBlocks(ctx, tx, true)
	}
	// The blocks to recompute: the days of the customers' facts under
	// their keys now, and under the old keys of the re-keyed.
	if _, err := tx.Exec(ctx, `
		WITH t AS (
			SELECT x.dim, x.key, (f.filed_at AT TIME ZONE 'UTC')::date AS day
			FROM complaint_facts f CROSS JOIN LATERAL (VALUES `+factDims+`) AS x(dim, key)
			WHERE f.customer_id = ANY($1)
			UNION
			SELECT m.dim, m.old, (f.filed_at AT TIME ZONE 'UTC')::date
			FROM unnest($2::uuid[], $3::text[], $4::text[]) AS m(id, dim, old) JOIN complaint_facts f ON f.customer_id = m.id),
		days AS (SELECT DISTINCT day FROM t),
		fresh AS (
			SELECT x.dim, x.key, d.day, `+BlockArrays+`
			FROM days d
			JOIN complaint_facts f ON f.filed_at >= d.day::timestamp AT TIME ZONE 'UTC'
				AND f.filed_at < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
			CROSS JOIN LATERAL (VALUES `+factDims+`) AS x(dim, key)
			WHERE (x.dim, x.key, d.day) IN (SELECT dim, key, day FROM t)
			GROUP BY 1, 2, 3),
		up AS (
			INSERT INTO complaint_blocks AS b (`+blockColumns+`) SELECT * FROM fresh
			ON CONFLICT (dim, key, day) DO UPDATE SET n = EXCLUDED.n, severity = EXCLUDED.severity, opened_us = EXCLUDED.opened_us,
				first_response_us = EXCLUDED.first_response_us, resolved_us = EXCLUDED.resolved_us,
				first_response_s = EXCLUDED.first_response_s, resolution_s = EXCLUDED.resolution_s, resolved = EXCLUDED.resolved)
		DELETE FROM complaint_blocks b USING t
		WHERE b.dim = t.dim AND b.key = t.key AND b.day = t.day
			AND NOT EXISTS (SELECT 1 FROM fresh WHERE fresh.dim = t.dim AND fresh.key = t.key AND fresh.day = t.day)`,
		changed, moved.id, moved.dim, moved.old); err != nil {
		return fmt.Errorf("rollups: recompute the complaint blocks of %d customers: %w", len(changed)+len(moved.id), err)
	}
	return nil
}

// buildBlocks builds every complaint block from the facts, once: when
// they are not built yet, and, unless empty is true, only when there are
// facts (a first generation's CreateIndexes runs before it has any, and
// leaves the building to the first small batch).
func buildBlocks(ctx context.Context, tx pgx.Tx, empty bool) error {
	tag, err := tx.Exec(ctx, `UPDATE complaint_blocks_state SET built = true
		WHERE NOT built AND ($1 OR EXISTS (SELECT 1 FROM complaint_facts))`, empty)
	if err != nil {
		return fmt.Errorf("rollups: complaint blocks: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO complaint_blocks (`+blockColumns+`)
		SELECT x.dim, x.key, (f.filed_at AT TIME ZONE 'UTC')::date, `+BlockArrays+`
		FROM complaint_facts f CROSS JOIN LATERAL (VALUES `+factDims+`) AS x(dim, key)
		GROUP BY 1, 2, 3`); err != nil {
		return fmt.Errorf("rollups: build the complaint blocks: %w", err)
	}
	return nil
}

// factDims are the (dim, key) pairs of a complaint fact f in every
// dimension, as everyDim gives them for a customer.
const factDims = `('all', 'all'), ('segment', f.segment), ('tier', f.tier), ('region', f.region), ('owner', coalesce(f.account_manager, ''))`

// rekeyed are the customers whose keys a batch changed, one entry per
// changed dimension with the old key.
type rekeyed struct {
	id       []uuid.UUID
	dim, old []string
}
