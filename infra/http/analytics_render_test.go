package http

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/readmodels/analytics"
)

// reportFake answers one report whatever is asked.
type reportFake struct{ rep analytics.Report }

func (f reportFake) Reads(analytics.Family) []string { return []string{"fake"} }

func (f reportFake) Report(_ context.Context, _ analytics.Family, p analytics.Params) (analytics.Report, error) {
	rep := f.rep
	rep.Params = p
	return rep, nil
}

// TestAnalyticsRendering checks how a report is answered (the figures
// themselves are readmodels/analytics's): CSV with a header, one row per
// group, RFC 4180 line ends and empty cells for nulls; CSV by month in
// the family's column order; JSON when the client prefers it, with null
// for an undefined figure and a null key.
func TestAnalyticsRendering(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	key := func(s string) *string { return &s }
	bySegment := analytics.Report{Groups: []analytics.Group{
		{Key: key("enterprise"), CSATPct: f(50), CSATAvg: f(3.5), NPS: f(25), Responses: 5, CSATResponses: 4, NPSResponses: 4},
		{Key: key("smb"), CSATPct: f(0), CSATAvg: f(1), NPS: f(-100), Responses: 1, CSATResponses: 1, NPSResponses: 1},
		{},
	}}
	byMonth := analytics.Report{Groups: []analytics.Group{{Key: key("2025-03"), CSATPct: f(50)}, {Key: key("2025-04")}, {Key: key("2025-05")}}}
	get := func(rep analytics.Report, path, accept string) *httptest.ResponseRecorder {
		t.Helper()
		s, err := NewServer(Config{Commands: fuzzCommands{}, Keys: fuzzKeys{}, Analytics: reportFake{rep}, Projections: fuzzProjections{}, RateLimit: 1e9, RateBurst: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set("Authorization", "Bearer k")
		r.Header.Set("Accept", accept)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		return w
	}
	const period = "from=2025-03-01T00:00:00Z&to=2025-06-01T00:00:00Z"

	resp := get(bySegment, "/v1/analytics/satisfaction?"+period+"&group_by=segment&min_position=7", "text/csv")
	wantCSV := "key,csat_pct,csat_avg,nps,responses,csat_responses,nps_responses\r\n" +
		"enterprise,50,3.5,25,5,4,4\r\n" +
		"smb,0,1,-100,1,1,1\r\n" +
		",,,,0,0,0\r\n"
	if !strings.HasPrefix(resp.Header().Get("Content-Type"), "text/csv") || resp.Body.String() != wantCSV {
		t.Errorf("CSV: %s\n%q\nwant\n%q", resp.Header().Get("Content-Type"), resp.Body, wantCSV)
	}
	if cd := resp.Header().Get("Content-Disposition"); cd != `attachment; filename="satisfaction.csv"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	resp = get(byMonth, "/v1/analytics/kpis?"+period+"&group_by=month", "text/csv;q=0.9, application/json;q=0.5")
	lines := strings.Split(strings.TrimSuffix(resp.Body.String(), "\r\n"), "\r\n")
	if len(lines) != 4 || lines[0] != "key,"+strings.Join(analytics.Columns(analytics.KPIs), ",") || !strings.HasPrefix(lines[1], "2025-03,") {
		t.Errorf("KPI CSV by month:\n%s", resp.Body)
	}
	// JSON preferred: JSON.
	resp = get(bySegment, "/v1/analytics/satisfaction?"+period+"&group_by=segment", "application/json, text/csv;q=0.1")
	if !strings.HasPrefix(resp.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("Accept preferring JSON answered %s", resp.Header().Get("Content-Type"))
	}
	var body struct {
		From, To time.Time
		GroupBy  *string `json:"group_by"`
		Groups   []map[string]any
	}
	if err := json.Unmarshal(resp.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if *body.GroupBy != "segment" || !body.From.Equal(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)) || len(body.Groups) != 3 ||
		body.Groups[0]["key"] != "enterprise" || body.Groups[0]["csat_avg"] != 3.5 || body.Groups[0]["responses"] != 5.0 ||
		body.Groups[2]["key"] != nil || body.Groups[2]["csat_pct"] != nil || body.Groups[2]["responses"] != 0.0 {
		t.Errorf("JSON: %s", resp.Body)
	}
	for _, k := range []string{"key", "csat_pct", "csat_avg", "nps", "responses", "csat_responses", "nps_responses"} {
		if _, ok := body.Groups[2][k]; !ok {
			t.Errorf("JSON lacks %s: %s", k, resp.Body)
		}
	}
}
