package http_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	rhttp "github.com/rapport-crm/rapport/infra/http"
)

// allowedRoles is the access matrix of PRODUCT.md, written out by hand so
// that a route whose roles change in code fails here until the change is
// deliberate. Routes not listed are open to every role.
var allowedRoles = map[string][]string{
	// Commands: apps (writer); erasure: admin only.
	"registerCustomer": {"writer"}, "updateProfile": {"writer"}, "classifyCustomer": {"writer"},
	"assignTeamMember": {"writer"}, "logContact": {"writer"}, "scheduleFollowUp": {"writer"},
	"fileComplaint": {"writer"}, "assignComplaint": {"writer"}, "acknowledgeComplaint": {"writer"},
	"escalateComplaint": {"writer"}, "resolveComplaint": {"writer"}, "reopenComplaint": {"writer"},
	"recordSurvey": {"writer"}, "markChurned": {"writer"}, "reactivateCustomer": {"writer"},
	"eraseCustomerData": {},
	"recordPurchase":    {"writer"}, "refundPurchase": {"writer"}, "awardPoints": {"writer"}, "redeemPoints": {"writer"},
	"getValueAnalytics": {"analyst"},
	// Auditors.
	"getHistory": {"auditor"}, "getEvents": {"auditor"}, "getStateAsOf": {"auditor"}, "verifyHistory": {"auditor"},
	// Analysts.
	"getSatisfaction": {"analyst"}, "getChurn": {"analyst"}, "getComplaintAnalytics": {"analyst"},
	"getContactAnalytics": {"analyst"}, "getKPIs": {"analyst"}, "getStaffScorecards": {"analyst"},
	// Work queues: the apps' users and analysts.
	"listComplaintQueue": {"writer", "analyst"}, "listFollowUpQueue": {"writer", "analyst"},
	"listContactDue": {"writer", "analyst"}, "listAtRisk": {"writer", "analyst"},
	// Goals: analysts set, revise, close and read them; auditors read their history.
	"setGoal": {"analyst"}, "listGoals": {"analyst"}, "getGoal": {"analyst"}, "reviseGoal": {"analyst"},
	"closeGoal": {"analyst"}, "getGoalHistory": {"auditor"},
	// Operators.
	"listProjections": {}, "rebuildProjection": {}, "retryParkedStream": {}, "metrics": {},
	// Complaint routing rules: admins only.
	"getComplaintRouting": {}, "setComplaintRouting": {},
	// The change feed: apps and analysts; webhooks: admin only.
	"getFeed":       {"writer", "analyst"},
	"createWebhook": {}, "listWebhooks": {}, "getWebhook": {}, "deleteWebhook": {}, "rotateWebhookSecret": {},
	"enableWebhook": {}, "disableWebhook": {}, "listWebhookDeliveries": {}, "replayWebhook": {},
}

var publicRoutes = []string{"healthz", "readyz"}

// concretePath fills a route template with values that parse.
func concretePath(template string) string {
	r := strings.NewReplacer(
		"{id}", "7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f",
		"{cid}", "0b4f6a2c-3d5e-4f70-8192-a3b4c5d6e7f8",
		"{contact_id}", "0b4f6a2c-3d5e-4f70-8192-a3b4c5d6e7f8",
		"{survey_id}", "0b4f6a2c-3d5e-4f70-8192-a3b4c5d6e7f8",
		"{follow_up_id}", "0b4f6a2c-3d5e-4f70-8192-a3b4c5d6e7f8",
		"{pid}", "0b4f6a2c-3d5e-4f70-8192-a3b4c5d6e7f8",
		"{role}", "support",
		"{name}", "customers",
		"{stream}", "customer-7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f",
	)
	return r.Replace(template)
}

// TestRoleMatrix walks the whole route table as every role, without a key
// and with a revoked key: 401 without a valid key, 403 for a role that may
// not, and anything but 401/403 for one that may.
func TestRoleMatrix(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	_, revoked, err := m.APIKeys.Create(t.Context(), "revoked", []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.APIKeys.Revoke(t.Context(), "revoked"); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, route := range m.HTTP.Routes() {
		path := concretePath(route.Path)
		send := func(key string) *apptest.Response {
			req := apptest.Request{Method: route.Method, Path: path, Key: key}
			if route.Method != http.MethodGet && strings.HasPrefix(route.Path, "/v1/customers") {
				req.Body = `{}` // commands take a body; other POSTs take none
			}
			return m.Do(t, req)
		}
		name := fmt.Sprintf("%s %s (%s)", route.Method, route.Path, route.Name)
		if slices.Contains(publicRoutes, route.Name) {
			if !route.Public {
				t.Errorf("%s should be public", name)
			}
			if resp := send(""); resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden {
				t.Errorf("%s without a key: %d", name, resp.Status)
			}
			checked++
			continue
		}
		if route.Public {
			t.Errorf("%s is public but should need a key", name)
			continue
		}
		if resp := send(""); resp.Status != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without a key: %d, want 401 with WWW-Authenticate", name, resp.Status)
		}
		if resp := send(revoked); resp.Status != http.StatusUnauthorized {
			t.Errorf("%s with a revoked key: %d, want 401", name, resp.Status)
		}
		allowed, listed := allowedRoles[route.Name]
		for _, role := range rhttp.Roles() {
			resp := send(m.Keys[string(role)])
			may := !listed || role == rhttp.RoleAdmin || slices.Contains(allowed, string(role))
			switch {
			case may && (resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden):
				t.Errorf("%s as %s: %d, want it allowed", name, role, resp.Status)
			case !may && resp.Status != http.StatusForbidden:
				t.Errorf("%s as %s: %d, want 403", name, role, resp.Status)
			case resp.Status >= 500:
				t.Errorf("%s as %s: %d %s", name, role, resp.Status, resp.Body)
			}
			checked++
		}
	}
	t.Logf("checked %d route × role combinations over %d routes", checked, len(m.HTTP.Routes()))
}
