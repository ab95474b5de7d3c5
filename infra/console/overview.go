package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/goals"
)

// kpi is one headline figure of the overview: its API name, how it reads,
// and the kind of number it is.
type kpi struct {
	Name, Label string
	// Kind is "pct" (0–100), "score" (NPS), "count" or "duration" (s).
	Kind string
}

var overviewKPIs = []kpi{
	{"csat_pct", "CSAT", "pct"}, {"csat_avg", "Average CSAT", "score"}, {"nps", "NPS", "score"},
	{"responses", "Survey responses", "count"}, {"churn_rate", "Churn rate", "pct"}, {"retention_rate", "Retention rate", "pct"},
	{"complaint_rate", "Complaint rate", "pct"}, {"resolution_rate", "Resolution rate", "pct"},
	{"first_response_median_s", "First response (median)", "duration"}, {"resolution_median_s", "Resolution (median)", "duration"},
	{"sla_breaches", "SLA breaches", "count"}, {"contact_coverage", "Contact coverage", "pct"},
	{"follow_ups_overdue", "Follow-ups overdue", "count"},
}

// chartKPIs are the figures charted by month (PRODUCT.md, Console).
var chartKPIs = []string{"csat_pct", "nps", "churn_rate", "complaint_rate", "resolution_rate", "first_response_median_s"}

// chartMonths is how many calendar months the charts show, up to the
// period's end.
const chartMonths = 12

type kpiCard struct {
	kpi
	Now, Prev any
}

type breakdownRow struct {
	Key     string
	Current bool
	Figures []cell
}

// cell is a figure with the kind of number it is, for formatting.
type cell struct {
	Kind  string
	Value any
}

type overviewData struct {
	From, To, PrevFrom time.Time
	FromInput, ToInput string
	GroupBy, Key       string
	Dims               []string
	// Found says the chosen group exists in the period (else the cards
	// are empty, as the API answer has no such group).
	Found     bool
	Cards     []kpiCard
	Columns   []kpi
	Breakdown []breakdownRow
	Charts    []chartView
	ChartFrom time.Time
	// ChartsFiltered says the charts show the chosen group month by month.
	ChartsFiltered bool
	CSV            string
	MonthlyCSV     string
	// Goals are the open goals with their status (GET /v1/goals), shown
	// when the service has goals; MoreGoals says there are more than
	// the page shows.
	ShowGoals bool
	Goals     []goalRow
	MoreGoals bool
	// APIQuery and friends are the API requests whose answers the page
	// shows, for whoever wants to check a figure.
	APIQuery, APIPrevQuery, APIGoalsQuery string
	APIChartQueries                       []string
}

// overviewParams turns the form's values into the API's: a date (the
// form's date inputs) is midnight UTC; an RFC 3339 time passes as it is.
func overviewParams(q url.Values) url.Values {
	out := url.Values{}
	for _, name := range []string{"from", "to"} {
		v := strings.TrimSpace(q.Get(name))
		if v == "" {
			continue
		}
		if len(v) == len("2006-01-02") {
			v += "T00:00:00Z"
		}
		out.Set(name, v)
	}
	if g := q.Get("group_by"); g != "" {
		out.Set("group_by", g)
	}
	return out
}

func apiURL(family string, p analytics.Params) string {
	q := url.Values{"from": {p.From.UTC().Format(time.RFC3339Nano)}, "to": {p.To.UTC().Format(time.RFC3339Nano)}}
	if p.GroupBy != analytics.All {
		q.Set("group_by", string(p.GroupBy))
	}
	return "/v1/analytics/" + family + "?" + q.Encode()
}

