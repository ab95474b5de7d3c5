package work

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// TestExplainScale prints EXPLAIN of the queues' first pages against
// RAPPORT_SCALE_DATABASE_URL (RAPPORT_EXPLAIN=complaints|assignee|owner|at-risk|
// at-risk-cached|at-risk-cached-high|at-risk-cached-tier-a|at-risk-refresh (the cache
// refreshed first),
// RAPPORT_EXPLAIN_OPTIONS e.g. "(ANALYZE, BUFFERS)"): a profiling aid,
// skipped without both.
func TestExplainScale(t *testing.T) {
	url, what := os.Getenv("RAPPORT_SCALE_DATABASE_URL"), os.Getenv("RAPPORT_EXPLAIN")
	if url == "" || what == "" {
		t.Skip("RAPPORT_SCALE_DATABASE_URL and RAPPORT_EXPLAIN name what to explain")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	q := NewQueries(pool)
	var sql string
	var args []any
	switch what {
	case "complaints":
		sql, args, err = q.complaintsSQL(ComplaintFilter{}, nil, q.now(), 50)
	case "assignee":
		sql, args, err = q.complaintsSQL(ComplaintFilter{Assignee: "agent-07"}, nil, q.now(), 50)
	case "owner":
		sql, args, err = q.complaintsSQL(ComplaintFilter{Filter: Filter{Owner: "agent-07"}}, nil, q.now(), 50)
	case "at-risk":
		sql, args, err = q.atRiskSQL(AtRiskFilter{}, nil, 50)
	case "at-risk-high":
		sql, args, err = q.atRiskSQL(AtRiskFilter{Level: "high"}, nil, 50)
	case "at-risk-cached", "at-risk-cached-high", "at-risk-cached-tier-a", "at-risk-cached-p2", "at-risk-refresh":
		t0 := time.Now()
		n, rerr := q.Refresh(ctx)
		t.Logf("refreshed %d rows in %s: %v", n, time.Since(t0), rerr)
		f := AtRiskFilter{}
		switch what {
		case "at-risk-cached-high":
			f.Level = "high"
		case "at-risk-cached-tier-a":
			f.Tier = "A"
		}
		var after *readmodel.Key
		if what == "at-risk-cached-p2" {
			first, perr := q.AtRisk(ctx, f, 50, "")
			if perr != nil {
				t.Fatal(perr)
			}
			last := first.Items[len(first.Items)-1]
			after = &readmodel.Key{At: time.Unix(int64(last.Risk.Score), 0), ID: last.Customer.ID}
		}
		sql, args, err = q.atRiskCachedSQL(f, after, 50)
		if what == "at-risk-refresh" {
			sql, args = q.cache.refresh, []any{q.now(), q.weights, q.slaJSON, q.cache.key, refreshBatch}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, "EXPLAIN "+os.Getenv("RAPPORT_EXPLAIN_OPTIONS")+" "+sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		b.WriteString(line + "\n")
	}
	rows.Close()
	t.Log("\n" + b.String())
}
