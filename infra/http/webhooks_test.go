package http_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/webhooks"
)

// TestWebhookAdminAPI walks a subscription through the admin API (every
// answer checked against the OpenAPI document): created with its secret
// shown once, a command's event delivered signed, the delivery log,
// replay, rotation, disable/enable, delete; and the refusals.
func TestWebhookAdminAPI(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t, func(c *app.Config) {
		c.Webhooks.AllowTargets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	var (
		mu     sync.Mutex
		bodies [][]byte
		secret string
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := webhooks.Verify(secret, r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body, time.Now(), 5*time.Minute); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		bodies = append(bodies, body)
	}))
	defer receiver.Close()
	admin := func(method, path string, body any) *apptest.Response {
		return m.Do(t, apptest.Request{Method: method, Path: path, Key: m.Keys["admin"], Body: body})
	}

	requireProblem(t, admin(http.MethodPost, "/v1/webhooks", map[string]any{}), 422, "invalid_fields", "url")
	requireProblem(t, admin(http.MethodPost, "/v1/webhooks", map[string]any{"url": "http://10.0.0.1/hook"}), 422, "invalid_fields", "url")
	requireProblem(t, admin(http.MethodPost, "/v1/webhooks", map[string]any{"url": receiver.URL, "event_types": []string{"complaint.filed"}}), 422, "invalid_fields", "event_types")
	requireStatus(t, m.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/webhooks", Key: m.Keys["writer"], Body: map[string]any{"url": receiver.URL}}), http.StatusForbidden)

	resp := admin(http.MethodPost, "/v1/webhooks", map[string]any{"url": receiver.URL + "/hook", "event_types": []string{"contact.logged.v1"}, "description": "crm sync"})
	created := requireStatus(t, resp, http.StatusCreated)
	id := created["id"].(string)
	mu.Lock()
	secret = created["secret"].(string)
	mu.Unlock()
	if resp.Header.Get("Location") != "/v1/webhooks/"+id || !strings.HasPrefix(secret, "whsec_") || created["state"] != "active" {
		t.Fatalf("created: %v (Location %q)", created, resp.Header.Get("Location"))
	}
	got := requireStatus(t, admin(http.MethodGet, "/v1/webhooks/"+id, nil), http.StatusOK)
	if _, shown := got["secret"]; shown {
		t.Fatal("GET shows the secret")
	}
	list := requireStatus(t, admin(http.MethodGet, "/v1/webhooks", nil), http.StatusOK)
	if items := list["items"].([]any); len(items) != 1 || strings.Contains(string(mustJSON(t, list)), secret) {
		t.Fatalf("list: %v", list)
	}

	// A command's event arrives, signed; the registration does not (type
	// filter).
	logActivity(t, m, 1)
	waitUntil(t, 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) == 1 })
	mu.Lock()
	var event map[string]any
	_ = json.Unmarshal(bodies[0], &event)
	mu.Unlock()
	if event["type"] != "contact.logged.v1" || strings.Contains(string(bodies[0]), "private words") {
		t.Fatalf("delivered %v", event)
	}
	var log, entry map[string]any
	waitUntil(t, 10*time.Second, func() bool { // the attempt is recorded just after the receiver answers
		log = requireStatus(t, admin(http.MethodGet, "/v1/webhooks/"+id+"/deliveries", nil), http.StatusOK)
		entry = log["items"].([]any)[0].(map[string]any)
		return entry["state"] == "delivered"
	})
	if entry["state"] != "delivered" || entry["attempts"].(float64) != 1 || len(entry["log"].([]any)) != 1 {
		t.Fatalf("delivery log: %v", log)
	}
	requireStatus(t, admin(http.MethodGet, "/v1/webhooks/"+id+"/deliveries?state=pending", nil), http.StatusOK)
	requireProblem(t, admin(http.MethodGet, "/v1/webhooks/"+id+"/deliveries?state=lost", nil), 422, "invalid_fields", "state")

	// Replay from the start: the same event again, with its id.
	replayed := requireStatus(t, admin(http.MethodPost, "/v1/webhooks/"+id+"/replay", map[string]any{"from_position": 0}), http.StatusAccepted)
	if replayed["queued"].(float64) != 1 {
		t.Fatalf("replay: %v", replayed)
	}
	waitUntil(t, 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) == 2 })
	requireProblem(t, admin(http.MethodPost, "/v1/webhooks/"+id+"/replay", map[string]any{}), 422, "invalid_fields", "from_position")

	rotated := requireStatus(t, admin(http.MethodPost, "/v1/webhooks/"+id+"/secret", nil), http.StatusOK)
	if rotated["secret"] == secret {
		t.Fatal("rotation kept the secret")
	}
	if s := requireStatus(t, admin(http.MethodPost, "/v1/webhooks/"+id+"/disable", nil), http.StatusOK); s["state"] != "disabled" {
		t.Fatalf("disable: %v", s)
	}
	if s := requireStatus(t, admin(http.MethodPost, "/v1/webhooks/"+id+"/enable", nil), http.StatusOK); s["state"] != "active" {
		t.Fatalf("enable: %v", s)
	}
	requireStatus(t, admin(http.MethodDelete, "/v1/webhooks/"+id, nil), http.StatusNoContent)
	requireProblem(t, admin(http.MethodGet, "/v1/webhooks/"+id, nil), 404, "webhook_not_found", "")
	requireProblem(t, admin(http.MethodGet, "/v1/webhooks/not-an-id", nil), 404, "webhook_not_found", "")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitUntil(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
