package app_test

import (
	"context"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/infra/postgres/postgrestest"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/projections"
)

// BenchmarkRebuildAllProjectors rebuilds every read model of the service at
// once from a log of RAPPORT_BENCH_EVENTS events (default 20,000) loaded
// straight into the Postgres store, and reports the log's events per
// second of wall time (each event applied by every projector that handles
// it) and the projector-events per second:
//
//	RAPPORT_BENCH_EVENTS=1000000 go test ./infra/app -run '^$' -bench RebuildAllProjectors -benchtime 1x -timeout 60m
//
// RAPPORT_BENCH_PROFILE writes a CPU profile of the rebuild alone;
// RAPPORT_BENCH_ONLY=name rebuilds that projector alone (the figure "one
// projector alone" is compared with); RAPPORT_BENCH_PRIVATE=1 gives each
// projector its own read of the log (Config.PrivateReaders), the path
// before the shared reader, so that one build measures both.
func BenchmarkRebuildAllProjectors(b *testing.B) {
	log := postgrestest.LoadLog(b, postgrestest.EventsFromEnv(b, 20_000))
	n := log.Events
	ctx := context.Background()
	projectors, err := app.Projectors()
	if err != nil {
		b.Fatal(err)
	}
	if only := os.Getenv("RAPPORT_BENCH_ONLY"); only != "" {
		projectors = slices.DeleteFunc(projectors, func(p projections.Projector) bool { return p.Name() != only })
	}
	// The loading's sixteen connections go: the server is shared.
	log.Pool.Reset()
	pool := log.Pool
	var tracer *stmtTracer
	if os.Getenv("RAPPORT_BENCH_TRACE") == "1" {
		// The engine's statements (the projectors' connections copy the
		// pool's configuration) timed one by one.
		tracer = newStmtTracer()
		cfg := log.Pool.Config().Copy()
		cfg.ConnConfig.Tracer = tracer
		cfg.MaxConns = 4
		if pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
	}
	rebuildBatch := 0 // the engine's default
	if v := os.Getenv("RAPPORT_BENCH_REBUILD_BATCH"); v != "" {
		if rebuildBatch, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	engine, err := projections.New(projections.Config{Pool: pool, RebuildBatchSize: rebuildBatch, Store: log.Store, Codec: log.Codec, Projectors: projectors, DecodeCacheSize: cacheSize(),
		PrivateReaders: os.Getenv("RAPPORT_BENCH_PRIVATE") == "1"})
	if err != nil {
		b.Fatal(err)
	}
	if path := os.Getenv("RAPPORT_BENCH_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	pgBefore := pgActiveSeconds(b, log.Pool)
	walBefore := walBytes(b, log.Pool)
	tupBefore := tuplesWritten(b, log.Pool)
	cpuBefore := processCPUSeconds()
	// PostgreSQL's CPU by session, sampled from /proc (the bench's
	// database only; sessions that end between samples lose their last
	// second).
	cpu := newBackendCPU()
	cpuCtx, stopCPU := context.WithCancel(ctx)
	cpuDone := make(chan struct{})
	go func() {
		defer close(cpuDone)
		cpu.run(cpuCtx, log.Pool, 500*time.Millisecond)
	}()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(projectors))
	for _, p := range projectors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := engine.Rebuild(ctx, p.Name(), nil); err != nil {
				errs <- err
			}
			b.Logf("%s rebuilt after %.1f s", p.Name(), time.Since(start).Seconds())
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	stopCPU()
	<-cpuDone
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "log-events/s")
	b.ReportMetric(float64(n*len(projectors))/elapsed.Seconds(), "projector-events/s")
	b.ReportMetric(elapsed.Seconds(), "s")
	// Where the time went: this process's CPU (decoding, Watermill, the
	// projectors' Go code) and PostgreSQL's time executing statements in
	// the bench's database (reads of the log and the projectors' writes).
	b.ReportMetric(processCPUSeconds()-cpuBefore, "go-cpu-s")
	b.ReportMetric(pgActiveSeconds(b, log.Pool)-pgBefore, "pg-active-s")
	// WAL is counted for the whole server (other databases' writes
	// included): an upper bound of this rebuild's.
	b.ReportMetric(float64(walBytes(b, log.Pool)-walBefore)/float64(n), "wal-B/event")
	b.ReportMetric(float64(tuplesWritten(b, log.Pool)-tupBefore)/float64(n), "rows-written/event")
	cpuReport, pgCPU := cpu.report()
	b.ReportMetric(pgCPU, "pg-cpu-s")
	b.Log(cpuReport)
	if tracer != nil {
		b.Log(tracer.report(40))
	}
}

// walBytes is pg_stat_wal.wal_bytes, the server's WAL written so far.
func walBytes(b *testing.B, pool *pgxpool.Pool) int64 {
	var n int64
	if err := pool.QueryRow(context.Background(), `SELECT wal_bytes::bigint FROM pg_stat_wal`).Scan(&n); err != nil {
		b.Logf("pg_stat_wal: %v", err)
	}
	return n
}

// tuplesWritten is the rows inserted, updated and deleted in the current
// database so far.
func tuplesWritten(b *testing.B, pool *pgxpool.Pool) int64 {
	var n int64
	if err := pool.QueryRow(context.Background(), `SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		b.Logf("pg_stat_database: %v", err)
	}
	return n
}

// pgActiveSeconds is pg_stat_database.active_time of the current database
// (statistics are flushed when a session goes idle, so it lags a little).
func pgActiveSeconds(b *testing.B, pool *pgxpool.Pool) float64 {
	var ms float64
	if err := pool.QueryRow(context.Background(), `SELECT coalesce(active_time, 0) FROM pg_stat_database WHERE datname = current_database()`).Scan(&ms); err != nil {
		b.Logf("pg_stat_database: %v", err)
	}
	return ms / 1000
}

func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func cacheSize() int {
	if s := os.Getenv("RAPPORT_BENCH_DECODE_CACHE"); s != "" {
		n, _ := strconv.Atoi(s)
		return n
	}
	return 0
}
