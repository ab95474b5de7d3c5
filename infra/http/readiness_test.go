package http_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	rhttp "github.com/rapport-crm/rapport/infra/http"
)

// notReadModelQueries are the GET routes that read no read model: the
// notReadModelQueries are the GET routes that read no read model: the
// log (auditors, the goals' history and the routing rules), the engine's
// bookkeeping, the webhook subscriptions (rapport.webhook_*, no
// projector's), or nothing at all.
var notReadModelQueries = []string{"healthz", "readyz", "metrics", "openapi", "getEvents", "getStateAsOf", "verifyHistory", "listProjections",
	"getGoalHistory", "getComplaintRouting", "listWebhooks", "getWebhook", "listWebhookDeliveries"}

// TestQueriesBeforeReadModelsExist is a cold start: no projector has
// created its tables yet (here none runs, so they never do). Every query
// of a read model must answer 503 not_caught_up with Retry-After, as a
// problem, never a 500.
func TestQueriesBeforeReadModelsExist(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t, func(c *app.Config) { c.RunProjections = false })
	checked := 0
	for _, route := range m.HTTP.Routes() {
		if route.Method != http.MethodGet || slices.Contains(notReadModelQueries, route.Name) {
			continue
		}
		resp := m.Get(t, "admin", concretePath(route.Path))
		var p rhttp.Problem
		if resp.Status == http.StatusServiceUnavailable {
			resp.JSON(t, &p)
		}
		if resp.Status != http.StatusServiceUnavailable || p.Reason != "not_caught_up" || resp.Header.Get("Retry-After") == "" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s %s before the read models exist: %d %s (Retry-After %q), want 503 not_caught_up with Retry-After",
				route.Name, route.Path, resp.Status, resp.Body, resp.Header.Get("Retry-After"))
		}
		checked++
	}
	if checked < 16 {
		t.Errorf("checked %d query routes; the route table has more", checked)
	}
}
