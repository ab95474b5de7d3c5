package app_test

import (
	"context"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

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
// projector alone" is compared with).
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
	engine, err := projections.New(projections.Config{Pool: log.Pool, Store: log.Store, Codec: log.Codec, Projectors: projectors, DecodeCacheSize: cacheSize()})
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
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "log-events/s")
	b.ReportMetric(float64(n*len(projectors))/elapsed.Seconds(), "projector-events/s")
	b.ReportMetric(elapsed.Seconds(), "s")
}

func cacheSize() int {
	if s := os.Getenv("RAPPORT_BENCH_DECODE_CACHE"); s != "" {
		n, _ := strconv.Atoi(s)
		return n
	}
	return 0
}
