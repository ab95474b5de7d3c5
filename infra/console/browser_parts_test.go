package console_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// chartFamily is the analytics family a charted figure is answered by.
var chartFamily = map[string]string{
	"csat_pct": "satisfaction", "nps": "satisfaction", "churn_rate": "churn",
	"complaint_rate": "complaints", "resolution_rate": "complaints", "first_response_median_s": "complaints",
}

// chartCell is one month of a chart as the page shows it.
type chartCell struct{ Month, Value, API string }

type chartTable struct {
	Name   string
	Months []chartCell
}

const chartsJS = `[...document.querySelectorAll('.chart-box')].map(b => ({Name: b.querySelector('svg').dataset.chart,
  Months: [...b.querySelectorAll('td[data-month]')].map(td => ({Month: td.dataset.month, Value: td.dataset.value, API: td.dataset.api}))}))`

// checkCharts compares the overview's charts with the API: every
// customer, each chart is its family's report by month over [from, to)
// (complaints: each month's report, which must equal it); with a group (groupBy, key), each month is that group in the family's
// report of the month grouped by groupBy. It returns how many figures it
// compared.
func checkCharts(t *testing.T, b *driver, m *apptest.Main, from, to time.Time, groupBy, key string) int {
	t.Helper()
	rfc := func(t time.Time) string { return t.Format(time.RFC3339) }
	charts := run(b, chromedp.Evaluate[[]chartTable](chartsJS))
	if len(charts) != 6 {
		t.Fatalf("%d charts", len(charts))
	}
	answers := map[string][]map[string]string{}
	answer := func(path string) []map[string]string {
		if a, ok := answers[path]; ok {
			return a
		}
		answers[path] = apiGroups(t, m, path)
		return answers[path]
	}
	checked := 0
	for _, chart := range charts {
		family := chartFamily[chart.Name]
		if family == "" {
			t.Fatalf("chart %q is not a charted figure", chart.Name)
		}
		var months []time.Time
		for mo := from; mo.Before(to); mo = mo.AddDate(0, 1, 0) {
			months = append(months, mo)
		}
		if len(chart.Months) != len(months) || len(months) != 12 {
			t.Errorf("chart %s has %d months, want %d", chart.Name, len(chart.Months), len(months))
			continue
		}
		for i, cell := range chart.Months {
			var want map[string]string
			var path string
			byMonth := "/v1/analytics/" + family + "?" + url.Values{"from": {rfc(from)}, "to": {rfc(to)}, "group_by": {"month"}}.Encode()
			switch {
			case key == "" && family != "complaints":
				path = byMonth
				want = answer(path)[i]
			case key == "":
				// Every customer's complaint figures are asked month by
				// month: each month's report, which equals the report by
				// month.
				path = "/v1/analytics/" + family + "?" + url.Values{"from": {rfc(months[i])}, "to": {rfc(months[i].AddDate(0, 1, 0))}}.Encode()
				one := answer(path)
				if len(one) != 1 || one[0]["key"] != "all" {
					t.Fatalf("%s: %v", path, one)
				}
				want = maps.Clone(one[0])
				want["key"] = months[i].Format("2006-01")
				if m := answer(byMonth)[i]; m["key"] != want["key"] || m[chart.Name] != want[chart.Name] {
					t.Errorf("%s %s: the month's report says %s, the report by month %s %s", chart.Name, want["key"], want[chart.Name], m["key"], m[chart.Name])
				}
			default:
				path = "/v1/analytics/" + family + "?" + url.Values{"from": {rfc(months[i])}, "to": {rfc(months[i].AddDate(0, 1, 0))}, "group_by": {groupBy}}.Encode()
				for _, g := range answer(path) {
					if g["key"] == key {
						want = maps.Clone(g)
					}
				}
				if want == nil {
					t.Fatalf("%s has no group %q: %v", path, key, answer(path))
				}
				want["key"] = months[i].Format("2006-01")
			}
			if cell.API != path {
				t.Errorf("chart %s %s names %s, want %s", chart.Name, cell.Month, cell.API, path)
			}
			if cell.Month != want["key"] || cell.Value != want[chart.Name] {
				t.Errorf("chart %s %s = %s, API %s %s (%s)", chart.Name, cell.Month, cell.Value, want["key"], want[chart.Name], path)
			}
			checked++
		}
	}
	return checked
}

