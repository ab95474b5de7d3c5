package http_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// goalTraffic drives every goal route through TestOpenAPITraffic's
// validating client: set, read, list, revise, close, the history, and the
// goal answers of the error statuses.
func goalTraffic(t *testing.T, m *apptest.Main, do func(method, path, key string, body any, header map[string]string, want int) *apptest.Response) {
	t.Helper()
	analyst, auditor := m.Keys["analyst"], m.Keys["auditor"]
	now := time.Now().UTC()
	set := do(http.MethodPost, "/v1/goals", analyst, map[string]any{
		"name": "CSAT at 90 %", "figure": "csat_pct", "comparator": "at_least", "target": 90,
		"from": now.Add(-24 * time.Hour).Format(time.RFC3339), "to": now.Add(30 * 24 * time.Hour).Format(time.RFC3339),
		"scope": map[string]any{"segment": "smb"},
	}, map[string]string{"Idempotency-Key": "goal-1"}, http.StatusCreated)
	var res struct {
		GoalID   string `json:"goal_id"`
		Position uint64 `json:"position"`
	}
	set.JSON(t, &res)
	path := "/v1/goals/" + res.GoalID
	do(http.MethodGet, path+"?min_position="+strconv.FormatUint(res.Position, 10), analyst, nil, nil, http.StatusOK)
	do(http.MethodGet, "/v1/goals?state=all&figure=csat_pct&limit=5", analyst, nil, nil, http.StatusOK)
	do(http.MethodPatch, path, analyst, map[string]any{"target": 92, "scope": map[string]any{}}, map[string]string{"If-Match": set.Header.Get("ETag")}, http.StatusOK)
	do(http.MethodPatch, path, analyst, map[string]any{"target": 93}, map[string]string{"If-Match": `"0"`}, http.StatusPreconditionFailed)
	do(http.MethodPost, path+"/closure", analyst, map[string]any{"reason": "replaced"}, nil, http.StatusOK)
	do(http.MethodPost, path+"/closure", analyst, map[string]any{}, nil, http.StatusConflict)
	do(http.MethodGet, path+"/history", auditor, nil, nil, http.StatusOK)
	do(http.MethodPost, "/v1/goals", analyst, map[string]any{"name": "x", "figure": "happiness", "comparator": "at_least", "target": 1,
		"from": "2026-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}, nil, http.StatusUnprocessableEntity)
	do(http.MethodGet, "/v1/goals/7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f", analyst, nil, nil, http.StatusNotFound)
	do(http.MethodGet, "/v1/goals", m.Keys["writer"], nil, nil, http.StatusForbidden)

	// The staff scorecards, as JSON and CSV.
	do(http.MethodGet, "/v1/analytics/staff?min_position="+strconv.FormatUint(res.Position, 10), analyst, nil, nil, http.StatusOK)
	do(http.MethodGet, "/v1/analytics/staff?from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z", analyst, nil, map[string]string{"Accept": "text/csv"}, http.StatusOK)
	do(http.MethodGet, "/v1/analytics/staff?group_by=owner", analyst, nil, nil, http.StatusUnprocessableEntity)
}
