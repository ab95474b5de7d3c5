package app_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/pgtest"
)

// TestPostgresDownAnswers503 stops the database the service runs on: every
// request that needs it answers 503 with a problem body and Retry-After —
// never 500, which would tell a client its request was wrong or the service
// broken, when it only has to retry. Registration (email reservation, data
// key), reads, queries, erasure and an API key the service has not seen yet
// each take another path to the database.
func TestPostgresDownAnswers503(t *testing.T) {
	pg := pgtest.NewPrivateServer(t)
	m := apptest.MustOpen(t, func(c *app.Config) {
		c.DatabaseURL = pg.NewDatabase()
		c.CommandTimeout = 2 * time.Second
	})
	resp := m.Post(t, "/v1/customers", map[string]any{"name": "Before", "email": "before@example.com"})
	if resp.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.Status, resp.Body)
	}
	id := resp.Map(t)["customer_id"].(string)
	deadline := time.Now().Add(15 * time.Second)
	for m.Get(t, "writer", "/v1/customers/"+id).Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the registration never reached the read model")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Warm every role's key so that the checks below meet the database
	// behind the key, not only the key lookup; the unseen key comes last.
	for _, role := range []string{"writer", "analyst", "auditor", "admin"} {
		if r := m.Get(t, role, "/v1/customers/"+id); r.Status != http.StatusOK && r.Status != http.StatusForbidden {
			t.Fatalf("%s reads the customer: %d %s", role, r.Status, r.Body)
		}
	}
	pg.Stop()
	t.Cleanup(pg.Start)

	requests := []struct {
		name string
		req  apptest.Request
	}{
		{"register with email", apptest.Request{Method: http.MethodPost, Path: "/v1/customers", Key: m.Keys["writer"], Body: map[string]any{"name": "During", "email": "during@example.com"}}},
		{"register with phone only", apptest.Request{Method: http.MethodPost, Path: "/v1/customers", Key: m.Keys["writer"], Body: map[string]any{"name": "Phone", "phone": "+1 555 0199"}}},
		{"log a contact", apptest.Request{Method: http.MethodPost, Path: "/v1/customers/" + id + "/contacts", Key: m.Keys["writer"], Body: map[string]any{"channel": "chat", "direction": "inbound", "summary": "hi", "by": "bot"}}},
		{"update the profile", apptest.Request{Method: http.MethodPatch, Path: "/v1/customers/" + id, Key: m.Keys["writer"], Body: map[string]any{"company": "Acme"}}},
		{"erase", apptest.Request{Method: http.MethodPost, Path: "/v1/customers/" + id + "/erasure", Key: m.Keys["admin"], Body: map[string]any{"reason": "asked"}}},
		{"read a customer", apptest.Request{Method: http.MethodGet, Path: "/v1/customers/" + id, Key: m.Keys["writer"]}},
		{"list customers", apptest.Request{Method: http.MethodGet, Path: "/v1/customers", Key: m.Keys["analyst"]}},
		{"history", apptest.Request{Method: http.MethodGet, Path: "/v1/customers/" + id + "/history", Key: m.Keys["auditor"]}},
		{"kpis", apptest.Request{Method: http.MethodGet, Path: "/v1/analytics/kpis", Key: m.Keys["analyst"]}},
		{"goals", apptest.Request{Method: http.MethodGet, Path: "/v1/goals", Key: m.Keys["analyst"]}},
		{"complaints queue", apptest.Request{Method: http.MethodGet, Path: "/v1/work/complaints", Key: m.Keys["writer"]}},
		{"feed", apptest.Request{Method: http.MethodGet, Path: "/v1/feed", Key: m.Keys["writer"]}},
		{"an unseen API key", apptest.Request{Method: http.MethodGet, Path: "/v1/customers", Key: "rpk_unseenAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
	}
	for _, rq := range requests {
		resp := m.Do(t, rq.req)
		if resp.Status != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/problem+json" || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s with the database down: %d %s %s, want 503 problem+json with Retry-After",
				rq.name, resp.Status, resp.Header.Get("Content-Type"), resp.Body)
		}
	}
}
