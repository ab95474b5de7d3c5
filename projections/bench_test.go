package projections_test

import (
	"context"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/postgres/postgrestest"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
	"github.com/rapport-crm/rapport/projections/projectiontest"
	"github.com/rapport-crm/rapport/readmodels/customers"
)

// BenchmarkRebuild rebuilds the customer directory from a log of
// RAPPORT_BENCH_EVENTS events (default 20,000; the target is measured with
// 1,000,000), loaded straight into the Postgres store, as the CLI's rebuild
// does (cold key cache, this process takes the lock), and reports events/s:
//
//	RAPPORT_BENCH_EVENTS=1000000 go test ./projections -run '^$' -bench BenchmarkRebuild -benchtime 1x -timeout 30m
//
// RAPPORT_BENCH_BATCH sets Config.BatchSize (rebuild batches are 8 times
// larger), RAPPORT_BENCH_CACHE the projector's row cache (-1: off), and
// RAPPORT_BENCH_PROFILE writes a CPU profile of the rebuild alone.
func BenchmarkRebuild(b *testing.B) {
	n := 20_000
	if s := os.Getenv("RAPPORT_BENCH_EVENTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		n = v
	}
	url := pgtest.NewDatabase(b)
	// The keyring as configured in production (keys cached for a minute).
	e := newEnvWithKeys(b, url, true, postgres.KeyringConfig{})
	// More connections than the tests' pools: key creation in parallel.
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 16
	bulk, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(bulk.Close)
	ctx := context.Background()
	start := time.Now()
	appends := projectiontest.NewGenerator(42).Plan(n)
	if err := projectiontest.Encode(ctx, e.codec, appends, 8); err != nil {
		b.Fatal(err)
	}
	encoded := time.Since(start)
	if _, err := postgrestest.BulkLoad(ctx, bulk, appends); err != nil {
		b.Fatal(err)
	}
	if _, err := bulk.Exec(ctx, `VACUUM ANALYZE eventstore.events`); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d events (%d appends) in %v (encoding %v)", n, len(appends), time.Since(start), encoded)

	cfgE := e.engineConfig(b)
	cfgE.Logger = testLogger(b)
	reg := prometheus.NewRegistry()
	cfgE.Registerer = reg
	if s := os.Getenv("RAPPORT_BENCH_BATCH"); s != "" {
		cfgE.BatchSize, _ = strconv.Atoi(s)
	}
	eng := e.newEngine(b, cfgE)
	if path := os.Getenv("RAPPORT_BENCH_PROFILE"); path != "" {
		// A CPU profile of the rebuilds only, without the loading.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	b.ResetTimer()
	for range b.N {
		// A fresh keyring cache each time, as after a restart.
		t0 := time.Now()
		if err := eng.Rebuild(ctx, customers.Name, nil); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		b.ReportMetric(float64(n)/d.Seconds(), "events/s")
	}
	b.StopTimer()
	sts, err := eng.Status(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if sts[0].LagEvents != 0 {
		b.Fatalf("not caught up after the rebuild: %+v", sts[0])
	}
	var rows int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM readmodels.customers`).Scan(&rows); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d customers; status %+v", rows, sts[0])
	if mfs, err := reg.Gather(); err == nil {
		for _, mf := range mfs {
			if mf.GetName() == "rapport_projection_batch_duration_seconds" {
				h := mf.GetMetric()[0].GetHistogram()
				b.Logf("%d batches committed, %.1f ms each on average (decode to commit, pipelined with the next batch's decoding)",
					h.GetSampleCount(), 1000*h.GetSampleSum()/float64(h.GetSampleCount()))
			}
		}
	}
	var size, upd, hot, dead int64
	if err := e.pool.QueryRow(ctx, `SELECT pg_total_relation_size(relid), n_tup_upd, n_tup_hot_upd, n_dead_tup FROM pg_stat_user_tables WHERE relname = 'customers' ORDER BY relid DESC LIMIT 1`).Scan(&size, &upd, &hot, &dead); err == nil {
		b.Logf("customers table: %d MB, %d updates (%d HOT), %d dead tuples", size>>20, upd, hot, dead)
	}

}
