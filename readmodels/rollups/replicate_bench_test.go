package rollups_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// replicateSchema is where BenchmarkScaleReplicate builds the rollups.
const replicateSchema = "rm_rollups_replicated"

// replicate copies each customer's rollup rows factor−1 times under new
// ids ({k} is the copy, 1 … factor−1; every id a customer owns is mapped,
// so the copies are other customers, complaints, surveys and contacts
// with the same keys and times). A day sum of the copies is factor times
// the original's, since every copy has its original's keys and days; the
// complaint blocks are rebuilt from the copied facts by CreateIndexes.
var replicate = []string{
	`INSERT INTO rollup_customers SELECT {id}, segment, tier, region, account_manager FROM readmodels.rollup_customers`,
	`INSERT INTO survey_facts SELECT {customer}, {survey_id}, answered_at, csat, nps, segment, tier, region, account_manager FROM readmodels.survey_facts`,
	`INSERT INTO spell_facts SELECT {customer}, spell, active_from, active_until, prev_until, segment, tier, region, account_manager
		FROM readmodels.spell_facts`,
	`INSERT INTO complaint_facts (customer_id, complaint_id, severity, status, filed_at, opened_at, acknowledged_at, resolved_at,
			openings, escalations, segment, tier, region, account_manager)
		SELECT {customer}, {complaint_id}, severity, status, filed_at, opened_at, acknowledged_at, resolved_at,
			openings, escalations, segment, tier, region, account_manager FROM readmodels.complaint_facts`,
	`INSERT INTO contact_facts SELECT {customer}, {contact_id}, occurred_at, outbound FROM readmodels.contact_facts`,
	`INSERT INTO contact_spans SELECT {customer}, kind, start_at, end_at, segment, tier, region, account_manager FROM readmodels.contact_spans`,
	`INSERT INTO contact_bursts SELECT {customer}, start_at, end_at, segment, tier, region, account_manager FROM readmodels.contact_bursts`,
	`INSERT INTO followup_facts SELECT {customer}, {follow_up_id}, scheduled_at, due_at, done_at, segment, tier, region, account_manager FROM readmodels.followup_facts`,
}

// multiplied are the day sums and counts, each column times the factor.
var multiplied = map[string][]string{
	"rollup_keys":  {"dim", "key", "customers"},
	"survey_days":  {"dim", "key", "day", "responses", "csat_n", "csat_top", "csat_sum", "nps_n", "promoters", "detractors"},
	"spell_days":   {"dim", "key", "day", "starts", "ends"},
	"contact_days": {"dim", "key", "day", "cover_starts", "cover_ends", "fresh_starts", "fresh_ends", "due", "settled"},
}

// BenchmarkScaleReplicate is a measurement aid for BenchmarkScale at a
// scale no seed reaches in a session (1M customers would take `rapport
// seed` over an hour and the rollups' rebuild another): on a database
// seeded and projected at 100k customers, it builds the rollups' tables in
// the schema rm_rollups_replicated as RAPPORT_REPLICATE_FACTOR (default 10)
// copies of the rollups' own, and points the views readmodels.<table> at
// them. The figures are then those of a population factor times as large
// with the same distribution of keys and times; the documented SQL, which
// reads the other read models, no longer answers the same, so run
// BenchmarkScale with RAPPORT_SCALE_ROLLUPS_ONLY=1. Use a copy of the
// database: a rebuild of the rollups takes the views back.
//
//	createdb -T seeded copy
//	RAPPORT_SCALE_DATABASE_URL=postgres://…/copy go test -run '^$' -bench ScaleReplicate -benchtime 1x -timeout 60m ./readmodels/rollups/
func BenchmarkScaleReplicate(b *testing.B) {
	url := os.Getenv("RAPPORT_SCALE_DATABASE_URL")
	if url == "" {
		b.Skip("RAPPORT_SCALE_DATABASE_URL is not set")
	}
	factor := 10
	if s := os.Getenv("RAPPORT_REPLICATE_FACTOR"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 {
			b.Fatalf("RAPPORT_REPLICATE_FACTOR=%q: want a number of at least 2", s)
		}
		factor = n
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	t0 := time.Now()
	tables := buildRollupsIn(b, pool, replicateSchema, func(ctx context.Context, tx pgx.Tx) error {
		// Copy 0 is the original itself.
		ids := func(k int) *strings.Replacer {
			mapped := func(col string) string {
				if k == 0 {
					return col
				}
				return fmt.Sprintf(`md5('%d:' || %s::text)::uuid`, k, col)
			}
			return strings.NewReplacer("{id}", mapped("id"), "{customer}", mapped("customer_id"),
				"{survey_id}", mapped("survey_id"), "{complaint_id}", mapped("complaint_id"),
				"{contact_id}", mapped("contact_id"), "{follow_up_id}", mapped("follow_up_id"))
		}
		for k := range factor {
			for _, s := range replicate {
				s = ids(k).Replace(s)
				if _, err := tx.Exec(ctx, s); err != nil {
					return fmt.Errorf("%w\n%s", err, s)
				}
			}
		}
		for table, cols := range multiplied {
			sel := make([]string, len(cols))
			for i, c := range cols {
				sel[i] = c
				if i >= 2 && c != "day" {
					sel[i] = fmt.Sprintf("%s * %d", c, factor)
				}
			}
			s := `INSERT INTO ` + table + ` SELECT ` + strings.Join(sel, ", ") + ` FROM readmodels.` + table
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%w\n%s", err, s)
			}
		}
		return nil
	})
	for _, t := range tables {
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+pgx.Identifier{replicateSchema, t}.Sanitize()); err != nil {
			b.Fatal(err)
		}
	}
	var customers, complaints, surveys int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM readmodels.rollup_customers), (SELECT count(*) FROM readmodels.complaint_facts),
		(SELECT count(*) FROM readmodels.survey_facts)`).Scan(&customers, &complaints, &surveys); err != nil {
		b.Fatal(err)
	}
	b.Logf("replicated %d tables ×%d in %v: %d customers, %d complaints, %d surveys", len(tables), factor, time.Since(t0), customers, complaints, surveys)
}