// seedGoals sets three goals through the API: two on the enterprise
// segment, one over and one not yet begun (so that their judgement does
// not move while the test reads them), and one on every customer.
func seedGoals(t *testing.T, m *apptest.Main, from, to time.Time) {
	t.Helper()
	rfc := func(t time.Time) string { return t.Format(time.RFC3339) }
	for _, g := range []map[string]any{
		{"name": "Enterprise CSAT", "figure": "csat_pct", "comparator": "at_least", "target": 80, "from": rfc(from), "to": rfc(to.AddDate(0, -1, 0)), "scope": map[string]any{"segment": "enterprise"}},
		{"name": "Enterprise complaints next year", "figure": "complaint_rate", "comparator": "at_most", "target": 5, "from": rfc(to.AddDate(1, 0, 0)), "to": rfc(to.AddDate(2, 0, 0)), "scope": map[string]any{"segment": "enterprise"}},
		{"name": "First response", "figure": "first_response_median_s", "comparator": "at_most", "target": 3600, "from": rfc(from), "to": rfc(to.AddDate(0, -1, 0))},
	} {
		res := m.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/goals", Key: m.Keys["analyst"], Body: g})
		if res.Status != http.StatusCreated {
			t.Fatalf("set goal: %d %s", res.Status, res.Body)
		}
		var pos struct {
			Position json.Number `json:"position"`
		}
		res.JSON(t, &pos)
		waitForPosition(t, m, pos.Position)
	}
}

// checkGoals compares the overview's goals with GET /v1/goals: the goals
// scoped to segment (every goal when ""), each figure of each.
func checkGoals(t *testing.T, b *driver, m *apptest.Main, segment string, want int) int {
	t.Helper()
	rows := run(b, chromedp.Evaluate[[]map[string]string](`[...document.querySelectorAll('table.goals tbody tr[data-id]')].map(r =>
	  Object.assign({id: r.dataset.id, status: r.querySelector('[data-field=status]').textContent},
	    Object.fromEntries([...r.querySelectorAll('[data-value]')].map(e => [e.dataset.field, e.dataset.value]))))`))
	var list struct {
		Items []map[string]json.RawMessage `json:"items"`
	}
	m.Get(t, "analyst", "/v1/goals?limit=20").JSON(t, &list)
	var api []map[string]json.RawMessage
	for _, g := range list.Items {
		var scope map[string]string
		_ = json.Unmarshal(g["scope"], &scope)
		if segment == "" || scope["segment"] == segment {
			api = append(api, g)
		}
	}
	if len(rows) != len(api) || len(rows) != want {
		t.Fatalf("the overview shows %d goals, the API %d, want %d: %v", len(rows), len(api), want, rows)
	}
	checked := 0
	for i, row := range rows {
		g := api[i]
		var id, status string
		_ = json.Unmarshal(g["id"], &id)
		_ = json.Unmarshal(g["status"], &status)
		if row["id"] != id || row["status"] != strings.ReplaceAll(status, "_", " ") {
			t.Errorf("goal %d: page %v, API id %s status %s", i, row, id, status)
		}
		for _, f := range []string{"target", "baseline", "current", "progress", "elapsed_pct", "projected"} {
			if !sameNumber(row[f], string(g[f])) {
				t.Errorf("goal %s %s = %s, API %s", id, f, row[f], g[f])
			}
			checked++
		}
	}
	return checked
}

// sameNumber says two JSON numbers (or nulls) are the same value.
func sameNumber(a, b string) bool {
	if a == "null" || b == "null" {
		return a == b
	}
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	return err1 == nil && err2 == nil && x == y
}

