package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app"
)

// BenchmarkConsolePages measures each console page's server time (to the
// last byte, through HTTP on loopback) on a seeded database, beside the
// API requests whose answers the page shows, asked one after another, in
// the same run. It reports each one's p50 and p95 (ms) besides the mean.
// It needs a database seeded with `rapport seed` and its master key, e.g.
// a copy of the 100k template:
//
//	createdb -h 127.0.0.1 -U postgres -T scale100k_tpl console_100k
//	source /work/notes/scale.env
//	RAPPORT_CONSOLE_BENCH_DB=postgres://postgres@127.0.0.1:5432/console_100k \
//	  nice -n 10 go test ./infra/console -run '^$' -bench ConsolePages -benchtime 10x -timeout 60m
//
// The service runs its projectors on that database (they are caught up),
// as `rapport serve` does; a sign-in and an API key are created in it.
func BenchmarkConsolePages(b *testing.B) {
	dbURL := os.Getenv("RAPPORT_CONSOLE_BENCH_DB")
	if dbURL == "" {
		b.Skip("set RAPPORT_CONSOLE_BENCH_DB (and RAPPORT_MASTER_KEY) to a seeded database to measure the pages")
	}
	master, err := app.ParseMasterKey(os.Getenv("RAPPORT_MASTER_KEY"))
	if err != nil {
		b.Fatal(err)
	}
	if !strings.Contains(dbURL, "pool_max_conns") {
		sep := "?"
		if strings.Contains(dbURL, "?") {
			sep = "&"
		}
		dbURL += sep + "pool_max_conns=8"
	}
	ctx := context.Background()
	svc, err := app.New(app.Config{DatabaseURL: dbURL, Addr: "127.0.0.1:0", MasterKey: master,
		ServeHTTP: true, RunProjections: true, RateLimit: 1e6, RateBurst: 1e6})
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.Open(ctx); err != nil {
		b.Fatal(err)
	}
	defer svc.Close(context.Background())
	_, adminKey, err := svc.APIKeys.Create(ctx, "console-bench-"+strconv.FormatInt(time.Now().UnixNano(), 36), []string{"admin"})
	if err != nil {
		b.Fatal(err)
	}
	base := svc.HTTP.URL()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	// The busiest customer (most events) for the customer and audit
	// pages, the one with the longest loyalty ledger for value.
	var busiest, buyer string
	if err := pool.QueryRow(ctx, `SELECT substr(stream, length('customer-') + 1) FROM eventstore.events
		WHERE stream LIKE 'customer-%' GROUP BY stream ORDER BY max(revision) DESC LIMIT 1`).Scan(&busiest); err != nil {
		b.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT customer_id::text FROM readmodels.loyalty_ledger GROUP BY 1 ORDER BY count(*) DESC LIMIT 1`).Scan(&buyer); err != nil {
		b.Logf("no loyalty ledger to pick a buyer from (%v): the busiest customer stands in", err)
		buyer = busiest
	}
	now := time.Now().UTC()
	from := time.Date(now.Year(), now.Month()-11, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	rfc := func(t time.Time) string { return t.Format(time.RFC3339) }
	// Goals, if the seed has none: the overview judges each one it shows
	// (up to two analytics reports each).
	var goalCount int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM readmodels.goals`).Scan(&goalCount); err != nil {
		b.Fatal(err)
	}
	if goalCount == 0 {
		setGoals(b, base, adminKey, svc, []string{
			`{"name": "CSAT", "figure": "csat_pct", "comparator": "at_least", "target": 80, "from": "` + rfc(from) + `", "to": "` + rfc(to) + `"}`,
			`{"name": "Enterprise churn", "figure": "churn_rate", "comparator": "at_most", "target": 5, "from": "` + rfc(from) + `", "to": "` + rfc(to) + `", "scope": {"segment": "enterprise"}}`,
			`{"name": "First response", "figure": "first_response_median_s", "comparator": "at_most", "target": 3600, "from": "` + rfc(from) + `", "to": "` + rfc(to) + `"}`,
		})
	}
	report := func(family string, f, t time.Time, g string) string {
		q := url.Values{"from": {rfc(f)}, "to": {rfc(t)}}
		if g != "" {
			q.Set("group_by", g)
		}
		return "/v1/analytics/" + family + "?" + q.Encode()
	}
	prevFrom := from.Add(-to.Sub(from))
	// The charts' requests: satisfaction and churn by month, complaints
	// month by month (see chartQuery); for one segment, each family month
	// by month.
	monthly := []string{report("satisfaction", from, to, "month"), report("churn", from, to, "month")}
	monthlyNow := []string{report("satisfaction", from, now, "month"), report("churn", from, now, "month")}
	var monthlyEnterprise []string
	for m := from; m.Before(to); m = m.AddDate(0, 1, 0) {
		monthly = append(monthly, report("complaints", m, m.AddDate(0, 1, 0), ""))
		if end := m.AddDate(0, 1, 0); m.Before(now) {
			if end.After(now) {
				end = now
			}
			monthlyNow = append(monthlyNow, report("complaints", m, end, ""))
		}
	}
	for _, f := range []string{"satisfaction", "churn", "complaints"} {
		for m := from; m.Before(to); m = m.AddDate(0, 1, 0) {
			monthlyEnterprise = append(monthlyEnterprise, report(f, m, m.AddDate(0, 1, 0), "segment"))
		}
	}
	cust := "/v1/customers/" + busiest
	pages := []struct {
		name, page string
		api        []string
	}{
		// The overview as a user lands on it: the default period (the 90
		// days up to now), charts of the 12 months up to now.
		{"overview-default", "/console/overview", append([]string{report("kpis", now.Add(-90*24*time.Hour), now, ""),
			report("kpis", now.Add(-180*24*time.Hour), now.Add(-90*24*time.Hour), ""), "/v1/goals?limit=20"}, monthlyNow...)},
		{"overview", "/console/overview?" + url.Values{"from": {rfc(from)}, "to": {rfc(to)}}.Encode(),
			append([]string{report("kpis", from, to, ""), report("kpis", prevFrom, from, ""), "/v1/goals?limit=20"}, monthly...)},
		{"overview-segment", "/console/overview?" + url.Values{"from": {rfc(from)}, "to": {rfc(to)}, "group_by": {"segment"}}.Encode(),
			append([]string{report("kpis", from, to, ""), report("kpis", prevFrom, from, ""), report("kpis", from, to, "segment"), "/v1/goals?limit=20"}, monthly...)},
		{"overview-enterprise", "/console/overview?" + url.Values{"from": {rfc(from)}, "to": {rfc(to)}, "group_by": {"segment"}, "key": {"enterprise"}}.Encode(),
			append([]string{report("kpis", from, to, "segment"), report("kpis", prevFrom, from, "segment"), "/v1/goals?limit=20"}, monthlyEnterprise...)},
		{"work-complaints", "/console/work?queue=complaints", []string{"/v1/work/complaints"}},
		{"work-at-risk", "/console/work?queue=at-risk", []string{"/v1/work/at-risk"}},
		{"work-follow-ups", "/console/work?queue=follow-ups", []string{"/v1/work/follow-ups"}},
		{"work-contact-due", "/console/work?queue=contact-due", []string{"/v1/work/contact-due"}},
		{"customers", "/console/customers?segment=enterprise", []string{"/v1/customers?segment=enterprise"}},
		{"customer", "/console/customers/" + busiest, []string{cust, cust + "/complaints", cust + "/surveys", cust + "/contacts?limit=20",
			cust + "/follow-ups?limit=20", cust + "/history", cust + "/loyalty"}},
		{"customer-buyer", "/console/customers/" + buyer, []string{"/v1/customers/" + buyer, "/v1/customers/" + buyer + "/complaints",
			"/v1/customers/" + buyer + "/surveys", "/v1/customers/" + buyer + "/contacts?limit=20", "/v1/customers/" + buyer + "/follow-ups?limit=20",
			"/v1/customers/" + buyer + "/history", "/v1/customers/" + buyer + "/loyalty"}},
		{"audit", "/console/audit/" + busiest, []string{cust + "/events", cust + "/state", cust + "/verification"}},
		{"operations", "/console/operations", []string{"/v1/projections", "/v1/webhooks"}},
	}
	br := newBrowser(b, base)
	br.mustSignIn(adminKey)
	api := &http.Client{Timeout: 5 * time.Minute}
	get := func(path string, page bool) time.Duration {
		start := time.Now()
		var status int
		var body string
		if page {
			p := br.get(path)
			status, body = p.Status, p.Body
		} else {
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			req.Header.Set("Authorization", "Bearer "+adminKey)
			res, err := api.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(res.Body)
			res.Body.Close()
			status, body = res.StatusCode, buf.String()
		}
		d := time.Since(start)
		if status != http.StatusOK {
			b.Fatalf("%s: %d %.300s", path, status, body)
		}
		return d
	}
	load, _ := os.ReadFile("/proc/loadavg")
	b.Logf("busiest customer %s, buyer %s; load average %s", busiest, buyer, bytes.TrimSpace(load))
	for _, p := range pages {
		get(p.page, true) // warm: plans, caches, connections
		b.Run(p.name, func(b *testing.B) {
			var times []time.Duration
			for b.Loop() {
				times = append(times, get(p.page, true))
			}
			reportPercentiles(b, times)
		})
		b.Run(p.name+"/api", func(b *testing.B) {
			var times []time.Duration
			each := make([][]time.Duration, len(p.api))
			for b.Loop() {
				var sum time.Duration
				for i, a := range p.api {
					d := get(a, false)
					each[i] = append(each[i], d)
					sum += d
				}
				times = append(times, sum)
			}
			reportPercentiles(b, times)
			b.ReportMetric(float64(len(p.api)), "calls")
			// What the requests cost, the slowest first (it bounds the
			// page, whose reads run at once), and by endpoint (a filtered
			// overview asks 36 monthly reports).
			type cost struct {
				what  string
				ms    float64
				calls int
			}
			var calls []cost
			byEndpoint := map[string]*cost{}
			for i, a := range p.api {
				if len(each[i]) == 0 {
					continue
				}
				slices.Sort(each[i])
				c := cost{what: a, ms: ms(each[i][len(each[i])/2]), calls: 1}
				calls = append(calls, c)
				ep, _, _ := strings.Cut(a, "?")
				if byEndpoint[ep] == nil {
					byEndpoint[ep] = &cost{what: ep}
				}
				byEndpoint[ep].ms += c.ms
				byEndpoint[ep].calls++
			}
			slices.SortFunc(calls, func(x, y cost) int { return int(y.ms - x.ms) })
			var lines []string
			for _, c := range calls[:min(4, len(calls))] {
				lines = append(lines, fmt.Sprintf("%8.1f ms p50  %s", c.ms, c.what))
			}
			for _, c := range byEndpoint {
				if c.calls > 1 {
					lines = append(lines, fmt.Sprintf("%8.1f ms in all  %d × %s", c.ms, c.calls, c.what))
				}
			}
			b.Logf("%s, the slowest requests:\n%s", p.name, strings.Join(lines, "\n"))
		})
	}
	load, _ = os.ReadFile("/proc/loadavg")
	b.Logf("load average after: %s", bytes.TrimSpace(load))
}

// reportPercentiles reports the p50 and p95 of the times, in ms.
func reportPercentiles(b *testing.B, times []time.Duration) {
	if len(times) == 0 {
		return
	}
	slices.Sort(times)
	at := func(q float64) float64 {
		i := int(q*float64(len(times))+0.5) - 1
		return ms(times[max(0, min(i, len(times)-1))])
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.95), "p95-ms")
}

// setGoals sets goals through the API and waits until they are projected.
func setGoals(b *testing.B, base, key string, svc *app.Main, bodies []string) {
	var last uint64
	for _, body := range bodies {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/goals", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var out struct {
			Position uint64 `json:"position"`
		}
		err = json.NewDecoder(res.Body).Decode(&out)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusCreated {
			b.Fatalf("set goal: %d %v", res.StatusCode, err)
		}
		last = out.Position
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := svc.Engine.WaitForPosition(ctx, eventstore.Position(last)); err != nil {
		b.Fatal(err)
	}
}