func groupKey(g *analytics.Group) string {
	if g.Key == nil {
		return ""
	}
	return *g.Key
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	q := r.URL.Query()
	now := c.cfg.Now()
	params, err := rhttp.ParseAnalyticsParams(overviewParams(q), now)
	if err != nil {
		return err
	}
	if params.GroupBy == analytics.Month {
		return rhttp.ParseAnalyticsParamsError("group_by", "filters by segment, tier, region or owner; the charts show the months")
	}
	key := strings.TrimSpace(q.Get("key"))
	d := overviewData{From: params.From, To: params.To, GroupBy: string(params.GroupBy), Key: key,
		FromInput: params.From.UTC().Format(time.RFC3339), ToInput: params.To.UTC().Format(time.RFC3339),
		Dims: []string{"segment", "tier", "region", "owner"}}
	ctx := r.Context()

	// The cards are one group: every customer, or the chosen group of the
	// chosen dimension; beside them the same group in the period before.
	cardParams := params
	if key == "" {
		cardParams.GroupBy = analytics.All
	}
	prev := cardParams
	prev.To, prev.From = params.From, params.From.Add(-params.To.Sub(params.From))
	d.PrevFrom = prev.From
	hasPrev := !prev.From.Before(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC))
	// The charts: the last chartMonths calendar months up to the period's
	// end, every customer or the chosen group.
	monthly := chartPeriod(params)
	d.ChartFrom = monthly.From
	d.APIQuery = apiURL("kpis", cardParams)
	if hasPrev {
		d.APIPrevQuery = apiURL("kpis", prev)
	}
	charts := newChartQuery(monthly, params.GroupBy, key)
	d.ChartsFiltered = charts.filtered()
	d.APIChartQueries = charts.apis()

	// The reports are independent: asked at once (a few at a time), the
	// page takes about as long as the slowest, not their sum.
	var cur, before, breakdown analytics.Report
	var goalPage []goals.Goal
	jobs := []func() error{
		func() (err error) { cur, err = c.cfg.Analytics.Report(ctx, analytics.KPIs, cardParams); return },
	}
	if c.cfg.Goals != nil {
		jobs = append(jobs, func() error {
			page, err := c.cfg.Goals.Goals(ctx, goals.ListParams{State: goals.StateOpen}, "", overviewGoals)
			goalPage = page.Items
			d.MoreGoals = page.NextCursor != ""
			return err
		})
		d.ShowGoals = true
		d.APIGoalsQuery = "/v1/goals?limit=" + strconv.Itoa(overviewGoals)
	}
	if hasPrev {
		jobs = append(jobs, func() (err error) { before, err = c.cfg.Analytics.Report(ctx, analytics.KPIs, prev); return })
	}
	if params.GroupBy != analytics.All && key == "" {
		jobs = append(jobs, func() (err error) { breakdown, err = c.cfg.Analytics.Report(ctx, analytics.KPIs, params); return })
	}
	chartJobs, months := charts.jobs(ctx, c.cfg.Analytics)
	if err := parallelN(chartParallel, append(jobs, chartJobs...)...); err != nil {
		return err
	}
	d.Goals = goalRows(goalPage, params.GroupBy, key)
	pick := func(rep analytics.Report) *analytics.Group {
		for i := range rep.Groups {
			if cardParams.GroupBy == analytics.All || groupKey(&rep.Groups[i]) == key {
				return &rep.Groups[i]
			}
		}
		return nil
	}
	g, pg := pick(cur), pick(before)
	d.Found = g != nil
	for _, k := range overviewKPIs {
		card := kpiCard{kpi: k}
		if g != nil {
			card.Now = g.Figure(k.Name)
		}
		if pg != nil {
			card.Prev = pg.Figure(k.Name)
		}
		d.Cards = append(d.Cards, card)
	}

	// The breakdown: every group of the chosen dimension.
	if params.GroupBy != analytics.All {
		rep := cur
		if key == "" {
			rep = breakdown
		}
		d.Columns = overviewKPIs
		for i := range rep.Groups {
			gr := &rep.Groups[i]
			row := breakdownRow{Key: groupKey(gr), Current: key != "" && groupKey(gr) == key}
			for _, k := range overviewKPIs {
				row.Figures = append(row.Figures, cell{Kind: k.Kind, Value: gr.Figure(k.Name)})
			}
			d.Breakdown = append(d.Breakdown, row)
		}
	}
	shown := months()
	for _, name := range chartKPIs {
		for _, k := range overviewKPIs {
			if k.Name == name {
				d.Charts = append(d.Charts, monthChart(k, shown))
			}
		}
	}
	d.CSV = "/console/overview.csv?" + strings.TrimPrefix(d.APIQuery, "/v1/analytics/kpis?") + "&family=kpis"
	d.MonthlyCSV = monthsCSVLink(monthly, params.GroupBy, key)
	panels, err := c.panels(r, s, PageOverview)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "overview", &view{Title: "Overview", S: s, Data: d, Panels: panels})
	return nil
}

// overviewCSV downloads a report as the API's CSV: the same bytes as GET
// /v1/analytics/{family} with Accept: text/csv and the same parameters.
func (c *Console) overviewCSV(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	q := r.URL.Query()
	family := analytics.Family(q.Get("family"))
	if family == "" {
		family = analytics.KPIs
	}
	known := false
	for _, f := range analytics.Families() {
		known = known || f == family
	}
	if !known {
		return rhttp.ParseAnalyticsParamsError("family", "must be one of satisfaction, churn, complaints, contacts, kpis")
	}
	params, err := rhttp.ParseAnalyticsParams(q, c.cfg.Now())
	if err != nil {
		return err
	}
	rep, err := c.cfg.Analytics.Report(r.Context(), family, params)
	if err != nil {
		return err
	}
	return rhttp.WriteReportCSV(w, family, rep)
}

// parallel runs the jobs at once and returns the first error.
func parallel(jobs ...func() error) error {
	errs := make(chan error, len(jobs))
	for _, job := range jobs {
		go func() { errs <- job() }()
	}
	var first error
	for range jobs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
