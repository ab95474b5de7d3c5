package console

import (
	"bytes"
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"time"

	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/readmodels/analytics"
)

// chartFamilies are the analytics families the monthly charts read: the
// charted figures are theirs (chartKPIs), so the charts ask only these,
// not the whole KPI overview (whose contact figures by month are the
// costliest part and are not charted).
var chartFamilies = []analytics.Family{analytics.Satisfaction, analytics.Churn, analytics.Complaints}

// chartQuery is how the charts' figures are asked: every customer by
// month (one report per family), or one group of a dimension, month by
// month (one grouped report per family and month, the group picked from
// each: the analytics API groups by one dimension at a time, so a
// group's month is the answer for that month grouped by the dimension).
//
// Every customer's complaint figures are asked month by month too (the
// report of each month, ungrouped): they are the same figures as the
// report by month (the browser test compares both), and at 100,000
// customers twelve month reports, a few at once, take 0.25–0.5 s where
// the one report by month takes 6–7.6 s (BenchmarkConsolePages; its
// active-customer count per month is the slow part, in
// readmodels/analytics).
type chartQuery struct {
	// Months are the months charted (MonthBounds of the chart period).
	Months []monthBound
	// GroupBy and Key choose the group; Key "" is every customer.
	GroupBy analytics.GroupBy
	Key     string
	Period  analytics.Params
}

type monthBound struct {
	Key      string
	From, To time.Time
}

func newChartQuery(period analytics.Params, groupBy analytics.GroupBy, key string) chartQuery {
	q := chartQuery{Period: period, GroupBy: groupBy, Key: key}
	keys, from, to := analytics.MonthBounds(period)
	for i := range keys {
		q.Months = append(q.Months, monthBound{Key: keys[i], From: from[i], To: to[i]})
	}
	return q
}

// filtered says the charts show one group, month by month.
func (q chartQuery) filtered() bool { return q.Key != "" && q.GroupBy != analytics.All }

// perMonth says family f is asked month by month (a report per month).
func (q chartQuery) perMonth(f analytics.Family) bool {
	return q.filtered() || f == analytics.Complaints
}

// monthParams is the report of month m: grouped by the dimension when
// filtered, else ungrouped.
func (q chartQuery) monthParams(m monthBound) analytics.Params {
	p := analytics.Params{From: m.From, To: m.To}
	if q.filtered() {
		p.GroupBy = q.GroupBy
	}
	return p
}

// apis are the API requests whose answers the charts show: per family,
// by month, or per family and month.
func (q chartQuery) apis() []string {
	var out []string
	for _, f := range chartFamilies {
		if !q.perMonth(f) {
			out = append(out, apiURL(string(f), q.Period))
			continue
		}
		for _, m := range q.Months {
			out = append(out, apiURL(string(f), q.monthParams(m)))
		}
	}
	return out
}

// chartMonth is one month of the charts: the figures of the chart
// families merged into one group, and the API requests they answer.
type chartMonth struct {
	Group analytics.Group
	// APIs are the requests whose answers this month's figures are, one
	// per chart family (chartFamilies' order).
	APIs []string
}

// chartParallel bounds the reports one overview runs at once: filtered,
// its charts ask 3 × 12 reports (else 2 + 12), and the pool and the cores
// are shared with every other request.
const chartParallel = 6

// jobs are the reports the charts need, to run beside the page's others;
// after they ran, months() is the charted months.
func (q chartQuery) jobs(ctx context.Context, a rhttp.AnalyticsQueries) (jobs []func() error, months func() []chartMonth) {
	out := make([]chartMonth, len(q.Months))
	for i, m := range q.Months {
		k := m.Key
		out[i].Group.Key = &k
		out[i].APIs = make([]string, len(chartFamilies))
	}
	byMonth := make([]analytics.Report, len(chartFamilies))
	picked := make([][]*analytics.Group, len(chartFamilies))
	for i, f := range chartFamilies {
		if !q.perMonth(f) {
			jobs = append(jobs, func() (err error) { byMonth[i], err = a.Report(ctx, f, q.Period); return })
			continue
		}
		picked[i] = make([]*analytics.Group, len(q.Months))
		for j, m := range q.Months {
			p := q.monthParams(m)
			jobs = append(jobs, func() error {
				rep, err := a.Report(ctx, f, p)
				if err != nil {
					return err
				}
				for k := range rep.Groups {
					// Ungrouped, the report's one group; else the chosen one.
					if !q.filtered() || (rep.Groups[k].Key != nil && *rep.Groups[k].Key == q.Key) {
						picked[i][j] = &rep.Groups[k]
					}
				}
				return nil
			})
		}
	}
	return jobs, func() []chartMonth {
		for i, f := range chartFamilies {
			if !q.perMonth(f) {
				api := apiURL(string(f), q.Period)
				for j := range byMonth[i].Groups {
					g := &byMonth[i].Groups[j]
					for k := range out {
						if groupKey(g) == q.Months[k].Key {
							mergeFamily(&out[k].Group, g, f)
							out[k].APIs[i] = api
						}
					}
				}
				continue
			}
			for j, m := range q.Months {
				out[j].APIs[i] = apiURL(string(f), q.monthParams(m))
				if g := picked[i][j]; g != nil {
					mergeFamily(&out[j].Group, g, f)
				}
			}
		}
		return out
	}
}

