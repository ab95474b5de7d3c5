package rollups_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/readmodels/rollups"
)

// buildRollupsIn is what the scale aids share: in one transaction it
// creates the rollups' tables in schema (dropped first) with the
// projector's own Setup, lets fill write them (search_path is the schema;
// readmodels.<table> still names what readers see), creates the
// projector's indexes (which build the complaint blocks from the facts)
// and points the views readmodels.<table> at the new tables. It returns
// the tables.
func buildRollupsIn(b *testing.B, pool *pgxpool.Pool, schema string, fill func(ctx context.Context, tx pgx.Tx) error) []string {
	b.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	quoted := pgx.Identifier{schema}.Sanitize()
	for _, s := range []string{`DROP SCHEMA IF EXISTS ` + quoted + ` CASCADE`, `CREATE SCHEMA ` + quoted, `SET LOCAL search_path = ` + quoted} {
		if _, err := tx.Exec(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	p := rollups.NewProjector()
	if err := p.Setup(ctx, tx); err != nil {
		b.Fatal(err)
	}
	if err := fill(ctx, tx); err != nil {
		b.Fatal(err)
	}
	if err := p.CreateIndexes(ctx, tx); err != nil {
		b.Fatal(err)
	}
	rows, err := tx.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = $1`, schema)
	if err != nil {
		b.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range tables {
		view, table := pgx.Identifier{"readmodels", t}.Sanitize(), pgx.Identifier{schema, t}.Sanitize()
		// Dropped, not replaced: the view of an older generation may
		// have other columns.
		if _, err := tx.Exec(ctx, `DROP VIEW IF EXISTS `+view); err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `CREATE VIEW `+view+` AS SELECT * FROM `+table); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	return tables
}
