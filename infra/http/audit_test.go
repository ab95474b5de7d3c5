package http_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

func TestAuditorEndpoints(t *testing.T) {
	apptest.ForEachStore(t, testAuditorEndpoints)
}

func testAuditorEndpoints(t *testing.T, m *apptest.Main) {
	id := register(t, m, "audited@example.com")
	base := "/v1/customers/" + id
	for i := range 3 {
		requireStatus(t, m.Post(t, base+"/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "call " + string(rune('a'+i)), "by": "bob"}), http.StatusCreated)
	}
	time.Sleep(10 * time.Millisecond)
	beforeChurn := time.Now().UTC()
	time.Sleep(10 * time.Millisecond)
	requireStatus(t, m.Post(t, base+"/churn", map[string]any{"reason": "price"}), http.StatusOK)

	// Events, paged JSON.
	page := requireStatus(t, m.Get(t, "auditor", base+"/events?limit=2"), http.StatusOK)
	items := page["items"].([]any)
	if len(items) != 2 || page["next_revision"].(float64) != 2 {
		t.Fatalf("first page: %v", page)
	}
	first := items[0].(map[string]any)
	if first["type"] != "rapport.CustomerRegistered.v1" || first["actor"] != "writer" || first["data"].(map[string]any)["name"] != "Ada Lovelace" {
		t.Fatalf("first event: %v", first)
	}
	rest := requireStatus(t, m.Get(t, "auditor", base+"/events?from_revision=2"), http.StatusOK)
	if len(rest["items"].([]any)) != 3 || rest["next_revision"] != nil {
		t.Fatalf("second page: %v", rest)
	}

	// Events, NDJSON stream.
	resp := m.Do(t, apptest.Request{Method: http.MethodGet, Path: base + "/events", Key: m.Keys["auditor"], Header: map[string]string{"Accept": "application/x-ndjson"}})
	if resp.Status != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("ndjson: %d %v", resp.Status, resp.Header)
	}
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(resp.Body))
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e["revision"].(float64) != float64(lines) {
			t.Fatalf("line %d: %s %v", lines, sc.Bytes(), err)
		}
		lines++
	}
	if lines != 5 {
		t.Fatalf("ndjson streamed %d events, want 5", lines)
	}

	// State as of before the churn, and now.
	then := requireStatus(t, m.Get(t, "auditor", base+"/state?as_of="+url.QueryEscape(beforeChurn.Format(time.RFC3339Nano))), http.StatusOK)
	if then["customer"].(map[string]any)["status"] != "active" || then["revision"].(float64) != 3 {
		t.Fatalf("state before churn: %v", then)
	}
	now := requireStatus(t, m.Get(t, "auditor", base+"/state"), http.StatusOK)
	if now["customer"].(map[string]any)["status"] != "churned" || now["revision"].(float64) != 4 {
		t.Fatalf("state now: %v", now)
	}
	requireProblem(t, m.Get(t, "auditor", base+"/state?as_of=yesterday"), 422, "invalid_fields", "as_of")
	requireProblem(t, m.Get(t, "auditor", base+"/state?as_of=2000-01-01T00:00:00Z"), 404, "customer_not_found", "")

	// Verification.
	v := requireStatus(t, m.Get(t, "auditor", base+"/verification"), http.StatusOK)
	if v["intact"] != true || v["events"].(float64) != 5 || v["broken_at"] != nil {
		t.Fatalf("verification: %v", v)
	}
	requireProblem(t, m.Get(t, "auditor", "/v1/customers/7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f/verification"), 404, "customer_not_found", "")

	// Erasure: personal fields null in the events and the state; the
	// chain still verifies.
	requireStatus(t, m.Do(t, apptest.Request{Method: http.MethodPost, Path: base + "/erasure", Key: m.Keys["admin"], Body: map[string]any{"reason": "request 9"}}), http.StatusOK)
	erased := requireStatus(t, m.Get(t, "auditor", base+"/events?limit=1"), http.StatusOK)
	e0 := erased["items"].([]any)[0].(map[string]any)
	if e0["erased"] != true || e0["data"].(map[string]any)["name"] != nil || e0["data"].(map[string]any)["segment"] != "enterprise" {
		t.Fatalf("event after erasure: %v", e0)
	}
	st := requireStatus(t, m.Get(t, "auditor", base+"/state"), http.StatusOK)["customer"].(map[string]any)
	if st["status"] != "erased" || st["name"] != nil || st["email"] != nil || st["segment"] != "enterprise" {
		t.Fatalf("state after erasure: %v", st)
	}
	if v := requireStatus(t, m.Get(t, "auditor", base+"/verification"), http.StatusOK); v["intact"] != true {
		t.Fatalf("verification after erasure: %v", v)
	}
	// The email is free again.
	requireStatus(t, m.Post(t, "/v1/customers", map[string]any{"name": "New", "email": "audited@example.com"}), http.StatusCreated)
}