// seedValueCustomer makes a customer with purchases, a refund, an award
// and a redemption, for the customer page's value and loyalty.
func seedValueCustomer(t *testing.T, m *apptest.Main) string {
	t.Helper()
	res := m.Post(t, "/v1/customers", map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "segment": "smb", "tier": "B"})
	if res.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	id := res.Map(t)["customer_id"].(string)
	now := time.Now().UTC()
	var last *apptest.Response
	// The oldest purchase's points expire within 30 days.
	for i, p := range []struct {
		amount string
		ago    time.Time
	}{{"129.90", now.AddDate(0, 0, -3)}, {"45.00", now.AddDate(0, -4, 0)}, {"300.00", now.AddDate(0, -11, -10)}} {
		last = m.Post(t, "/v1/customers/"+id+"/purchases", map[string]any{"amount": p.amount, "currency": "EUR",
			"occurred_at": p.ago.Format(time.RFC3339), "reference": "ORD-" + strconv.Itoa(i)})
		if last.Status != http.StatusCreated {
			t.Fatalf("purchase: %d %s", last.Status, last.Body)
		}
	}
	purchase := last.Map(t)["purchase_id"].(string)
	for _, step := range []struct {
		path string
		body map[string]any
	}{
		{"/purchases/" + purchase + "/refund", map[string]any{"amount": "100.00"}},
		{"/loyalty/awards", map[string]any{"points": 50, "reason": "birthday"}},
		{"/loyalty/redemptions", map[string]any{"points": 30, "reason": "voucher"}},
	} {
		last = m.Post(t, "/v1/customers/"+id+step.path, step.body)
		if last.Status != http.StatusCreated && last.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", step.path, last.Status, last.Body)
		}
	}
	var pos struct {
		Position json.Number `json:"position"`
	}
	last.JSON(t, &pos)
	waitForPosition(t, m, pos.Position)
	return id
}

// checkValue compares the customer page's value and loyalty with GET
// /v1/customers/{id} and GET …/loyalty.
func checkValue(t *testing.T, b *driver, m *apptest.Main, id string) int {
	t.Helper()
	fields := run(b, chromedp.Evaluate[map[string]string](`Object.fromEntries([...document.querySelectorAll('[data-field]')].map(e => [e.dataset.field, e.textContent.trim()]))`))
	ledger := run(b, chromedp.Evaluate[[]map[string]string](`[...document.querySelectorAll('table.ledger tbody tr[data-id]')].map(r => ({id: r.dataset.id, kind: r.dataset.kind, points: r.dataset.points}))`))
	var cu struct {
		Value struct {
			RecencyDays *int    `json:"recency_days"`
			Frequency   int     `json:"frequency"`
			Monetary    string  `json:"monetary"`
			Currency    *string `json:"currency"`
			R           *int    `json:"r"`
			F           *int    `json:"f"`
			M           *int    `json:"m"`
			Segment     *string `json:"rfm_segment"`
		} `json:"value"`
	}
	m.Get(t, "writer", "/v1/customers/"+id).JSON(t, &cu)
	var loyalty struct {
		Balance  int64 `json:"balance"`
		Expiring int64 `json:"expiring_30d"`
		Ledger   []struct {
			Kind    string `json:"kind"`
			Points  int64  `json:"points"`
			EntryID string `json:"entry_id"`
		} `json:"ledger"`
	}
	m.Get(t, "writer", "/v1/customers/"+id+"/loyalty").JSON(t, &loyalty)
	intText := func(p *int) string {
		if p == nil {
			return "—"
		}
		return strconv.Itoa(*p)
	}
	str := func(p *string) string {
		if p == nil {
			return "—"
		}
		return *p
	}
	v := cu.Value
	if v.Segment == nil || v.Frequency != 3 || loyalty.Balance == 0 || loyalty.Expiring == 0 || len(loyalty.Ledger) < 5 {
		t.Fatalf("the seeded customer's value %+v, loyalty %+v: not what the test needs", v, loyalty)
	}
	want := map[string]string{"recency_days": intText(v.RecencyDays), "frequency": strconv.Itoa(v.Frequency), "monetary": v.Monetary,
		"currency": str(v.Currency), "r": intText(v.R), "f": intText(v.F), "m": intText(v.M),
		"balance": strconv.FormatInt(loyalty.Balance, 10), "expiring_30d": strconv.FormatInt(loyalty.Expiring, 10),
		"ledger_entries": strconv.Itoa(len(loyalty.Ledger))}
	checked := 0
	for name, w := range want {
		if fields[name] != w {
			t.Errorf("customer %s = %q, API %q", name, fields[name], w)
		}
		checked++
	}
	if seg := fields["rfm_segment"]; seg != strings.ReplaceAll(*v.Segment, "_", " ") {
		t.Errorf("rfm segment %q, API %q", seg, *v.Segment)
	}
	if len(ledger) != len(loyalty.Ledger) {
		t.Fatalf("ledger: %d rows, API %d", len(ledger), len(loyalty.Ledger))
	}
	for i, e := range loyalty.Ledger {
		if ledger[i]["id"] != e.EntryID || ledger[i]["kind"] != e.Kind || ledger[i]["points"] != strconv.FormatInt(e.Points, 10) {
			t.Errorf("ledger row %d: %v, API %+v", i, ledger[i], e)
		}
		checked++
	}
	return checked
}