// mergeFamily copies the figures of family f from src into dst.
func mergeFamily(dst, src *analytics.Group, f analytics.Family) {
	switch f {
	case analytics.Satisfaction:
		dst.CSATPct, dst.CSATAvg, dst.NPS = src.CSATPct, src.CSATAvg, src.NPS
		dst.Responses, dst.CSATResponses, dst.NPSResponses = src.Responses, src.CSATResponses, src.NPSResponses
	case analytics.Churn:
		dst.ChurnRate, dst.RetentionRate, dst.ActiveAtStart, dst.Churned = src.ChurnRate, src.RetentionRate, src.ActiveAtStart, src.Churned
	case analytics.Complaints:
		dst.Filed, dst.Resolved, dst.ActiveInPeriod = src.Filed, src.Resolved, src.ActiveInPeriod
		dst.ComplaintRate, dst.ResolutionRate = src.ComplaintRate, src.ResolutionRate
		dst.FirstResponseMedianS, dst.ResolutionMedianS = src.FirstResponseMedianS, src.ResolutionMedianS
		dst.SLABreaches, dst.FirstResponseBreaches, dst.ResolutionBreaches = src.SLABreaches, src.FirstResponseBreaches, src.ResolutionBreaches
	}
}

// chartPeriod is the charts' period: the last chartMonths calendar months
// up to the period's end.
func chartPeriod(p analytics.Params) analytics.Params {
	last := p.To.Add(-time.Microsecond).UTC()
	from := time.Date(last.Year(), last.Month()-chartMonths+1, 1, 0, 0, 0, 0, time.UTC)
	return analytics.Params{From: from, To: p.To, GroupBy: analytics.Month}
}

// monthsCSVLink is the download of the charts' figures as shown.
func monthsCSVLink(period analytics.Params, groupBy analytics.GroupBy, key string) string {
	q := url.Values{"from": {period.From.UTC().Format(time.RFC3339Nano)}, "to": {period.To.UTC().Format(time.RFC3339Nano)}}
	if key != "" && groupBy != analytics.All {
		q.Set("group_by", string(groupBy))
		q.Set("key", key)
	}
	return "/console/overview-months.csv?" + q.Encode()
}

// overviewMonthsCSV downloads the charts as shown: a row per month, a
// column per charted figure, each cell the API's value (empty when
// undefined, as the API's CSV has it). from and to are the charts' own
// period; group_by and key the group.
func (c *Console) overviewMonthsCSV(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	q := r.URL.Query()
	period := url.Values{"group_by": {"month"}}
	for _, name := range []string{"from", "to"} {
		if q.Has(name) {
			period.Set(name, q.Get(name))
		}
	}
	params, err := rhttp.ParseAnalyticsParams(period, c.cfg.Now())
	if err != nil {
		return err
	}
	groupBy := analytics.GroupBy(q.Get("group_by"))
	key := strings.TrimSpace(q.Get("key"))
	switch groupBy {
	case analytics.All, analytics.Segment, analytics.Tier, analytics.Region, analytics.Owner:
	default:
		return rhttp.ParseAnalyticsParamsError("group_by", "must be one of segment, tier, region, owner")
	}
	if groupBy == analytics.All {
		key = ""
	}
	cq := newChartQuery(params, groupBy, key)
	jobs, months := cq.jobs(r.Context(), c.cfg.Analytics)
	if err := parallelN(chartParallel, jobs...); err != nil {
		return err
	}
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.UseCRLF = true
	head := []string{"month"}
	if cq.filtered() {
		head = []string{"month", string(groupBy)}
	}
	_ = cw.Write(append(head, chartKPIs...))
	for _, m := range months() {
		row := []string{groupKey(&m.Group)}
		if cq.filtered() {
			row = append(row, key)
		}
		for _, name := range chartKPIs {
			cell := rhttp.FigureText(m.Group.Figure(name))
			if cell == "null" {
				cell = ""
			}
			row = append(row, cell)
		}
		_ = cw.Write(row)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="overview-months.csv"`)
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b.Bytes())
	return err
}

// parallelN runs the jobs, at most n at once, and returns the first error.
func parallelN(n int, jobs ...func() error) error {
	sem := make(chan struct{}, n)
	wrapped := make([]func() error, len(jobs))
	for i, job := range jobs {
		wrapped[i] = func() error {
			sem <- struct{}{}
			defer func() { <-sem }()
			return job()
		}
	}
	return parallel(wrapped...)
}
