package http

import (
	"encoding/csv"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rapport-crm/rapport/readmodels/analytics"
)

// TestCSVNeutralisesFormulas: a text cell that a spreadsheet would run as a
// formula gets a ' in front (PRODUCT.md, input rules); a negative figure
// is a number, not a formula, and stays as it is.
func TestCSVNeutralisesFormulas(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	key := func(s string) *string { return &s }
	keys := map[string]string{
		`=HYPERLINK("http://x","y")`: `'=HYPERLINK("http://x","y")`,
		"+1+1":                       "'+1+1",
		"-2+3":                       "'-2+3",
		"@SUM(A1)":                   "'@SUM(A1)",
		"\tcmd":                      "'\tcmd",
		"\rcmd":                      "'cmd", // encoding/csv with CRLF line ends drops a lone CR
		"enterprise":                 "enterprise",
		"a=b":                        "a=b",
	}
	var rep analytics.Report
	for k := range keys {
		rep.Groups = append(rep.Groups, analytics.Group{Key: key(k), NPS: f(-100), Responses: 1})
	}
	s, err := NewServer(Config{Commands: fuzzCommands{}, Keys: fuzzKeys{}, Analytics: reportFake{rep}, Projections: fuzzProjections{}, RateLimit: 1e9, RateBurst: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/v1/analytics/satisfaction?group_by=segment", nil)
	r.Header.Set("Authorization", "Bearer k")
	r.Header.Set("Accept", "text/csv")
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	rows, err := csv.NewReader(strings.NewReader(w.Body.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := rows[0]
	nps := -1
	for i, c := range header {
		if c == "nps" {
			nps = i
		}
	}
	want := map[string]bool{}
	for _, v := range keys {
		want[v] = true
	}
	for _, row := range rows[1:] {
		if !want[row[0]] {
			t.Errorf("key cell %q is not one of the neutralised forms", row[0])
		}
		delete(want, row[0])
		if row[nps] != "-100" {
			t.Errorf("figure cell %q, want -100 (a number, not a formula)", row[nps])
		}
	}
	for v := range want {
		t.Errorf("no row with key cell %q", v)
	}
	if got := csvText("\rcmd"); got != "'\rcmd" {
		t.Errorf("csvText(CR cmd) = %q", got)
	}
}
