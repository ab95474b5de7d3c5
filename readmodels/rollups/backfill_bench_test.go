package rollups_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// backfillSchema is where BenchmarkScaleBackfill builds the rollups.
const backfillSchema = "rm_rollups_backfill"

// backfill fills the rollups' tables (created by the projector's own
// Setup) from the documented read models, with the definitions of
// package rollups: what the projector would hold after folding the log.
var backfill = []string{
	`INSERT INTO rollup_customers SELECT id, segment, tier, region, account_manager FROM readmodels.customers`,
	`INSERT INTO rollup_keys SELECT x.dim, x.key, count(*) FROM rollup_customers c
		CROSS JOIN LATERAL (VALUES ('all', 'all'), ('segment', c.segment), ('tier', c.tier), ('region', c.region),
			('owner', coalesce(c.account_manager, ''))) x(dim, key) GROUP BY 1, 2`,
	`INSERT INTO survey_facts SELECT s.customer_id, s.survey_id, s.answered_at, s.csat, s.nps,
			coalesce(c.segment, ''), coalesce(c.tier, ''), coalesce(c.region, ''), c.account_manager
		FROM readmodels.surveys s LEFT JOIN rollup_customers c ON c.id = s.customer_id`,
	`INSERT INTO survey_days SELECT x.dim, x.key, (f.answered_at AT TIME ZONE 'UTC')::date, count(*), count(f.csat),
			count(*) FILTER (WHERE f.csat >= 4), coalesce(sum(f.csat), 0), count(f.nps), count(*) FILTER (WHERE f.nps >= 9),
			count(*) FILTER (WHERE f.nps <= 6)
		FROM survey_facts f LEFT JOIN rollup_customers c ON c.id = f.customer_id
		CROSS JOIN LATERAL (VALUES ('all', 'all'), ('segment', coalesce(c.segment, '')), ('tier', coalesce(c.tier, '')),
			('region', coalesce(c.region, '')), ('owner', coalesce(c.account_manager, ''))) x(dim, key)
		GROUP BY 1, 2, 3`,
	`INSERT INTO spell_facts SELECT l.customer_id, l.spell, l.active_from, l.active_until,
			max(l.active_until) FILTER (WHERE l.active_until > l.active_from)
				OVER (PARTITION BY l.customer_id ORDER BY l.spell ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
			coalesce(c.segment, ''), coalesce(c.tier, ''), coalesce(c.region, ''), c.account_manager
		FROM readmodels.customer_lifecycle l LEFT JOIN rollup_customers c ON c.id = l.customer_id`,
	`INSERT INTO spell_days SELECT x.dim, x.key, ev.day, sum(ev.starts), sum(ev.ends)
		FROM spell_facts s LEFT JOIN rollup_customers c ON c.id = s.customer_id
		CROSS JOIN LATERAL (VALUES ((s.active_from AT TIME ZONE 'UTC')::date, 1, 0), ((s.active_until AT TIME ZONE 'UTC')::date, 0, 1)) ev(day, starts, ends)
		CROSS JOIN LATERAL (VALUES ('all', 'all'), ('segment', coalesce(c.segment, '')), ('tier', coalesce(c.tier, '')),
			('region', coalesce(c.region, '')), ('owner', coalesce(c.account_manager, ''))) x(dim, key)
		WHERE ev.day IS NOT NULL GROUP BY 1, 2, 3`,
	`INSERT INTO complaint_facts SELECT k.customer_id, k.complaint_id, k.severity, k.status, k.filed_at, k.opened_at, k.acknowledged_at,
			k.resolved_at, k.openings, k.escalations, coalesce(c.segment, ''), coalesce(c.tier, ''), coalesce(c.region, ''), c.account_manager
		FROM readmodels.complaints k LEFT JOIN rollup_customers c ON c.id = k.customer_id`,
}

// BenchmarkScaleBackfill is a measurement aid for BenchmarkScale when the
// rollups projector has not caught up on a seeded database (its rebuild
// over a million events on a busy machine can take longer than one
// wants to wait): it builds the rollups' tables in the schema
// rm_rollups_backfill from the documented read models and points the
// views readmodels.<table> at them, until the projector's own generation
// takes them over. BenchmarkScale then checks that the rollups answer
// exactly what the documented SQL does.
//
//	RAPPORT_SCALE_DATABASE_URL=postgres://…/db go test -run '^$' -bench ScaleBackfill -benchtime 1x ./readmodels/rollups/
func BenchmarkScaleBackfill(b *testing.B) {
	url := os.Getenv("RAPPORT_SCALE_DATABASE_URL")
	if url == "" {
		b.Skip("RAPPORT_SCALE_DATABASE_URL is not set")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	t0 := time.Now()
	tables := buildRollupsIn(b, pool, backfillSchema, func(ctx context.Context, tx pgx.Tx) error {
		for _, s := range backfill {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%w\n%s", err, s)
			}
		}
		return nil
	})
	b.Logf("backfilled %d tables in %v", len(tables), time.Since(t0))
}
