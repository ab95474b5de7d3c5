package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// chromiumPath finds a Chromium; "" when the machine has none.
func chromiumPath() string {
	if p := os.Getenv("RAPPORT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestConsoleInABrowser drives headless Chromium through the console as a
// user would — sign-in, every page, the filters, the as-of time line, a
// CSV download, a form — and checks that every figure a page shows equals
// the API's answer to the same query. It saves a screenshot of each page
// (in RAPPORT_CONSOLE_SCREENSHOTS when set, else a temporary directory).
func TestConsoleInABrowser(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" && os.Getenv("RAPPORT_BROWSER_TEST") == "required" {
		t.Fatal("no Chromium, and RAPPORT_BROWSER_TEST=required: install Debian's chromium package (apt-get install chromium)")
	}
	if chromium == "" {
		t.Skip("no Chromium: install Debian's chromium package (apt-get install chromium) to run the browser test")
	}
	started := time.Now()
	m := apptest.MustOpen(t, func(c *app.Config) {
		// Webhooks to the test's receivers, retried briefly: the failing
		// one is marked failing within the test.
		c.Webhooks.AllowTargets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.Webhooks.BaseDelay, c.Webhooks.MaxDelay, c.Webhooks.FailAfter = 50*time.Millisecond, 200*time.Millisecond, time.Second
	})
	const events = 600
	seeded := m.Generate(t, 23, events)
	hookOK, hookFailing := seedWebhooks(t, m)
	grace := seedAuditedCustomer(t, m)
	ada := seedValueCustomer(t, m)
	now := time.Now().UTC()
	from := time.Date(now.Year(), now.Month()-11, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	seedGoals(t, m, from, to)
	t.Logf("seeded %d customers and %d events in %s", len(seeded.Events)+2, events+11, time.Since(started).Round(time.Millisecond))

	browserStart := time.Now()
	shots := os.Getenv("RAPPORT_CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	downloads := t.TempDir()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	// The first Run starts the browser; it lives as long as ctx.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelTimeout()
	b := &driver{t: t, ctx: ctx, base: m.URL, shots: shots}

	// Sign in: the console sends an anonymous visitor to the form.
	b.do(chromedp.Navigate(m.URL + "/console/"))
	if loc := b.location(); !strings.Contains(loc, "/console/sign-in") {
		t.Fatalf("anonymous visitor at %s", loc)
	}
	b.do(chromedp.SendKeys(chromedp.CSS("#api_key"), m.Keys["admin"]))
	b.clickAndLoad("#sign-in")
	if loc := b.location(); !strings.HasSuffix(loc, "/console/overview") {
		t.Fatalf("after sign-in at %s: %s", loc, run(b, chromedp.Evaluate[string](`document.body.innerText`)))
	}
	if strings.Contains(b.location(), m.Keys["admin"]) {
		t.Fatal("the key is in the address")
	}
	// Keyboard: the first Tab reaches the skip link.
	b.do(chromedp.KeyEvent("\t"))
	if cls := run(b, chromedp.Evaluate[string](`document.activeElement.className`)); cls != "skip" {
		t.Errorf("first Tab focuses %q, want the skip link", cls)
	}

	// Overview of every customer over twelve months: the charts are the
	// families' reports by month, the goals every open goal.
	rfc := func(t time.Time) string { return t.Format(time.RFC3339) }
	b.do(chromedp.Navigate(m.URL + "/console/overview?" + url.Values{"from": {rfc(from)}, "to": {rfc(to)}}.Encode()))
	checked := checkCharts(t, b, m, from, to, "", "")
	checked += checkGoals(t, b, m, "", 3)

	// Overview, filtered through the form: the cards, the breakdown, the
	// charts month by month and the goals are the enterprise segment's.
	b.do(chromedp.SetValue(chromedp.CSS("#from"), from.Format("2006-01-02")),
		chromedp.SetValue(chromedp.CSS("#to"), to.Format("2006-01-02")),
		chromedp.SetValue(chromedp.CSS("#group_by"), "segment"),
		chromedp.SetValue(chromedp.CSS("#key"), "enterprise"))
	b.clickAndLoad("#apply")
	ov := run(b, chromedp.Evaluate[overviewPage](overviewJS))
	q := url.Values{"from": {rfc(from)}, "to": {rfc(to)}, "group_by": {"segment"}}
	wantQuery := "/v1/analytics/kpis?" + q.Encode()
	if ov.API != wantQuery {
		t.Errorf("the cards answer %s, want %s", ov.API, wantQuery)
	}
	enterprise := apiGroup(t, m, wantQuery, "enterprise")
	if len(ov.Cards) != 13 {
		t.Fatalf("%d cards", len(ov.Cards))
	}
	for _, c := range ov.Cards {
		want := enterprise[c.Name]
		if c.Value != want {
			t.Errorf("card %s = %s, API %s", c.Name, c.Value, want)
		}
		if f, err := strconv.ParseFloat(want, 64); err == nil && !strings.HasSuffix(c.Name, "_median_s") {
			if shown := strconv.FormatFloat(f, 'f', 1, 64); !strings.HasPrefix(c.Text, shown) && c.Text != want {
				t.Errorf("card %s reads %q for %s", c.Name, c.Text, want)
			}
		}
		checked++
	}
	prevQ := url.Values{"from": {rfc(from.Add(-to.Sub(from)))}, "to": {rfc(from)}, "group_by": {"segment"}}
	prev := apiGroup(t, m, "/v1/analytics/kpis?"+prevQ.Encode(), "enterprise")
	for _, c := range ov.Prev {
		if c.Value != prev[c.Name] {
			t.Errorf("previous %s = %s, API %s", c.Name, c.Value, prev[c.Name])
		}
		checked++
	}
	all := apiGroups(t, m, wantQuery)
	if len(ov.Rows) != len(all) || len(ov.Rows) == 0 {
		t.Errorf("breakdown has %d rows, API %d groups", len(ov.Rows), len(all))
	}
	for i, row := range ov.Rows {
		if i >= len(all) {
			break
		}
		for j, c := range ov.Cards {
			if j < len(row.Values) && row.Values[j] != all[i][c.Name] {
				t.Errorf("breakdown %s %s = %s, API %s", row.Key, c.Name, row.Values[j], all[i][c.Name])
			}
			checked++
		}
	}
	checked += checkCharts(t, b, m, from, to, "segment", "enterprise")
	// Each dot carries its month's value, which the table beside it
	// holds (compared with the API above).
	dots := 0
	for _, d := range ov.Dots {
		for _, chart := range ov.Tables {
			for _, cell := range chart.Months {
				if chart.Name == d.Name && cell.Month == d.Month && cell.Value != d.Value {
					t.Errorf("dot %s %s = %s, table %s", d.Name, d.Month, d.Value, cell.Value)
				}
			}
		}
		dots++
	}
	if len(ov.Tables) != 6 || dots < 12 {
		t.Errorf("%d charts, %d dots", len(ov.Tables), dots)
	}
	checked += checkGoals(t, b, m, "enterprise", 2)
	t.Logf("overview: %d figures and %d chart dots equal the API's", checked, dots)
	b.shot("overview")
	b.save("overview-charts", run(b, chromedp.Screenshot(chromedp.CSS("section[aria-labelledby=charts-h]"))))

	// The CSV download is the API's CSV of the same query, byte for byte.
	progress := chromedp.Events(ctx, cdpbrowser.DownloadProgress)
	b.do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: ptr(true)})
		return err
	}), chromedp.Click(chromedp.CSS("#csv")))
	var csvFile string
	for ev, err := range progress {
		if err != nil {
			t.Fatal(err)
		}
		if ev.State == cdpbrowser.DownloadProgressStateCompleted {
			csvFile = filepath.Join(downloads, ev.GUID)
			break
		}
		if ev.State == cdpbrowser.DownloadProgressStateCanceled {
			t.Fatal("download canceled")
		}
	}
	got, err := os.ReadFile(csvFile)
	if err != nil {
		t.Fatal(err)
	}
	want := m.Do(t, apptest.Request{Method: http.MethodGet, Path: wantQuery, Key: m.Keys["analyst"], Header: map[string]string{"Accept": "text/csv"}})
	if want.Status != http.StatusOK || !bytes.Equal(got, want.Body) || len(got) < 50 {
		t.Errorf("downloaded CSV differs from the API's (%d):\n%s\nAPI:\n%s", want.Status, got, want.Body)
	}
	// The monthly CSV is the charts as shown: the group's months, each
	// cell the value the chart holds (compared with the API above), empty
	// when undefined as in the API's CSV.
	checkMonthsCSV(t, b.download(downloads, "#csv-monthly"), ov, "enterprise")

	// A phone: the overview fits its width.
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	b.do(chromedp.Reload())
	if w := run(b, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 392 {
		t.Errorf("the overview is %d px wide on a 390 px phone", w)
	}
	b.shot("overview-phone")
	b.do(chromedp.EmulateViewport(1280, 900))

	// Work: the complaint queue filtered by severity, then the at-risk queue.
	b.do(chromedp.Navigate(m.URL + "/console/work?queue=complaints"))
	b.do(chromedp.SetValue(chromedp.CSS("#severity"), "high"))
	b.clickAndLoad("#apply")
	rows := run(b, chromedp.Evaluate[[]map[string]string](`[...document.querySelectorAll('table.queue tbody tr[data-id]')].map(r => ({id: r.dataset.id, sla: r.dataset.sla, customer: r.dataset.customer}))`))
	var queue struct {
		Items []struct {
			ID  string `json:"complaint_id"`
			SLA string `json:"sla"`
		} `json:"items"`
	}
	m.Get(t, "analyst", "/v1/work/complaints?severity=high").JSON(t, &queue)
	if len(rows) != len(queue.Items) || len(rows) == 0 {
		t.Errorf("complaint queue: %d rows, API %d", len(rows), len(queue.Items))
	}
	for i := range min(len(rows), len(queue.Items)) {
		if rows[i]["id"] != queue.Items[i].ID || rows[i]["sla"] != queue.Items[i].SLA {
			t.Errorf("queue row %d: %v, API %+v", i, rows[i], queue.Items[i])
		}
	}
	b.shot("work")
	b.do(chromedp.Navigate(m.URL + "/console/work?queue=at-risk"))
	risky := run(b, chromedp.Evaluate[[]map[string]string](`[...document.querySelectorAll('table.queue tbody tr[data-id]')].map(r => ({id: r.dataset.id, score: r.dataset.score}))`))
	var atRisk struct {
		Items []struct {
			Customer struct {
				ID string `json:"id"`
			} `json:"customer"`
			Risk struct {
				Score int `json:"score"`
			} `json:"risk"`
		} `json:"items"`
	}
	m.Get(t, "analyst", "/v1/work/at-risk").JSON(t, &atRisk)
	if len(risky) != len(atRisk.Items) || len(risky) == 0 {
		t.Fatalf("at-risk queue: %d rows, API %d", len(risky), len(atRisk.Items))
	}
	for i := range risky {
		if risky[i]["id"] != atRisk.Items[i].Customer.ID || risky[i]["score"] != strconv.Itoa(atRisk.Items[i].Risk.Score) {
			t.Errorf("at-risk row %d: %v, API %+v", i, risky[i], atRisk.Items[i])
		}
	}

	// Customer: follow the queue's first row.
	b.clickAndLoad(`table.queue tbody tr[data-id] a`)
	id := risky[0]["id"]
	if loc := b.location(); !strings.HasSuffix(loc, "/console/customers/"+id) {
		t.Fatalf("followed the row to %s", loc)
	}
	fields := run(b, chromedp.Evaluate[map[string]string](`Object.fromEntries([...document.querySelectorAll('[data-field]')].map(e => [e.dataset.field, e.textContent.trim()]))`))
	factors := run(b, chromedp.Evaluate[map[string]string](`Object.fromEntries([...document.querySelectorAll('[data-factor]')].map(e => [e.dataset.factor, e.dataset.points]))`))
	var cu struct {
		Status         string `json:"status"`
		OpenComplaints int    `json:"open_complaints"`
		LastCSAT       *int   `json:"last_csat"`
		LastNPS        *int   `json:"last_nps"`
		Segment        string `json:"segment"`
		Risk           struct {
			Score   int    `json:"score"`
			Level   string `json:"level"`
			Factors []struct {
				Factor string `json:"factor"`
				Points int    `json:"points"`
			} `json:"factors"`
		} `json:"risk"`
	}
	m.Get(t, "analyst", "/v1/customers/"+id).JSON(t, &cu)
	intText := func(p *int) string {
		if p == nil {
			return "—"
		}
		return strconv.Itoa(*p)
	}
	for name, want := range map[string]string{"status": cu.Status, "open_complaints": strconv.Itoa(cu.OpenComplaints), "segment": cu.Segment,
		"last_csat": intText(cu.LastCSAT), "last_nps": intText(cu.LastNPS), "risk_score": strconv.Itoa(cu.Risk.Score), "risk_level": cu.Risk.Level} {
		if fields[name] != want {
			t.Errorf("customer %s = %q, API %q", name, fields[name], want)
		}
	}
	if len(factors) != len(cu.Risk.Factors) {
		t.Errorf("factors %v, API %+v", factors, cu.Risk.Factors)
	}
	for _, f := range cu.Risk.Factors {
		if factors[f.Factor] != strconv.Itoa(f.Points) {
			t.Errorf("factor %s = %s, API %d", f.Factor, factors[f.Factor], f.Points)
		}
	}
	// The customer page of a buyer: value and loyalty as the API answers.
	b.do(chromedp.Navigate(m.URL + "/console/customers/" + ada))
	n := checkValue(t, b, m, ada)
	t.Logf("customer: %d value and loyalty figures equal the API's", n)
	b.shot("customer")

	// Audit: the verification, then a state picked on the time line, then
	// one typed into the form.
	b.do(chromedp.Navigate(m.URL + "/console/audit/" + grace))
	verified := run(b, chromedp.Evaluate[map[string]string](`({intact: document.querySelector('[data-field=intact]').dataset.value, events: document.querySelector('[data-field=verified_events]').textContent})`))
	var ver struct {
		Intact bool `json:"intact"`
		Events int  `json:"events"`
	}
	m.Get(t, "auditor", "/v1/customers/"+grace+"/verification").JSON(t, &ver)
	if verified["intact"] != strconv.FormatBool(ver.Intact) || verified["events"] != strconv.Itoa(ver.Events) || !ver.Intact || ver.Events != 5 {
		t.Errorf("verification %v, API %+v", verified, ver)
	}
	b.clickAndLoad(`svg.timeline a[data-revision="2"]`)
	b.checkState(m, grace, 3)
	b.shot("audit")
	asOf := run(b, chromedp.Evaluate[string](`[...document.querySelectorAll('table.events a[data-as-of]')][1].dataset.asOf`))
	typed, err := time.Parse(time.RFC3339Nano, asOf)
	if err != nil {
		t.Fatal(err)
	}
	// The form takes milliseconds: the next one after revision 1's
	// instant folds revisions 0 and 1.
	typed = typed.Truncate(time.Millisecond).Add(time.Millisecond)
	b.do(chromedp.SetValue(chromedp.CSS("#as_of"), localDateTime(typed)))
	b.clickAndLoad("#show-state")
	b.checkState(m, grace, 2)

	// Operations: the projections as GET /v1/projections shows them, and
	// a rebuild through the page's form (its CSRF token included).
	// The checkpoints move on as the log's horizon does, even without new
	// events: the page's lies between the API's just before and just after.
	type projection struct {
		Name       string `json:"name"`
		State      string `json:"state"`
		Checkpoint uint64 `json:"checkpoint"`
		Parked     []any  `json:"parked"`
	}
	var before, after struct{ Items []projection }
	m.Get(t, "admin", "/v1/projections").JSON(t, &before)
	b.do(chromedp.Navigate(m.URL + "/console/operations"))
	m.Get(t, "admin", "/v1/projections").JSON(t, &after)
	ops := run(b, chromedp.Evaluate[[]map[string]string](`[...document.querySelectorAll('table.projections tbody tr')].map(r => ({name: r.dataset.name, state: r.querySelector('[data-field=state]').textContent, checkpoint: r.querySelector('[data-field=checkpoint]').textContent, parked: r.querySelector('[data-field=parked]').textContent}))`))
	if len(ops) != len(before.Items) || len(ops) != len(after.Items) {
		t.Errorf("operations lists %d projections, API %d", len(ops), len(before.Items))
	}
	for i := range min(len(ops), len(before.Items), len(after.Items)) {
		p, q := before.Items[i], after.Items[i]
		cp, _ := strconv.ParseUint(ops[i]["checkpoint"], 10, 64)
		if ops[i]["name"] != p.Name || ops[i]["state"] != p.State || cp < p.Checkpoint || cp > q.Checkpoint || ops[i]["parked"] != strconv.Itoa(len(p.Parked)) {
			t.Errorf("projection %v, API before %+v, after %+v", ops[i], p, q)
		}
	}
	webhooksSettled(t, m, hookOK, hookFailing)
	b.do(chromedp.Reload())
	n = checkWebhooks(t, b, m, hookFailing)
	t.Logf("operations: %d webhook figures equal the API's", n)
	b.shot("operations")
	b.save("operations-webhooks", run(b, chromedp.Screenshot(chromedp.CSS("section[aria-labelledby=webhooks-h]"))))
	b.clickAndLoad(`tr[data-name="history"] button`)
	if msg := run(b, chromedp.Evaluate[string](`(document.querySelector('.message')||{}).textContent||''`)); !strings.Contains(msg, "Rebuild requested for history") {
		t.Errorf("after the rebuild form: %q at %s", msg, b.location())
	}

	// Customers: the search form.
	b.do(chromedp.Navigate(m.URL + "/console/customers"))
	b.do(chromedp.SetValue(chromedp.CSS("#q"), "Grace"))
	b.clickAndLoad("#search")
	found := run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll('table.customers tbody tr[data-id]')].map(r => r.dataset.id)`))
	if len(found) != 1 || found[0] != grace {
		t.Errorf("search found %v", found)
	}

	// Sign out: the console is closed again.
	b.clickAndLoad(`form.signout button`)
	b.do(chromedp.Navigate(m.URL + "/console/overview"))
	if loc := b.location(); !strings.Contains(loc, "/console/sign-in") {
		t.Errorf("after sign-out at %s", loc)
	}
	t.Logf("browser test took %s (%s in the browser, after seeding); screenshots in %s",
		time.Since(started).Round(time.Millisecond), time.Since(browserStart).Round(time.Millisecond), shots)
}

// seedAuditedCustomer makes a customer through the API with five commands,
// recorded at distinct instants, for the audit time line.
func seedAuditedCustomer(t *testing.T, m *apptest.Main) string {
	t.Helper()
	res := m.Post(t, "/v1/customers", map[string]any{"name": "Grace Hopper", "email": "grace@example.com", "segment": "enterprise", "tier": "A"})
	if res.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", res.Status, res.Body)
	}
	id := res.Map(t)["customer_id"].(string)
	if r := m.Do(t, apptest.Request{Method: http.MethodPut, Path: "/v1/customers/" + id + "/classification", Key: m.Keys["writer"], Body: map[string]any{"region": "emea"}}); r.Status != http.StatusOK {
		t.Fatalf("classify: %d %s", r.Status, r.Body)
	}
	c := m.Post(t, "/v1/customers/"+id+"/complaints", map[string]any{"category": "billing", "severity": "high", "description": "double charge"})
	if c.Status != http.StatusCreated {
		t.Fatalf("complaint: %d %s", c.Status, c.Body)
	}
	cid := c.Map(t)["complaint_id"].(string)
	if r := m.Post(t, "/v1/customers/"+id+"/complaints/"+cid+"/acknowledgement", map[string]any{"by": "alice"}); r.Status != http.StatusOK {
		t.Fatalf("acknowledge: %d %s", r.Status, r.Body)
	}
	var last struct {
		Position json.Number `json:"position"`
	}
	r := m.Post(t, "/v1/customers/"+id+"/surveys", map[string]any{"csat": 4, "nps": 9})
	if r.Status != http.StatusCreated && r.Status != http.StatusOK {
		t.Fatalf("survey: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &last)
	waitForPosition(t, m, last.Position)
	return id
}

type overviewPage struct {
	API   string `json:"api"`
	Cards []struct {
		Name, Value, Text string
	} `json:"cards"`
	Prev []struct{ Name, Value string } `json:"prev"`
	Rows []struct {
		Key    string
		Values []string
	} `json:"rows"`
	Dots   []struct{ Name, Month, Value string } `json:"dots"`
	Tables []struct {
		Name   string
		Months []struct{ Month, Value string }
	} `json:"tables"`
}

const overviewJS = `(() => {
  const q = s => [...document.querySelectorAll(s)];
  return {
    api: document.querySelector('.cards').dataset.api,
    cards: q('.cards [data-figure]').map(e => ({Name: e.dataset.figure, Value: e.dataset.value, Text: e.textContent.trim()})),
    prev: q('.cards [data-prev-figure]').map(e => ({Name: e.dataset.prevFigure, Value: e.dataset.value})),
    rows: q('table.breakdown tbody tr').map(tr => ({Key: tr.dataset.key, Values: q('table.breakdown tbody tr[data-key="' + tr.dataset.key + '"] td').map(td => td.dataset.value)})),
    dots: q('circle.dot').map(e => ({Name: e.dataset.figure, Month: e.dataset.month, Value: e.dataset.value})),
    tables: q('.chart-box').map(b => ({Name: b.querySelector('svg').dataset.chart, Months: [...b.querySelectorAll('td[data-month]')].map(td => ({Month: td.dataset.month, Value: td.dataset.value}))})),
  };
})()`

// apiGroups answers an analytics query: each group's figures as the JSON
// text of their values (null included), and its key.
func apiGroups(t *testing.T, m *apptest.Main, path string) []map[string]string {
	t.Helper()
	res := m.Get(t, "analyst", path)
	if res.Status != http.StatusOK {
		t.Fatalf("%s: %d %s", path, res.Status, res.Body)
	}
	var body struct {
		Groups []map[string]json.RawMessage `json:"groups"`
	}
	res.JSON(t, &body)
	var out []map[string]string
	for _, g := range body.Groups {
		row := map[string]string{}
		for k, v := range g {
			row[k] = string(v)
			if k == "key" {
				var s *string
				_ = json.Unmarshal(v, &s)
				row[k] = ""
				if s != nil {
					row[k] = *s
				}
			}
		}
		out = append(out, row)
	}
	return out
}

func apiGroup(t *testing.T, m *apptest.Main, path, key string) map[string]string {
	t.Helper()
	for _, g := range apiGroups(t, m, path) {
		if g["key"] == key {
			return g
		}
	}
	t.Fatalf("%s has no group %q", path, key)
	return nil
}

// driver runs the browser steps of one test.
type driver struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
}

func run[T any](d *driver, a chromedp.Action[T]) T {
	d.t.Helper()
	v, err := chromedp.Run(d.ctx, a)
	if err != nil {
		d.t.Fatalf("browser: %v (at %s)", err, d.location())
	}
	return v
}

func (d *driver) do(steps ...chromedp.Action[chromedp.Void]) {
	d.t.Helper()
	if err := chromedp.Do(d.ctx, steps...); err != nil {
		loc, _ := chromedp.Run(d.ctx, chromedp.Location())
		d.t.Fatalf("browser: %v (at %s)", err, loc)
	}
}

func (d *driver) location() string {
	loc, _ := chromedp.Run(d.ctx, chromedp.Location())
	return loc
}

// clickAndLoad clicks and waits for the page the click opens.
func (d *driver) clickAndLoad(sel string) {
	d.t.Helper()
	_, err := chromedp.Run(d.ctx, chromedp.WaitEvent(cdppage.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel))))
	if err != nil {
		d.t.Fatalf("click %s: %v (at %s)", sel, err, d.location())
	}
}

func (d *driver) shot(name string) {
	d.t.Helper()
	d.save(name, run(d, chromedp.CaptureScreenshot()))
}

func (d *driver) save(name string, png []byte) {
	d.t.Helper()
	path := filepath.Join(d.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// checkState compares the audit page's state with GET …/state for the
// instant the page shows (wantEvents, when not -1, is how many it folds).
func (d *driver) checkState(m *apptest.Main, id string, wantEvents int) {
	d.t.Helper()
	st := run(d, chromedp.Evaluate[map[string]string](`({asOf: document.querySelector('.state-summary').dataset.asOf, events: document.querySelector('[data-field=state_events]').textContent, revision: document.querySelector('[data-field=state_revision]').textContent, state: document.querySelector('#state').textContent})`))
	res := m.Get(d.t, "auditor", "/v1/customers/"+id+"/state?as_of="+url.QueryEscape(st["asOf"]))
	var api struct {
		Events   int            `json:"events"`
		Revision uint64         `json:"revision"`
		Customer map[string]any `json:"customer"`
	}
	res.JSON(d.t, &api)
	var shown map[string]any
	if err := json.Unmarshal([]byte(st["state"]), &shown); err != nil {
		d.t.Fatalf("state on the page: %v: %s", err, st["state"])
	}
	if st["events"] != strconv.Itoa(api.Events) || st["revision"] != strconv.FormatUint(api.Revision, 10) || !reflect.DeepEqual(shown, api.Customer) {
		d.t.Errorf("state as of %s: page %s events rev %s %v; API %d rev %d %v", st["asOf"], st["events"], st["revision"], shown, api.Events, api.Revision, api.Customer)
	}
	if wantEvents >= 0 && api.Events != wantEvents {
		d.t.Errorf("state as of %s folds %d events, want %d", st["asOf"], api.Events, wantEvents)
	}
	d.t.Logf("state as of %s: %d events, equal to the API's", st["asOf"], api.Events)
}

func ptr[T any](v T) *T { return &v }

// localDateTime is t as a datetime-local input holds it, normalised as
// browsers do (seconds and milliseconds only when not zero, milliseconds
// without trailing zeros), so that the value reads back as set.
func localDateTime(t time.Time) string {
	v := t.UTC().Format("2006-01-02T15:04")
	ms := t.Nanosecond() / int(time.Millisecond)
	if t.Second() != 0 || ms != 0 {
		v += t.Format(":05")
	}
	if ms != 0 {
		v += strings.TrimRight(fmt.Sprintf(".%03d", ms), "0")
	}
	return v
}
