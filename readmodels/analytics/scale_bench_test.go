package analytics_test

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

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// BenchmarkScale times every analytics family × grouping, with the
// documented SQL and with rollups in the same run (A/B, the two
// alternating request by request), and the first page of each work queue,
// against a database seeded and projected beforehand:
//
//	rapport seed --customers 100000 && rapport projections rebuild --all
//	RAPPORT_SCALE_DATABASE_URL=postgres://…/db go test -run '^$' -bench Scale -benchtime 1x ./readmodels/analytics/
//
// RAPPORT_SCALE_RUNS (default 20) is the number of requests per figure;
// RAPPORT_SCALE_ROLLUPS_ONLY=1 times the rollups alone, neither the
// documented SQL nor the work queues (for a database whose rollups alone
// were scaled up: rollups.BenchmarkScaleReplicate);
// RAPPORT_SCALE_FAMILIES and RAPPORT_SCALE_GROUPINGS (comma lists, e.g.
// "kpis" and "none,month 90 d") narrow the run; RAPPORT_SCALE_FAMILIES=none
// times the work queues alone.
// It prints p50 and p95 in ms and the ratio of the p95s, with the load
// average beside them: the machine is shared, only same-run ratios mean
// much. Groupings other than month cover the default period (90 days up
// to now), as a dashboard asks.
func BenchmarkScale(b *testing.B) {
	url := os.Getenv("RAPPORT_SCALE_DATABASE_URL")
	if url == "" {
		b.Skip("RAPPORT_SCALE_DATABASE_URL is not set: seed a database (rapport seed --customers 100000, rapport projections rebuild --all) and name it")
	}
	runs := 20
	if s := os.Getenv("RAPPORT_SCALE_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("RAPPORT_SCALE_RUNS=%q: want a positive number", s)
		}
		runs = n
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	var customers, surveys int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM readmodels.customers), (SELECT count(*) FROM readmodels.surveys)`).Scan(&customers, &surveys); err != nil {
		b.Fatalf("the database has no read models (rapport projections rebuild --all): %v", err)
	}
	var rolled bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('readmodels.survey_days') IS NOT NULL`).Scan(&rolled); err != nil {
		b.Fatal(err)
	}
	rollupsOnly := os.Getenv("RAPPORT_SCALE_ROLLUPS_ONLY") != ""
	if rollupsOnly {
		if !rolled {
			b.Fatal("RAPPORT_SCALE_ROLLUPS_ONLY: the database has no rollups")
		}
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM readmodels.rollup_customers), (SELECT count(*) FROM readmodels.survey_facts)`).Scan(&customers, &surveys); err != nil {
			b.Fatal(err)
		}
	}
	out := os.Stderr // benchmark logs keep 10 lines
	fmt.Fprintf(out, "BenchmarkScale: %d customers, %d surveys, %d runs per figure, load average %s\n", customers, surveys, runs, loadAverage())
	now := time.Now()
	sqlQ := analytics.NewQueries(pool, nil).WithClock(func() time.Time { return now })
	rollQ := sqlQ.WithRollups()
	mismatches := 0
	type grouping struct {
		name string
		p    analytics.Params
	}
	d90 := analytics.Params{From: now.Add(-analytics.DefaultPeriod), To: now}
	with := func(p analytics.Params, g analytics.GroupBy) analytics.Params { p.GroupBy = g; return p }
	groupings := []grouping{
		{"none", d90}, {"segment", with(d90, analytics.Segment)}, {"tier", with(d90, analytics.Tier)},
		{"region", with(d90, analytics.Region)}, {"owner", with(d90, analytics.Owner)},
		{"month 90 d", with(d90, analytics.Month)},
		{"month 365 d", analytics.Params{From: now.Add(-365 * 24 * time.Hour), To: now, GroupBy: analytics.Month}},
	}
	fmt.Fprintf(out, "%-13s %-12s %10s %10s %12s %12s %8s\n", "family", "grouping", "sql p50", "sql p95", "rollups p50", "rollups p95", "p95 ×")
	families := analytics.Families()
	if s := os.Getenv("RAPPORT_SCALE_FAMILIES"); s != "" {
		families = nil
		for _, f := range strings.Split(s, ",") {
			if f == "none" { // the work queues alone
				break
			}
			families = append(families, analytics.Family(f))
		}
	}
	for _, f := range families {
		for _, g := range groupings {
			if s := os.Getenv("RAPPORT_SCALE_GROUPINGS"); s != "" && !slices.Contains(strings.Split(s, ","), g.name) {
				continue
			}
			var a, r []time.Duration
			for i := range runs + 1 {
				var want, got analytics.Report
				ta, err := time.Duration(0), error(nil)
				if !rollupsOnly {
					ta, err = timed(func() (err error) { want, err = sqlQ.Report(ctx, f, g.p); return err })
				}
				if err != nil {
					b.Fatalf("%s by %s: %v", f, g.name, err)
				}
				tr := time.Duration(0)
				if rolled {
					if tr, err = timed(func() (err error) { got, err = rollQ.Report(ctx, f, g.p); return err }); err != nil {
						b.Fatalf("%s by %s with rollups: %v", f, g.name, err)
					}
					// Both read the same tables at rest: the figures must be
					// the same, here at scale as in the agreement test.
					if i == 0 && !rollupsOnly && !reflect.DeepEqual(want.Groups, got.Groups) {
						mismatches++
						b.Errorf("%s by %s: the rollups' figures differ from the documented SQL's", f, g.name)
					}
				}
				if i > 0 { // the first warms the caches and the statement cache
					a, r = append(a, ta), append(r, tr)
				}
			}
			pa, pr := percentiles(a), percentiles(r)
			if rollupsOnly {
				fmt.Fprintf(out, "%-13s %-12s %10s %10s %12.1f %12.1f %8s\n", f, g.name, "-", "-", ms(pr[0]), ms(pr[1]), "-")
				continue
			}
			fmt.Fprintf(out, "%-13s %-12s %10.1f %10.1f %12.1f %12.1f %8.1f\n", f, g.name, ms(pa[0]), ms(pa[1]), ms(pr[0]), ms(pr[1]), ms(pa[1])/max(ms(pr[1]), 0.001))
		}
	}
	fmt.Fprintf(out, "load average %s; %d reports differ between the two paths\n", loadAverage(), mismatches)
	if rollupsOnly {
		return
	}
	q := work.NewQueries(pool)
	breachedPage, err := q.Complaints(ctx, work.ComplaintFilter{SLA: work.SLABreached}, 50, "")
	if err != nil {
		b.Fatal(err)
	}
	atRiskPage, err := q.AtRisk(ctx, work.AtRiskFilter{}, 50, "")
	if err != nil {
		b.Fatal(err)
	}
	queues := []struct {
		name string
		read func() error
	}{
		{"complaints", func() error { _, err := q.Complaints(ctx, work.ComplaintFilter{}, 50, ""); return err }},
		{"complaints breached", func() error {
			_, err := q.Complaints(ctx, work.ComplaintFilter{SLA: work.SLABreached}, 50, "")
			return err
		}},
		{"complaints at risk", func() error {
			_, err := q.Complaints(ctx, work.ComplaintFilter{SLA: work.SLAAtRisk}, 50, "")
			return err
		}},
		{"complaints high", func() error {
			_, err := q.Complaints(ctx, work.ComplaintFilter{Severity: "high"}, 50, "")
			return err
		}},
		{"complaints assignee", func() error {
			_, err := q.Complaints(ctx, work.ComplaintFilter{Assignee: "agent-07"}, 50, "")
			return err
		}},
		{"complaints by owner", func() error {
			_, err := q.Complaints(ctx, work.ComplaintFilter{Filter: work.Filter{Owner: "agent-07"}}, 50, "")
			return err
		}},
		{"complaints breached p2", func() error {
			_, err := q.Complaints(ctx, work.ComplaintFilter{SLA: work.SLABreached}, 50, breachedPage.NextCursor)
			return err
		}},
		{"follow-ups overdue", func() error {
			_, err := q.FollowUps(ctx, work.FollowUpFilter{State: work.FollowUpOverdue}, 50, "")
			return err
		}},
		{"follow-ups", func() error { _, err := q.FollowUps(ctx, work.FollowUpFilter{}, 50, ""); return err }},
		{"contact-due", func() error { _, err := q.ContactDue(ctx, work.Filter{}, 50, ""); return err }},
		{"contact-due tier A", func() error { _, err := q.ContactDue(ctx, work.Filter{Tier: "A"}, 50, ""); return err }},
		{"at-risk", func() error { _, err := q.AtRisk(ctx, work.AtRiskFilter{}, 50, ""); return err }},
		{"at-risk high", func() error { _, err := q.AtRisk(ctx, work.AtRiskFilter{Level: "high"}, 50, ""); return err }},
		{"at-risk medium", func() error { _, err := q.AtRisk(ctx, work.AtRiskFilter{Level: "medium"}, 50, ""); return err }},
		{"at-risk tier A", func() error {
			_, err := q.AtRisk(ctx, work.AtRiskFilter{Filter: work.Filter{Tier: "A"}}, 50, "")
			return err
		}},
		{"at-risk owner", func() error {
			_, err := q.AtRisk(ctx, work.AtRiskFilter{Filter: work.Filter{Owner: "agent-07"}}, 50, "")
			return err
		}},
		{"at-risk p2", func() error {
			_, err := q.AtRisk(ctx, work.AtRiskFilter{}, 50, atRiskPage.NextCursor)
			return err
		}},
	}
	// The at-risk queue's cache is filled as the service's first request
	// would start it, before the requests are timed; first, one request
	// as the cache is (after a rebuild: empty, every customer scored).
	cold, err := timed(func() error {
		_, err := work.NewQueries(pool, work.WithRiskRefresh(false)).AtRisk(ctx, work.AtRiskFilter{}, 50, "")
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	n, err := q.Refresh(ctx)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(out, "at-risk before the refresh %s; %d rows scored in %s\n", cold.Round(time.Millisecond), n, time.Since(t0).Round(time.Millisecond))
	fmt.Fprintf(out, "%-22s %10s %10s\n", "work queue (50 rows)", "p50", "p95")
	for _, w := range queues {
		var ds []time.Duration
		for i := range runs + 1 {
			d, err := timed(w.read)
			if err != nil {
				b.Fatalf("%s: %v", w.name, err)
			}
			if i > 0 {
				ds = append(ds, d)
			}
		}
		p := percentiles(ds)
		fmt.Fprintf(out, "%-22s %10.1f %10.1f\n", w.name, ms(p[0]), ms(p[1]))
	}
	fmt.Fprintf(out, "load average %s\n", loadAverage())
}

func timed(f func() error) (time.Duration, error) {
	t0 := time.Now()
	err := f()
	return time.Since(t0), err
}

// percentiles are the p50 and p95 of ds (nearest rank).
func percentiles(ds []time.Duration) [2]time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		if len(s) == 0 {
			return 0
		}
		i := int(q*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return [2]time.Duration{at(0.50), at(0.95)}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
