package analytics_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/postgres/postgrestest"

	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// BenchmarkRebuild rebuilds the contacts, complaints, surveys and
// life-cycle read models from a log of RAPPORT_BENCH_EVENTS events
// (default 20,000), loaded straight into the Postgres store, as the CLI's
// rebuild does (this process takes the locks, cold key cache), and reports
// events/s of the log: rebuilding all four one after the other
// ("sequential") and at once ("parallel"). Then it times each analytics
// family's report over the whole year, by segment and by month.
//
//	RAPPORT_BENCH_EVENTS=200000 go test ./readmodels/analytics -run '^$' -bench BenchmarkRebuild -benchtime 1x -timeout 30m
func BenchmarkRebuild(b *testing.B) {
	log := postgrestest.LoadLog(b, postgrestest.EventsFromEnv(b, 20_000))
	n, pool, store, codec := log.Events, log.Pool, log.Store, log.Codec
	ctx := context.Background()
	directory, err := customers.NewProjector(customers.Config{})
	if err != nil {
		b.Fatal(err)
	}
	names := []string{contacts.Name, complaints.Name, surveys.Name, lifecycle.Name}
	eng, err := projections.New(projections.Config{Pool: pool, Store: store, Codec: codec,
		Projectors: []projections.Projector{contacts.NewProjector(), complaints.NewProjector(), surveys.NewProjector(), lifecycle.NewProjector(), directory}})
	if err != nil {
		b.Fatal(err)
	}
	rebuild := func(name string) time.Duration {
		t0 := time.Now()
		if err := eng.Rebuild(ctx, name, nil); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	// The directory is not this benchmark's (the reports group by it); its
	// rebuild is the reference of what the engine does with every event.
	d := rebuild(customers.Name)
	b.Logf("customers (reference, every event): %v (%.0f events/s)", d, float64(n)/d.Seconds())
	if path := os.Getenv("RAPPORT_BENCH_PROFILE"); path != "" {
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
		var total time.Duration
		for _, name := range names {
			d := rebuild(name)
			total += d
			b.Logf("%s: %v (%.0f events/s)", name, d, float64(n)/d.Seconds())
		}
		b.ReportMetric(float64(n)/total.Seconds(), "events/s-sequential")
		t0 := time.Now()
		var wg sync.WaitGroup
		for _, name := range names {
			wg.Go(func() { rebuild(name) })
		}
		wg.Wait()
		b.ReportMetric(float64(n)/time.Since(t0).Seconds(), "events/s-parallel")
	}
	b.StopTimer()
	q := analytics.NewQueries(pool, nil)
	to := time.Now()
	for _, f := range analytics.Families() {
		for _, g := range []analytics.GroupBy{analytics.All, analytics.Segment, analytics.Month} {
			p := analytics.Params{From: to.AddDate(-1, 0, 0), To: to, GroupBy: g}
			if _, err := q.Report(ctx, f, p); err != nil { // warm the statement cache
				b.Fatal(err)
			}
			t0 := time.Now()
			rep, err := q.Report(ctx, f, p)
			if err != nil {
				b.Fatal(err)
			}
			// (Benchmark logs keep 10 lines: these go to stderr.)
			fmt.Fprintf(os.Stderr, "report %s by %q: %d groups in %v\n", f, g, len(rep.Groups), time.Since(t0))
		}
	}
	if os.Getenv("RAPPORT_BENCH_EXPLAIN") != "" {
		for _, f := range []analytics.Family{analytics.Satisfaction, analytics.Churn, analytics.Complaints, analytics.Contacts} {
			for _, g := range []analytics.GroupBy{analytics.Segment, analytics.Month} {
				sql, args := q.QueryFor(f, analytics.Params{From: to.AddDate(-1, 0, 0), To: to, GroupBy: g})
				rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, args...)
				if err != nil {
					b.Fatal(err)
				}
				lines, _ := pgx.CollectRows(rows, pgx.RowTo[string])
				fmt.Fprintf(os.Stderr, "=== %s by %s\n%s\n", f, g, strings.Join(lines, "\n"))
			}
		}
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM readmodels.contacts) + (SELECT count(*) FROM readmodels.complaint_events) +
		(SELECT count(*) FROM readmodels.surveys) + (SELECT count(*) FROM readmodels.customer_lifecycle)`).Scan(&rows); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d events; %d rows in contacts, complaint_events, surveys and customer_lifecycle", n, rows)
}
