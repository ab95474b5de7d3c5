package http_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// historyOf reads a customer's whole audit history once the read models
// have reached position.
func historyOf(t *testing.T, m *apptest.Main, id string, position float64, query string) []any {
	t.Helper()
	body := requireStatus(t, m.Get(t, "auditor", fmt.Sprintf("/v1/customers/%s/history?min_position=%.0f&%s", id, position, query)), http.StatusOK)
	return body["items"].([]any)
}

func TestAuditHistory(t *testing.T) {
	t.Parallel()
	apptest.ForEachStore(t, testAuditHistory)
}

func testAuditHistory(t *testing.T, m *apptest.Main) {
	id := register(t, m, "history@example.com")
	base := "/v1/customers/" + id
	requireStatus(t, m.Do(t, apptest.Request{Method: http.MethodPatch, Path: base, Key: m.Keys["writer"], Body: map[string]any{"email": "new@example.com", "company": "Acme"}}), http.StatusOK)
	requireStatus(t, m.Do(t, apptest.Request{Method: http.MethodPut, Path: base + "/classification", Key: m.Keys["writer"], Body: map[string]any{"tier": "B", "region": "emea"}}), http.StatusOK)
	last := requireStatus(t, m.Post(t, base+"/contacts", map[string]any{"channel": "visit", "direction": "outbound", "summary": "on-site visit", "by": "carol"}), http.StatusCreated)

	items := historyOf(t, m, id, last["position"].(float64), "")
	if len(items) != 4 {
		t.Fatalf("history has %d entries, want 4: %v", len(items), items)
	}
	profile := items[1].(map[string]any)
	if profile["actor"] != "writer" || profile["type"] != "rapport.CustomerProfileUpdated.v1" || profile["summary"] != "Profile updated: company, email" {
		t.Fatalf("profile entry: %v", profile)
	}
	email := profile["personal_changes"].(map[string]any)["email"].(map[string]any)
	if email["before"] != "history@example.com" || email["after"] != "new@example.com" {
		t.Fatalf("email change: %v", email)
	}
	tier := items[2].(map[string]any)["changes"].(map[string]any)["tier"].(map[string]any)
	if tier["before"] != "A" || tier["after"] != "B" {
		t.Fatalf("tier change: %v", tier)
	}
	if region := items[2].(map[string]any)["changes"].(map[string]any)["region"].(map[string]any); region["before"] != nil || region["after"] != "emea" {
		t.Fatalf("region change: %v", region)
	}
	contact := items[3].(map[string]any)
	if contact["personal"].(map[string]any)["summary"] != "on-site visit" || contact["details"].(map[string]any)["channel"] != "visit" {
		t.Fatalf("contact entry: %v", contact)
	}

	// Filters: by type, by time, and pages.
	if got := historyOf(t, m, id, 0, "type=ContactLogged"); len(got) != 1 {
		t.Fatalf("type filter: %v", got)
	}
	if got := historyOf(t, m, id, 0, "from="+url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))); len(got) != 0 {
		t.Fatalf("from filter: %v", got)
	}
	page := requireStatus(t, m.Get(t, "auditor", base+"/history?limit=3"), http.StatusOK)
	if len(page["items"].([]any)) != 3 || page["next_cursor"] == nil {
		t.Fatalf("first page: %v", page)
	}
	rest := requireStatus(t, m.Get(t, "auditor", base+"/history?limit=3&cursor="+page["next_cursor"].(string)), http.StatusOK)
	if len(rest["items"].([]any)) != 1 || rest["next_cursor"] != nil {
		t.Fatalf("second page: %v", rest)
	}
	requireProblem(t, m.Get(t, "auditor", base+"/history?type=Nonsense"), 422, "invalid_fields", "type")
	requireProblem(t, m.Get(t, "auditor", base+"/history?from=yesterday"), 422, "invalid_fields", "from")

	// Erasure nulls the personal columns of every entry, and a rebuild
	// does not bring them back.
	erased := requireStatus(t, m.Do(t, apptest.Request{Method: http.MethodPost, Path: base + "/erasure", Key: m.Keys["admin"], Body: map[string]any{"reason": "request 12"}}), http.StatusOK)
	checkErased := func(items []any) {
		t.Helper()
		if len(items) != 5 {
			t.Fatalf("history after erasure has %d entries: %v", len(items), items)
		}
		for _, it := range items {
			e := it.(map[string]any)
			if e["personal"] != nil || e["personal_changes"] != nil {
				t.Fatalf("personal data survived erasure: %v", e)
			}
		}
		if tier := items[2].(map[string]any)["changes"].(map[string]any)["tier"].(map[string]any); tier["after"] != "B" {
			t.Fatalf("classification changes are not personal and stay: %v", items[2])
		}
	}
	checkErased(historyOf(t, m, id, erased["position"].(float64), ""))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Engine.Rebuild(ctx, "history", nil); err != nil {
		t.Fatal(err)
	}
	checkErased(historyOf(t, m, id, erased["position"].(float64), ""))
}
