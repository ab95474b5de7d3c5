package console_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
	"github.com/rapport-crm/rapport/infra/postgres/postgrestest"
	"github.com/rapport-crm/rapport/projections/projectiontest"
)

// TestConsoleRenderTimes measures each page's time to last byte beside
// the API calls it makes, in the same run on the same data, medians of
// interleaved rounds. It is a measurement, not a check: it runs with
// RAPPORT_CONSOLE_EVENTS=n (a generated year of n events, about n/10
// customers, loaded in bulk), e.g.
//
//	RAPPORT_CONSOLE_EVENTS=1000000 go test ./infra/console -run TestConsoleRenderTimes -v -timeout 60m
func TestConsoleRenderTimes(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("RAPPORT_CONSOLE_EVENTS"))
	if n <= 0 {
		t.Skip("set RAPPORT_CONSOLE_EVENTS to measure the pages' render times")
	}
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	master := bytes.Repeat([]byte{7}, 32)
	keys, err := postgres.NewKeyring(pool, master, postgres.KeyringConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	appends := projectiontest.NewGenerator(42).Plan(n)
	if err := projectiontest.Encode(ctx, eventcodec.New(domain.NewRegistry(), keys), appends, 4); err != nil {
		t.Fatal(err)
	}
	last, err := postgrestest.BulkLoad(ctx, pool, appends)
	if err != nil {
		t.Fatal(err)
	}
	customers := map[string]int{}
	for _, a := range appends {
		customers[a.Customer.String()] += len(a.Events)
	}
	t.Logf("loaded %d events of %d customers in %s", n, len(customers), time.Since(t0).Round(time.Second))
	t0 = time.Now()
	// The service on the loaded database (not apptest's: it would make a
	// database of its own first).
	svc, err := app.New(app.Config{DatabaseURL: dbURL + "&pool_max_conns=8", Addr: "127.0.0.1:0", MasterKey: master,
		ServeHTTP: true, RunProjections: true, RateLimit: 1e6, RateBurst: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Close(context.Background())
	_, adminKey, err := svc.APIKeys.Create(ctx, "admin", []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	m := &apptest.Main{Main: svc, URL: svc.HTTP.URL(), Keys: map[string]string{"admin": adminKey}}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Minute)
	defer cancel()
	if err := m.Engine.WaitForPosition(wctx, last); err != nil {
		t.Fatal(err)
	}
	t.Logf("projected in %s", time.Since(t0).Round(time.Second))
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}

	// The busiest customer, for the customer and audit pages.
	var busiest string
	for id, k := range customers {
		if busiest == "" || k > customers[busiest] {
			busiest = id
		}
	}
	now := time.Now().UTC()
	from := time.Date(now.Year(), now.Month()-11, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	rfc := func(t time.Time) string { return t.Format(time.RFC3339) }
	kpis := func(f, t time.Time, g string) string {
		return "/v1/analytics/kpis?" + url.Values{"from": {rfc(f)}, "to": {rfc(t)}, "group_by": {g}}.Encode()
	}
	cust := "/v1/customers/" + busiest
	pages := []struct {
		name, page string
		api        []string
	}{
		{"overview", "/console/overview?" + url.Values{"from": {rfc(from)}, "to": {rfc(to)}, "group_by": {"segment"}, "key": {"enterprise"}}.Encode(),
			[]string{kpis(from, to, "segment"), kpis(from.Add(-to.Sub(from)), from, "segment"), kpis(from, to, "month")}},
		{"work complaints", "/console/work?queue=complaints", []string{"/v1/work/complaints"}},
		{"work at-risk", "/console/work?queue=at-risk", []string{"/v1/work/at-risk"}},
		{"customers", "/console/customers?segment=enterprise", []string{"/v1/customers?segment=enterprise"}},
		{"customer", "/console/customers/" + busiest, []string{cust, cust + "/complaints", cust + "/surveys", cust + "/contacts?limit=20", cust + "/follow-ups?limit=20", cust + "/history"}},
		{"audit", "/console/audit/" + busiest, []string{cust + "/events", cust + "/state", cust + "/verification"}},
		{"operations", "/console/operations", []string{"/v1/projections"}},
	}
	b := newBrowser(t, m.URL)
	b.mustSignIn(m.Keys["admin"])
	api := &http.Client{Timeout: time.Minute}
	timeAPI := func(path string) time.Duration {
		req, _ := http.NewRequest(http.MethodGet, m.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+m.Keys["admin"])
		start := time.Now()
		res, err := api.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, res.StatusCode, buf.String())
		}
		return time.Since(start)
	}
	timePage := func(path string) time.Duration {
		start := time.Now()
		p := b.get(path)
		if p.Status != http.StatusOK {
			t.Fatalf("%s: %d %.300s", path, p.Status, p.Body)
		}
		return time.Since(start)
	}
	const rounds = 7
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("%d customers, %d events; busiest customer %s has %d events; load average %s", len(customers), n, busiest, customers[busiest], bytes.TrimSpace(load))
	t.Logf("%-16s %10s %10s %7s", "page", "page ms", "API ms", "ratio")
	for _, p := range pages {
		timePage(p.page) // warm
		var pt, at []time.Duration
		for range rounds {
			pt = append(pt, timePage(p.page))
			var sum time.Duration
			for _, a := range p.api {
				sum += timeAPI(a)
			}
			at = append(at, sum)
		}
		pm, am := median(pt), median(at)
		t.Logf("%-16s %10.1f %10.1f %7.2f   (API: %d calls)", p.name, ms(pm), ms(am), float64(pm)/float64(am), len(p.api))
	}
	load, _ = os.ReadFile("/proc/loadavg")
	t.Logf("load average after: %s", bytes.TrimSpace(load))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
