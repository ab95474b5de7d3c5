package http_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/risk"
)

// FuzzCustomerListQuery sends arbitrary query strings to GET /v1/customers
// (and the id path to GET /v1/customers/{id}) on a server whose queries
// need no database: every answer is a 200 whose parameters reached the
// queries checked, or a 4xx problem document; never a 5xx or a panic.
func FuzzCustomerListQuery(f *testing.F) {
	for _, seed := range []string{
		"",
		"segment=smb&tier=A&region=emea&owner=carol&status=active&risk=high&q=ada&limit=10",
		"risk=high&no_contact_days=60",
		"limit=500&cursor=MTc2MDAwMDAwMDAwMDAwMC4wMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA",
		"limit=0", "limit=-1", "limit=99999999999999999999", "limit=1e3",
		"status=gone&risk=extreme&tier=a", "cursor=%FF%FE", "cursor=Li4u",
		"q=%25_%5C", "q=%00", "segment=%20", "segment=%C3%28", "owner=", "no_contact_days=36501",
		"min_position=18446744073709551616", "min_position=5", "a=%zz&&==&;", "segment=a&segment=b",
	} {
		f.Add(seed)
	}
	fake := &cqFake{}
	h := cqServer(f, fake)
	f.Fuzz(func(t *testing.T, raw string) {
		for _, path := range []string{"/v1/customers", "/v1/customers/" + uuid.NewString(), "/v1/customers/" + uuid.Nil.String()} {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.URL.RawQuery = raw
			req.Header.Set("Authorization", "Bearer fuzz")
			*fake = cqFake{limit: -1}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			switch {
			case rec.Code == http.StatusOK:
				var body map[string]any
				if rec.Header().Get("Content-Type") != "application/json" || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
					t.Fatalf("%s?%q: 200 without a JSON body: %s", path, raw, rec.Body)
				}
				if path == "/v1/customers" {
					checkListCall(t, raw, fake)
				}
			case rec.Code >= 400 && rec.Code < 500:
				var p struct {
					Status int    `json:"status"`
					Reason string `json:"reason"`
					Errors []struct {
						Field string `json:"field"`
					} `json:"errors"`
				}
				if rec.Header().Get("Content-Type") != "application/problem+json" || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Status != rec.Code || p.Reason == "" {
					t.Fatalf("%s?%q: %d answer is not a problem document: %s", path, raw, rec.Code, rec.Body)
				}
				if rec.Code == http.StatusUnprocessableEntity && len(p.Errors) == 0 {
					t.Fatalf("%s?%q: 422 names no parameter: %s", path, raw, rec.Body)
				}
			default:
				t.Fatalf("%s?%q: %d %s", path, raw, rec.Code, rec.Body)
			}
		}
	})
}

// checkListCall checks what a 200 passed to the queries.
func checkListCall(t *testing.T, raw string, fake *cqFake) {
	t.Helper()
	fl := fake.filter
	ok := fake.limit >= 1 && fake.limit <= customers.MaxLimit &&
		(fl.Tier == "" || domain.ValidTier(fl.Tier)) &&
		(fl.Status == "" || fl.Status == "active" || fl.Status == "churned" || fl.Status == "erased") &&
		(fl.Risk == "" || risk.ValidLevel(fl.Risk)) &&
		pgText(fl.Q, 200) && pgText(fl.Segment, domain.MaxLabelLength) && pgText(fl.Region, domain.MaxLabelLength) &&
		pgText(fl.Owner, domain.MaxShortTextLength) &&
		fl.NoContactDays >= 0 && fl.NoContactDays <= 36500 &&
		(fake.cursor == "" || customers.ValidCursor(fake.cursor))
	if !ok {
		t.Fatalf("?%q reached the queries as %+v, limit %d, cursor %q", raw, fl, fake.limit, fake.cursor)
	}
}

// pgText: what PostgreSQL takes as text, within max characters.
func pgText(s string, max int) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0) && utf8.RuneCountInString(s) <= max
}