// seedWebhooks subscribes two receivers: one that answers 204 and one
// that answers 500, so that one subscription is healthy and the other
// fails. Events after this are delivered to both.
func seedWebhooks(t *testing.T, m *apptest.Main) (ok, failing string) {
	t.Helper()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(good.Close)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	t.Cleanup(bad.Close)
	create := func(target, description string) string {
		res := m.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/webhooks", Key: m.Keys["admin"],
			Body: map[string]any{"url": target + "/hook", "description": description}})
		if res.Status != http.StatusCreated {
			t.Fatalf("create webhook: %d %s", res.Status, res.Body)
		}
		return res.Map(t)["id"].(string)
	}
	return create(good.URL, "crm sync"), create(bad.URL, "data lake (down)")
}

type deliveries struct {
	Items []struct {
		ID         int64   `json:"id"`
		State      string  `json:"state"`
		Attempts   int     `json:"attempts"`
		LastStatus *int    `json:"last_status"`
		LastError  *string `json:"last_error"`
	} `json:"items"`
}

// webhooksSettled waits until the healthy subscription has delivered
// everything and the failing one is marked failing after failed
// attempts, so that the operations page and the API see the same.
func webhooksSettled(t *testing.T, m *apptest.Main, ok, failing string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var pending, bad deliveries
		m.Get(t, "admin", "/v1/webhooks/"+ok+"/deliveries?state=pending").JSON(t, &pending)
		m.Get(t, "admin", "/v1/webhooks/"+failing+"/deliveries?state=pending&limit=500").JSON(t, &bad)
		var sub struct {
			State string `json:"state"`
		}
		m.Get(t, "admin", "/v1/webhooks/"+failing).JSON(t, &sub)
		// Once failing, the subscription holds its deliveries: nothing
		// moves until it is enabled again.
		tried := false
		for _, d := range bad.Items {
			tried = tried || d.Attempts > 0
		}
		if len(pending.Items) == 0 && tried && sub.State == "failing" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhooks did not settle: healthy backlog %d, failing %s with %d pending", len(pending.Items), sub.State, len(bad.Items))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkWebhooks compares the operations page's webhooks with GET
// /v1/webhooks and each one's delivery log.
func checkWebhooks(t *testing.T, b *driver, m *apptest.Main, failing string) int {
	t.Helper()
	rows := run(b, chromedp.Evaluate[[]map[string]string](`[...document.querySelectorAll('table.webhooks tbody tr[data-id]')].map(r => ({id: r.dataset.id,
	  state: r.querySelector('[data-field=state]').firstChild.textContent.trim(), checkpoint: r.querySelector('[data-field=checkpoint]').textContent,
	  backlog: r.querySelector('[data-field=backlog]').textContent, failures: r.querySelector('[data-field=failures]').textContent}))`))
	shown := run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll('table.failures[data-subscription="`+failing+`"] tr[data-delivery]')].map(r => r.dataset.delivery)`))
	var list struct {
		Items []struct {
			ID         string `json:"id"`
			State      string `json:"state"`
			Checkpoint uint64 `json:"checkpoint"`
		} `json:"items"`
	}
	m.Get(t, "admin", "/v1/webhooks").JSON(t, &list)
	if len(rows) != len(list.Items) || len(rows) != 2 {
		t.Fatalf("operations lists %d webhooks, API %d", len(rows), len(list.Items))
	}
	checked := 0
	for i, s := range list.Items {
		var pending, recent deliveries
		m.Get(t, "admin", "/v1/webhooks/"+s.ID+"/deliveries?state=pending&limit=500").JSON(t, &pending)
		m.Get(t, "admin", "/v1/webhooks/"+s.ID+"/deliveries?limit=100").JSON(t, &recent)
		var failed []string
		for _, d := range recent.Items {
			if d.LastError != nil || (d.LastStatus != nil && (*d.LastStatus < 200 || *d.LastStatus > 299)) {
				failed = append(failed, strconv.FormatInt(d.ID, 10))
			}
		}
		row := rows[i]
		if row["id"] != s.ID || row["state"] != s.State || row["checkpoint"] != strconv.FormatUint(s.Checkpoint, 10) ||
			row["backlog"] != strconv.Itoa(len(pending.Items)) || row["failures"] != strconv.Itoa(len(failed)) {
			t.Errorf("webhook row %v; API %+v, backlog %d, %d failures", row, s, len(pending.Items), len(failed))
		}
		if s.ID == failing {
			if s.State != "failing" || len(failed) == 0 || len(pending.Items) == 0 {
				t.Errorf("the failing subscription: %+v, %d pending, %d failures", s, len(pending.Items), len(failed))
			}
			if want := failed[:min(10, len(failed))]; len(shown) != len(want) || (len(want) > 0 && shown[0] != want[0]) {
				t.Errorf("failures listed %v, API %v", shown, want)
			}
		}
		checked += 5
	}
	return checked
}

// download clicks a download link and returns the file the browser saved
// (the download behaviour is set already).
func (d *driver) download(dir, sel string) []byte {
	d.t.Helper()
	progress := chromedp.Events(d.ctx, cdpbrowser.DownloadProgress)
	d.do(chromedp.Click(chromedp.CSS(sel)))
	for ev, err := range progress {
		if err != nil {
			d.t.Fatal(err)
		}
		switch ev.State {
		case cdpbrowser.DownloadProgressStateCompleted:
			body, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			if err != nil {
				d.t.Fatal(err)
			}
			return body
		case cdpbrowser.DownloadProgressStateCanceled:
			d.t.Fatalf("download of %s canceled", sel)
		}
	}
	d.t.Fatalf("no download from %s", sel)
	return nil
}

// checkMonthsCSV compares the charts' CSV with the charts: a row per
// month with the group's key, a column per charted figure, each cell the
// value the chart's table holds ("" for null).
func checkMonthsCSV(t *testing.T, body []byte, ov overviewPage, key string) {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 13 {
		t.Fatalf("monthly CSV (%v): %d rows:\n%s", err, len(rows), body)
	}
	head := rows[0]
	if head[0] != "month" || head[1] != "segment" || len(head) != 2+len(ov.Tables) {
		t.Fatalf("monthly CSV header %v", head)
	}
	for i, row := range rows[1:] {
		if row[1] != key {
			t.Errorf("monthly CSV row %d is %q's", i, row[1])
		}
		for j, name := range head[2:] {
			for _, chart := range ov.Tables {
				if chart.Name != name {
					continue
				}
				cell := chart.Months[i]
				want := cell.Value
				if want == "null" {
					want = ""
				}
				if row[0] != cell.Month || row[2+j] != want {
					t.Errorf("monthly CSV %s %s = %q, chart %s %q", row[0], name, row[2+j], cell.Month, want)
				}
			}
		}
	}
}
