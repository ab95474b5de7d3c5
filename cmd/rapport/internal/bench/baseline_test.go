package bench_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/cmd/rapport/internal/bench"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestBaselineFailureKeepsTheLoad: when the baseline cannot run (a shared
// server out of connections, here a database that does not exist), the
// run still reports the load and its verification, and says why the
// baseline is missing.
func TestBaselineFailureKeepsTheLoad(t *testing.T) {
	m := apptest.MustOpen(t)
	cfg := m.Pool.Config().Copy()
	cfg.ConnConfig.Database = "rapport_bench_no_such_database"
	broken, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broken.Close)
	res, err := bench.Run(context.Background(), bench.Config{
		URL:              m.URL,
		Key:              m.Keys["admin"],
		Clients:          2,
		Commands:         40,
		Engine:           m.Engine,
		Pool:             broken,
		BaselineDuration: 200 * time.Millisecond,
		SkipRebuild:      true,
	})
	if err != nil {
		t.Fatalf("the run failed with its baseline: %v", err)
	}
	if !res.Pass || res.Load.Accepted == 0 {
		t.Fatalf("load %+v, verification %v", res.Load, res.Verification.Failures)
	}
	if res.Baseline != nil || !strings.Contains(strings.Join(res.Skipped, "; "), "baseline: failed") {
		t.Fatalf("baseline %+v, skipped %v: want the failure reported", res.Baseline, res.Skipped)
	}
}
