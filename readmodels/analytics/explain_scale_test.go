package analytics_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/readmodels/analytics"
)

// TestExplainScale prints EXPLAIN of one family × grouping with rollups,
// with the settings the rollups run with (parallel workers and JIT off,
// more sort memory), against
// RAPPORT_SCALE_DATABASE_URL (RAPPORT_EXPLAIN=family/grouping,
// RAPPORT_EXPLAIN_OPTIONS e.g. "(ANALYZE, BUFFERS)", RAPPORT_EXPLAIN_DAYS
// the period's length, 90 by default): a profiling aid,
// skipped without both.
func TestExplainScale(t *testing.T) {
	url, what := os.Getenv("RAPPORT_SCALE_DATABASE_URL"), os.Getenv("RAPPORT_EXPLAIN")
	if url == "" || what == "" {
		t.Skip("RAPPORT_SCALE_DATABASE_URL and RAPPORT_EXPLAIN=family/grouping name what to explain")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	f, g, _ := strings.Cut(what, "/")
	now := time.Now()
	period := analytics.DefaultPeriod
	if d := os.Getenv("RAPPORT_EXPLAIN_DAYS"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 1 {
			t.Fatalf("RAPPORT_EXPLAIN_DAYS=%q: want a number of days", d)
		}
		period = time.Duration(n) * 24 * time.Hour
	}
	p := analytics.Params{From: now.Add(-period), To: now, GroupBy: analytics.GroupBy(g)}
	sql, args := analytics.NewQueries(pool, nil).WithClock(func() time.Time { return now }).WithRollups().QueryFor(analytics.Family(f), p)
	for range 2 {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, analytics.SerialSQL); err != nil {
			t.Fatal(err)
		}
		rows, err := tx.Query(ctx, "EXPLAIN "+os.Getenv("RAPPORT_EXPLAIN_OPTIONS")+" "+sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&b, line)
		}
		rows.Close()
		_ = tx.Rollback(ctx)
		t.Log("\n" + b.String())
	}
}
