package http_test

import (
	"net/http"
	"testing"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// FuzzCommandsReachEveryProjector drives fuzzed text and times through the
// whole path — HTTP, command, event, every projector — of one running
// service: no answer may be a 5xx, and after each input every projector
// must have caught up and still be running. What the API accepts, every
// read model must be able to store (PRODUCT.md, input rules); a NUL in a
// name once stopped the customers and history projectors while the API
// answered 201.
func FuzzCommandsReachEveryProjector(f *testing.F) {
	for _, seed := range []struct{ text, at string }{
		{"Ada Lovelace", "2026-01-02T03:04:05Z"},
		{"Nul\x00Name", "0000-01-01T00:00:00+01:00"},
		{"esc\x1b[31m", "9999-12-31T23:59:59-14:00"},
		{"nel\u0085", "1900-01-01T00:00:00Z"},
		{"\xed\xa0\x80", "1899-12-31T23:59:59Z"},
		{"tab\tcr\rlf\n", "2000-02-29T12:00:00.123456789+05:30"},
		{"=HYPERLINK(\"x\")", "not a time"},
		{"\u200b\u00ad\u202e", ""},
	} {
		f.Add(seed.text, seed.at)
	}
	m := apptest.MustOpen(f)
	f.Fuzz(func(t *testing.T, text, at string) {
		post := func(path string, body map[string]any) *apptest.Response {
			resp := m.Post(t, path, body)
			if resp.Status >= 500 {
				t.Fatalf("POST %s %v: %d %s", path, body, resp.Status, resp.Body)
			}
			return resp
		}
		withTime := func(body map[string]any, field string) map[string]any {
			if at != "" {
				body[field] = at
			}
			return body
		}
		resp := post("/v1/customers", map[string]any{"name": text, "phone": "+44 20 7946 0000", "company": text, "segment": text, "region": text, "tags": []string{text}})
		if resp.Status != http.StatusCreated {
			resp = post("/v1/customers", map[string]any{"name": "Fuzz", "phone": "+44 20 7946 0000"})
			if resp.Status != http.StatusCreated {
				t.Fatalf("register: %d %s", resp.Status, resp.Body)
			}
		}
		base := "/v1/customers/" + resp.Map(t)["customer_id"].(string)
		post(base+"/contacts", withTime(map[string]any{"channel": "phone", "direction": "inbound", "summary": text, "by": text}, "occurred_at"))
		post(base+"/follow-ups", withTime(map[string]any{"by": text, "note": text}, "due_at"))
		post(base+"/complaints", map[string]any{"category": text, "severity": "high", "description": text})
		post(base+"/surveys", withTime(map[string]any{"csat": 2, "nps": 3, "comment": text}, "answered_at"))
		post(base+"/churn", withTime(map[string]any{"reason": text}, "churned_at"))
		requireProjectorsRunning(t, m)
	})
}
