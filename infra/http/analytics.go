package http

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/analytics"
)

// AnalyticsQueries answers /v1/analytics/* (readmodels/analytics).
type AnalyticsQueries interface {
	Report(ctx context.Context, f analytics.Family, p analytics.Params) (analytics.Report, error)
	// Reads names the projectors a family's report reads (min_position).
	Reads(f analytics.Family) []string
}

// analyticsRoutes lists /v1/analytics/*: analysts only.
func (s *Server) analyticsRoutes() []Route {
	if s.cfg.Analytics == nil {
		return nil
	}
	analyst := []Role{RoleAnalyst}
	route := func(name, path string, f analytics.Family) Route {
		return Route{Name: name, Method: http.MethodGet, Path: "/v1/analytics/" + path, Roles: analyst, handler: s.analytics(f)}
	}
	return []Route{
		route("getSatisfaction", "satisfaction", analytics.Satisfaction),
		route("getChurn", "churn", analytics.Churn),
		route("getComplaintAnalytics", "complaints", analytics.Complaints),
		route("getContactAnalytics", "contacts", analytics.Contacts),
		route("getKPIs", "kpis", analytics.KPIs),
	}
}

// Bounds of the times a report may cover: the product's time range
// (PRODUCT.md, input rules), to the microsecond the read models keep.
var (
	minReportTime = domain.MinTime
	maxReportTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// parseAnalyticsParams reads group_by, from and to (RFC 3339; to is
// exclusive and defaults to now, from to 90 days before to). Each bad
// parameter is a 422 naming it: an unknown group_by, a time that does not
// parse or lies outside years 1–9999, from not before to, or a monthly
// report of more than analytics.MaxMonths months.
func parseAnalyticsParams(q url.Values, now time.Time) (analytics.Params, error) {
	var p fieldParser
	var out analytics.Params
	if q.Has("group_by") {
		g := analytics.GroupBy(q.Get("group_by"))
		valid := false
		for _, known := range analytics.GroupBys() {
			valid = valid || g == known
		}
		if !valid {
			p.fail("group_by", "must be one of segment, tier, region, owner, month")
		} else {
			out.GroupBy = g
		}
	}
	parse := func(name string) (time.Time, bool) {
		if !q.Has(name) {
			return time.Time{}, false
		}
		v := q.Get(name)
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			p.fail(name, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
			return time.Time{}, false
		}
		t = t.UTC().Truncate(time.Microsecond)
		if t.Before(minReportTime) || t.After(maxReportTime) {
			p.fail(name, "must lie between 1900-01-01 and 9999-12-31 UTC")
			return time.Time{}, false
		}
		return t, true
	}
	from, hasFrom := parse("from")
	to, hasTo := parse("to")
	if err := p.err(); err != nil {
		return out, err
	}
	if !hasTo {
		to = now.UTC().Truncate(time.Microsecond)
	}
	if !hasFrom {
		from = to.Add(-analytics.DefaultPeriod)
		if from.Before(minReportTime) {
			from = minReportTime
		}
	}
	out.From, out.To = from, to
	switch {
	case !from.Before(to) && hasFrom:
		p.fail("from", "must be before to (the period is [from, to))")
	case !from.Before(to):
		p.fail("to", "must be after from (the period is [from, to))")
	case out.GroupBy == analytics.Month && out.Months() > analytics.MaxMonths:
		p.fail("group_by", "month grouping covers at most %d months: narrow from and to", analytics.MaxMonths)
	}
	return out, p.err()
}

// analytics answers a family's figures as JSON, or as CSV when the
// client asks for text/csv.
func (s *Server) analytics(f analytics.Family) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		params, err := parseAnalyticsParams(r.URL.Query(), time.Now())
		if err != nil {
			return err
		}
		if err := s.awaitPosition(r, s.cfg.Analytics.Reads(f)...); err != nil {
			return err
		}
		report, err := s.cfg.Analytics.Report(r.Context(), f, params)
		if err != nil {
			return err
		}
		if wantsCSV(r) {
			return writeReportCSV(w, f, report)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, err = w.Write(reportJSON(f, report))
		return err
	}
}

// wantsCSV reports whether the Accept header prefers text/csv to JSON.
func wantsCSV(r *http.Request) bool {
	csvQ, jsonQ := -1.0, -1.0
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		media, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1 {
				q = f
			}
		}
		switch media {
		case "text/csv":
			csvQ = max(csvQ, q)
		case "application/json":
			jsonQ = max(jsonQ, q)
		}
	}
	return csvQ > 0 && csvQ >= jsonQ
}

// figureJSON renders a figure: null for an undefined one.
func figureJSON(v any) []byte {
	switch v := v.(type) {
	case *float64:
		if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
			return []byte("null")
		}
		return strconv.AppendFloat(nil, *v, 'f', -1, 64)
	case int64:
		return strconv.AppendInt(nil, v, 10)
	}
	return []byte("null")
}

// reportJSON writes {"from","to","group_by","groups":[{"key", figures…}]}
// with the figures in the family's order.
func reportJSON(f analytics.Family, rep analytics.Report) []byte {
	var b bytes.Buffer
	str := func(v any) {
		raw, _ := json.Marshal(v)
		b.Write(raw)
	}
	b.WriteString(`{"from":`)
	str(rep.From.UTC().Format(time.RFC3339Nano))
	b.WriteString(`,"to":`)
	str(rep.To.UTC().Format(time.RFC3339Nano))
	b.WriteString(`,"group_by":`)
	if rep.GroupBy == analytics.All {
		b.WriteString("null")
	} else {
		str(string(rep.GroupBy))
	}
	b.WriteString(`,"groups":[`)
	for i := range rep.Groups {
		g := &rep.Groups[i]
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"key":`)
		str(g.Key)
		for _, c := range analytics.Columns(f) {
			b.WriteString(`,"` + c + `":`)
			b.Write(figureJSON(g.Figure(c)))
		}
		b.WriteByte('}')
	}
	b.WriteString("]}\n")
	return b.Bytes()
}

// csvText neutralises a text cell that a spreadsheet would run as a
// formula (PRODUCT.md, input rules): a leading =, +, -, @, tab or carriage
// return gets a ' in front. Only text cells pass through it — the group
// key, which is a segment, tier, region, owner or month that users typed or
// we wrote. The figures are numbers we format ourselves (strconv), so a
// cell such as -100 is a number to a spreadsheet, not a formula, and is
// left as it is: prefixing it would turn a figure into text.
func csvText(cell string) string {
	if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
		return "'" + cell
	}
	return cell
}

// writeReportCSV writes the groups as CSV (RFC 4180: CRLF line ends,
// quoting as needed): a header row, key then the figures in the JSON
// order, and one row per group; an undefined figure or a null key is an
// empty cell.
func writeReportCSV(w http.ResponseWriter, f analytics.Family, rep analytics.Report) error {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.UseCRLF = true
	cols := analytics.Columns(f)
	_ = cw.Write(append([]string{"key"}, cols...))
	for i := range rep.Groups {
		g := &rep.Groups[i]
		row := make([]string, 0, len(cols)+1)
		key := ""
		if g.Key != nil {
			key = *g.Key
		}
		row = append(row, csvText(key))
		for _, c := range cols {
			cell := string(figureJSON(g.Figure(c)))
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
	w.Header().Set("Content-Disposition", `attachment; filename="`+string(f)+`.csv"`)
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(b.Bytes())
	return err
}
