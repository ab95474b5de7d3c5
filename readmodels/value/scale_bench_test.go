package value_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/value"
)

// BenchmarkValueScale times, against a database seeded and projected
// beforehand, what the API runs for GET /v1/customers/{id} (the directory
// row and the value), GET /v1/customers?rfm=champions (the segment's
// members, then the directory's first page) and GET /v1/analytics/value,
// each with the fast path (population snapshot, day sums) and with the
// definition (readmodels.customer_values, the documented SQL of the value
// figures: what the API ran before) in the same run:
//
//	rapport seed --customers 100000 && rapport projections rebuild --all
//	RAPPORT_SCALE_DATABASE_URL=postgres://…/db go test -run '^$' -bench ValueScale -benchtime 1x ./readmodels/value/
//
// RAPPORT_SCALE_RUNS (default 40) requests of each fast figure,
// RAPPORT_SCALE_BEFORE_RUNS (default 3) of each definition's (seconds
// each at 100,000 customers), after the fast ones; RAPPORT_SCALE_FIGURES
// (a comma list of name prefixes, e.g. "GET,rfm") narrows the run. It prints p50 and p95
// in ms, the ratio of the p95s and the load average: the machine is
// shared, only same-run ratios mean much. The first fast request builds
// the snapshot; its time is printed apart.
func BenchmarkValueScale(b *testing.B) {
	url := os.Getenv("RAPPORT_SCALE_DATABASE_URL")
	if url == "" {
		b.Skip("RAPPORT_SCALE_DATABASE_URL is not set: seed a database (rapport seed --customers 100000, rapport projections rebuild --all) and name it")
	}
	runs, before := envInt(b, "RAPPORT_SCALE_RUNS", 40), envInt(b, "RAPPORT_SCALE_BEFORE_RUNS", 3)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	var nCustomers, nPurchases int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM readmodels.customers), (SELECT count(*) FROM readmodels.purchases)`).Scan(&nCustomers, &nPurchases); err != nil {
		b.Fatalf("the database has no value read model (rapport projections rebuild --all): %v", err)
	}
	out := os.Stderr // benchmark logs keep 10 lines
	fmt.Fprintf(out, "BenchmarkValueScale: %d customers, %d purchases, %d fast and %d definition runs per figure, load average %s\n",
		nCustomers, nPurchases, runs, before, loadAverage())
	vq := value.NewQueries(pool)
	cq := customers.NewQueries(pool)
	rows, err := pool.Query(ctx, `SELECT customer_id FROM readmodels.value_customers ORDER BY md5(customer_id::text) LIMIT 200`)
	if err != nil {
		b.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(ids) == 0 {
		b.Fatalf("customers: %d, %v", len(ids), err)
	}
	took, err := timed(func() error { _, err := vq.Value(ctx, ids[0]); return err })
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(out, "first value (builds the snapshot): %.1f ms\n", ms(took))

	getCustomer := func(valueOf func(context.Context, uuid.UUID) (value.CustomerValue, error)) func(int) error {
		return func(i int) error {
			id := ids[i%len(ids)]
			if _, err := cq.Get(ctx, id); err != nil {
				return err
			}
			_, err := valueOf(ctx, id)
			return err
		}
	}
	champions := func(members func(context.Context, string) ([]uuid.UUID, error)) func(int) error {
		return func(int) error {
			ids, err := members(ctx, value.SegmentChampions)
			if err != nil {
				return err
			}
			_, err = cq.List(ctx, customers.Filter{IDs: &ids}, 50, "")
			return err
		}
	}
	report := func(p analytics.Params) func(int) error {
		return func(int) error { _, err := vq.Report(ctx, p); return err }
	}
	reportSQL := func(p analytics.Params) func(int) error {
		return func(int) error { _, err := vq.ReportSQL(ctx, p); return err }
	}
	now := time.Now()
	d90 := analytics.Params{From: now.Add(-analytics.DefaultPeriod), To: now}
	with := func(p analytics.Params, g analytics.GroupBy) analytics.Params { p.GroupBy = g; return p }
	year := analytics.Params{From: now.Add(-365 * 24 * time.Hour), To: now, GroupBy: analytics.Month}
	past := analytics.Params{From: now.Add(-180 * 24 * time.Hour), To: now.Add(-90 * 24 * time.Hour)}
	figures := []struct {
		name       string
		fast, defn func(int) error
	}{
		{"GET customer + value", getCustomer(vq.Value), getCustomer(vq.ValueSQL)},
		{"value only", func(i int) error { _, err := vq.Value(ctx, ids[i%len(ids)]); return err },
			func(i int) error { _, err := vq.ValueSQL(ctx, ids[i%len(ids)]); return err }},
		{"rfm=champions page", champions(vq.Members), champions(vq.MembersSQL)},
		{"analytics value", report(d90), reportSQL(d90)},
		{"analytics by segment", report(with(d90, analytics.Segment)), reportSQL(with(d90, analytics.Segment))},
		{"analytics by owner", report(with(d90, analytics.Owner)), reportSQL(with(d90, analytics.Owner))},
		{"analytics by month 365d", report(year), reportSQL(year)},
		// A period ending in the past reads the purchases after it.
		{"analytics past 90d", report(past), reportSQL(past)},
		{"analytics past by owner", report(with(past, analytics.Owner)), reportSQL(with(past, analytics.Owner))},
	}
	// The same answers on both paths, here at scale as in the tests.
	for _, p := range []analytics.Params{d90, with(d90, analytics.Owner), year, past, with(past, analytics.Segment)} {
		fast, err := vq.Report(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		defn, err := vq.ReportSQL(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		if !reflect.DeepEqual(fast.Groups, defn.Groups) {
			b.Errorf("value figures %+v: day sums %+v, definition %+v", p, fast.Groups, defn.Groups)
		}
	}
	for _, id := range ids[:20] {
		fast, err := vq.Value(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		defn, err := vq.At(time.Now()).ValueSQL(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if fmt.Sprint(deref(fast.RecencyDays), fast.Frequency, fast.MonetaryMinor, deref(fast.Segment)) != fmt.Sprint(deref(defn.RecencyDays), defn.Frequency, defn.MonetaryMinor, deref(defn.Segment)) {
			b.Errorf("customer %s: fast %+v, definition %+v", id, fast, defn)
		}
	}
	fmt.Fprintf(out, "%-24s %10s %10s %14s %14s %9s\n", "figure", "fast p50", "fast p95", "before p50", "before p95", "p95 ×")
	for _, f := range figures {
		if only := os.Getenv("RAPPORT_SCALE_FIGURES"); only != "" && !slices.ContainsFunc(strings.Split(only, ","), func(s string) bool { return strings.HasPrefix(f.name, s) }) {
			continue
		}
		var fast, defn []time.Duration
		for i := range runs + 1 {
			d, err := timed(func() error { return f.fast(i) })
			if err != nil {
				b.Fatalf("%s: %v", f.name, err)
			}
			if i > 0 { // the first warms the caches and the statement cache
				fast = append(fast, d)
			}
		}
		// The definition's runs after the fast ones: each is seconds of
		// the database's CPU, which the fast runs after it would pay.
		for i := range before {
			if f.defn == nil {
				break
			}
			d, err := timed(func() error { return f.defn(i) })
			if err != nil {
				b.Fatalf("%s (definition): %v", f.name, err)
			}
			defn = append(defn, d)
		}
		pf := percentiles(fast)
		if f.defn == nil {
			fmt.Fprintf(out, "%-24s %10.1f %10.1f %14s %14s %9s\n", f.name, ms(pf[0]), ms(pf[1]), "-", "-", "-")
			continue
		}
		pd := percentiles(defn)
		fmt.Fprintf(out, "%-24s %10.1f %10.1f %14.1f %14.1f %9.0f\n", f.name, ms(pf[0]), ms(pf[1]), ms(pd[0]), ms(pd[1]), ms(pd[1])/max(ms(pf[1]), 0.001))
	}
	fmt.Fprintf(out, "load average %s; snapshots built %d\n", loadAverage(), vq.Snapshots())
	for b.Loop() {
	}
}

func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

func timed(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentiles returns p50 and p95 (nearest rank).
func percentiles(ds []time.Duration) [2]time.Duration {
	if len(ds) == 0 {
		return [2]time.Duration{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s)+1-1)+0.5))] }
	return [2]time.Duration{at(0.50), at(0.95)}
}

func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(raw))[:3], " ")
}
