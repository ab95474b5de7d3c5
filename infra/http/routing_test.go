package http_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// routingJourney sets complaint routing rules over HTTP (refusals
// included), files a complaint and waits until the policy has assigned it,
// and returns the complaint's customer and its events as the auditor
// reads them. TestOpenAPITraffic runs it too, so every exchange is checked
// against the OpenAPI document.
func routingJourney(t *testing.T, m *apptest.Main) (customer string, events []map[string]any) {
	t.Helper()
	admin := m.Keys["admin"]
	put := func(body any, header map[string]string, key string, want int) map[string]any {
		t.Helper()
		resp := m.Do(t, apptest.Request{Method: http.MethodPut, Path: "/v1/routing/complaints", Key: key, Body: body, Header: header})
		if resp.Status != want {
			t.Fatalf("PUT rules: %d %s, want %d", resp.Status, resp.Body, want)
		}
		return resp.Map(t)
	}
	if got := requireStatus(t, m.Get(t, "admin", "/v1/routing/complaints"), http.StatusOK); got["version"] != 0.0 || len(got["versions"].([]any)) != 0 {
		t.Fatalf("before any rules: %v", got)
	}
	rules := map[string]any{"rules": []map[string]any{
		{"name": "critical", "severities": []string{"critical"}, "assignee": "alice"},
		{"name": "vip", "tiers": []string{"A"}, "categories": []string{"billing"}, "pool": []string{"bob", "carol"}},
	}}
	// Refusals: another role, bad fields (each named), a stale If-Match.
	put(rules, nil, m.Keys["analyst"], http.StatusForbidden)
	bad := put(map[string]any{"rules": []map[string]any{{"name": "x", "assignee": "a", "pool": []string{"b"}}, {"name": "y", "tiers": []string{"D"}}}},
		nil, admin, http.StatusUnprocessableEntity)
	var fields []string
	for _, e := range bad["errors"].([]any) {
		fields = append(fields, e.(map[string]any)["field"].(string))
	}
	if strings.Join(fields, ",") != "rules[0].pool,rules[1].tiers[0],rules[1].assignee" {
		t.Errorf("422 fields %v", fields)
	}
	put(map[string]any{"rules": []map[string]any{{"name": "x", "assignee": 7}}}, nil, admin, http.StatusUnprocessableEntity)
	put(map[string]any{"rules": []map[string]any{{"name": "x", "assignee": "a", "owner": "b"}}}, nil, admin, http.StatusBadRequest)
	put(rules, map[string]string{"If-Match": `"3"`}, admin, http.StatusPreconditionFailed)

	set := put(rules, map[string]string{"If-Match": `"0"`}, admin, http.StatusOK)
	if set["version"] != 1.0 || set["changed"] != true || set["set_by"] != "admin" || len(set["rules"].([]any)) != 2 {
		t.Fatalf("set: %v", set)
	}
	if again := put(rules, nil, admin, http.StatusOK); again["version"] != 1.0 || again["changed"] != false {
		t.Fatalf("the same rules again: %v", again)
	}

	reg := requireStatus(t, m.Post(t, "/v1/customers", map[string]any{"name": "Routed Ltd", "email": "routed@example.com", "tier": "A"}), http.StatusCreated)
	customer = reg["customer_id"].(string)
	filed := requireStatus(t, m.Post(t, "/v1/customers/"+customer+"/complaints", map[string]any{"category": "billing", "severity": "high", "description": "charged twice"}), http.StatusCreated)
	complaint := filed["complaint_id"].(string)
	deadline := time.Now().Add(60 * time.Second)
	for {
		page := requireStatus(t, m.Get(t, "auditor", "/v1/customers/"+customer+"/events"), http.StatusOK)
		events = events[:0]
		assigned := false
		for _, e := range page["items"].([]any) {
			ev := e.(map[string]any)
			events = append(events, ev)
			assigned = assigned || ev["type"] == "rapport.ComplaintAssigned.v1"
		}
		if assigned {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("complaint %s not routed: %v", complaint, events)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return customer, events
}

// TestComplaintRoutingOverHTTP: admins set versioned rules; a filed
// complaint is then assigned by the policy, and its history shows the
// rule as the actor and the ComplaintFiled event as the causation.
func TestComplaintRoutingOverHTTP(t *testing.T) {
	m := apptest.MustOpen(t)
	customer, events := routingJourney(t, m)
	var filedID string
	for _, e := range events {
		t.Logf("customer %s rev %v %s actor=%v causation=%v event_id=%v data=%v", customer, e["revision"], e["type"], e["actor"], e["causation_id"], e["event_id"], e["data"])
		switch e["type"] {
		case "rapport.ComplaintFiled.v1":
			filedID = e["event_id"].(string)
		case "rapport.ComplaintAssigned.v1":
			if e["actor"] != "routing:v1:vip" || e["causation_id"] != filedID || e["data"].(map[string]any)["assignee"] != "bob" {
				t.Errorf("assignment %v, want bob by routing:v1:vip caused by %s", e, filedID)
			}
		}
	}
	got := requireStatus(t, m.Get(t, "admin", "/v1/routing/complaints"), http.StatusOK)
	if got["version"] != 1.0 || len(got["versions"].([]any)) != 1 {
		t.Errorf("GET: %v", got)
	}
	// Only admins read them.
	requireStatus(t, m.Get(t, "auditor", "/v1/routing/complaints"), http.StatusForbidden)
	// The routing stream is no customer's: no projector met it, none is
	// degraded, the policy is one of them.
	names := map[string]bool{}
	for _, p := range requireStatus(t, m.Get(t, "admin", "/v1/projections"), http.StatusOK)["items"].([]any) {
		p := p.(map[string]any)
		names[p["name"].(string)] = true
		if p["degraded"] == true || len(p["parked"].([]any)) > 0 || p["error"] != nil {
			t.Errorf("projection %v after the routing stream was written", p)
		}
	}
	if !names["routing"] || !names["customers"] {
		t.Errorf("projections %v", names)
	}
}
