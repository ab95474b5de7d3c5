package http_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// problemFields lists the fields a 422 names.
func problemFields(t *testing.T, resp *apptest.Response) []string {
	t.Helper()
	var p struct {
		Errors []struct{ Field string } `json:"errors"`
	}
	resp.JSON(t, &p)
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	return out
}

// TestGoalEndpoints drives /v1/goals over HTTP: an analyst sets, reads,
// lists, revises and closes goals, an auditor reads the history; invalid
// goals are 422 naming the field, an unknown one 404, a closed one 409;
// writers may not touch goals; a retry with the Idempotency-Key answers
// the first answer.
func TestGoalEndpoints(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	analyst := m.Keys["analyst"]
	do := func(method, path, key string, body any, header map[string]string) *apptest.Response {
		t.Helper()
		return m.Do(t, apptest.Request{Method: method, Path: path, Key: key, Body: body, Header: header})
	}
	now := time.Now().UTC()
	valid := func() map[string]any {
		return map[string]any{"name": "Keep churn under 5 %", "figure": "churn_rate", "comparator": "at_most", "target": 5,
			"from": now.AddDate(0, 0, -10).Format(time.RFC3339), "to": now.AddDate(0, 0, 80).Format(time.RFC3339)}
	}

	// 422 naming the field.
	for field, change := range map[string]func(map[string]any){
		"figure":       func(b map[string]any) { b["figure"] = "happiness" },
		"to":           func(b map[string]any) { b["to"] = b["from"] },
		"target":       func(b map[string]any) { b["target"] = 101 },
		"comparator":   func(b map[string]any) { b["comparator"] = "around" },
		"name":         func(b map[string]any) { delete(b, "name") },
		"from":         func(b map[string]any) { b["from"] = "last monday" },
		"scope":        func(b map[string]any) { b["scope"] = map[string]any{"segment": "smb", "tier": "A"} },
		"scope.tier":   func(b map[string]any) { b["scope"] = map[string]any{"tier": "Z"} },
		"scope.region": func(b map[string]any) { b["scope"] = map[string]any{"region": "e\x01u"} },
	} {
		body := valid()
		change(body)
		resp := do(http.MethodPost, "/v1/goals", analyst, body, nil)
		if resp.Status != http.StatusUnprocessableEntity || !slices.Contains(problemFields(t, resp), field) {
			t.Errorf("%s: %d %s, want 422 naming it", field, resp.Status, resp.Body)
		}
	}
	// Malformed and unknown fields are 400.
	body := valid()
	body["owner"] = "alice"
	if resp := do(http.MethodPost, "/v1/goals", analyst, body, nil); resp.Status != http.StatusBadRequest {
		t.Errorf("unknown field: %d %s", resp.Status, resp.Body)
	}
	// Roles: writers and auditors may not set goals.
	for _, role := range []string{"writer", "auditor"} {
		if resp := do(http.MethodPost, "/v1/goals", m.Keys[role], valid(), nil); resp.Status != http.StatusForbidden {
			t.Errorf("%s sets a goal: %d", role, resp.Status)
		}
	}

	key := map[string]string{"Idempotency-Key": "q3-churn"}
	set := do(http.MethodPost, "/v1/goals", analyst, valid(), key)
	if set.Status != http.StatusCreated || set.Header.Get("ETag") != `"0"` {
		t.Fatalf("set: %d %s", set.Status, set.Body)
	}
	var res struct {
		GoalID   string `json:"goal_id"`
		Position uint64 `json:"position"`
	}
	set.JSON(t, &res)
	if loc := set.Header.Get("Location"); loc != "/v1/goals/"+res.GoalID {
		t.Errorf("Location %q", loc)
	}
	if again := do(http.MethodPost, "/v1/goals", analyst, valid(), key); again.Status != http.StatusCreated || string(again.Body) != string(set.Body) {
		t.Errorf("retry: %d %s, want the first answer %s", again.Status, again.Body, set.Body)
	}
	other := valid()
	other["target"] = 4
	if reused := do(http.MethodPost, "/v1/goals", analyst, other, key); reused.Status != http.StatusUnprocessableEntity {
		t.Errorf("reused key: %d %s", reused.Status, reused.Body)
	}

	path := "/v1/goals/" + res.GoalID
	wait := "?min_position=" + strconv.FormatUint(res.Position, 10)
	var g map[string]any
	got := do(http.MethodGet, path+wait, analyst, nil, nil)
	if got.Status != http.StatusOK {
		t.Fatalf("get: %d %s", got.Status, got.Body)
	}
	got.JSON(t, &g)
	for k, want := range map[string]any{"figure": "churn_rate", "comparator": "at_most", "target": 5.0, "state": "open", "set_by": "analyst", "revision": 0.0} {
		if g[k] != want {
			t.Errorf("%s = %v, want %v", k, g[k], want)
		}
	}
	// No customers: no churn figure, so no progress; 0 churned ≤ 5 … is
	// undefined (no one active), the goal is at risk until there is data.
	if g["current"] != nil || g["status"] != "at_risk" || g["baseline_period"] == nil || g["current_period"] == nil {
		t.Errorf("judgement %v", g)
	}
	if resp := do(http.MethodGet, path, m.Keys["writer"], nil, nil); resp.Status != http.StatusForbidden {
		t.Errorf("a writer reads a goal: %d", resp.Status)
	}

	// Revise: the target, then a period that ends before it starts.
	rev := do(http.MethodPatch, path, analyst, map[string]any{"target": 3, "scope": map[string]any{"region": "emea"}}, map[string]string{"If-Match": `"0"`})
	if rev.Status != http.StatusOK || rev.Header.Get("ETag") != `"1"` {
		t.Fatalf("revise: %d %s", rev.Status, rev.Body)
	}
	if resp := do(http.MethodPatch, path, analyst, map[string]any{"to": now.AddDate(0, 0, -20).Format(time.RFC3339)}, nil); resp.Status != http.StatusUnprocessableEntity || !slices.Contains(problemFields(t, resp), "to") {
		t.Errorf("to before from: %d %s", resp.Status, resp.Body)
	}
	if resp := do(http.MethodPatch, path, analyst, map[string]any{"target": -1}, nil); resp.Status != http.StatusUnprocessableEntity || !slices.Contains(problemFields(t, resp), "target") {
		t.Errorf("target out of range: %d %s", resp.Status, resp.Body)
	}
	if resp := do(http.MethodPatch, path, analyst, map[string]any{"figure": "nps"}, nil); resp.Status != http.StatusBadRequest {
		t.Errorf("the figure cannot be revised: %d %s", resp.Status, resp.Body)
	}
	if resp := do(http.MethodPatch, path, analyst, map[string]any{"target": 2}, map[string]string{"If-Match": `"0"`}); resp.Status != http.StatusPreconditionFailed {
		t.Errorf("stale If-Match: %d %s", resp.Status, resp.Body)
	}
	unknown := "/v1/goals/7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f"
	for _, resp := range []*apptest.Response{
		do(http.MethodPatch, unknown, analyst, map[string]any{"target": 2}, nil),
		do(http.MethodPost, unknown+"/closure", analyst, map[string]any{}, nil),
		do(http.MethodGet, unknown, analyst, nil, nil),
		do(http.MethodGet, unknown+"/history", m.Keys["auditor"], nil, nil),
		do(http.MethodGet, "/v1/goals/not-an-id", analyst, nil, nil),
	} {
		if resp.Status != http.StatusNotFound {
			t.Errorf("unknown goal: %d %s", resp.Status, resp.Body)
		}
	}

	closed := do(http.MethodPost, path+"/closure", analyst, map[string]any{"reason": "replaced by the yearly goal"}, nil)
	if closed.Status != http.StatusOK {
		t.Fatalf("close: %d %s", closed.Status, closed.Body)
	}
	if resp := do(http.MethodPost, path+"/closure", analyst, map[string]any{}, nil); resp.Status != http.StatusConflict {
		t.Errorf("close again: %d %s", resp.Status, resp.Body)
	}
	if resp := do(http.MethodPatch, path, analyst, map[string]any{"target": 2}, nil); resp.Status != http.StatusConflict {
		t.Errorf("revise closed: %d %s", resp.Status, resp.Body)
	}
	var closeRes struct{ Position uint64 }
	closed.JSON(t, &closeRes)
	wait = "?min_position=" + strconv.FormatUint(closeRes.Position, 10)
	var list struct {
		Items []map[string]any `json:"items"`
	}
	do(http.MethodGet, "/v1/goals"+wait, analyst, nil, nil).JSON(t, &list)
	if len(list.Items) != 0 {
		t.Errorf("open goals after closing: %v", list.Items)
	}
	do(http.MethodGet, "/v1/goals"+wait+"&state=closed", analyst, nil, nil).JSON(t, &list)
	if len(list.Items) != 1 || list.Items[0]["close_reason"] != "replaced by the yearly goal" || list.Items[0]["target"] != 3.0 ||
		fmt.Sprint(list.Items[0]["scope"]) != "map[region:emea]" {
		t.Errorf("closed goals: %v", list.Items)
	}
	if resp := do(http.MethodGet, "/v1/goals?state=archived&figure=mood&limit=101&cursor=abc", analyst, nil, nil); resp.Status != http.StatusUnprocessableEntity ||
		!slices.Contains(problemFields(t, resp), "state") || !slices.Contains(problemFields(t, resp), "figure") ||
		!slices.Contains(problemFields(t, resp), "limit") || !slices.Contains(problemFields(t, resp), "cursor") {
		t.Errorf("bad list parameters: %d %s", resp.Status, resp.Body)
	}

	// The auditor's history: three events with who did them.
	var h struct {
		Intact bool `json:"intact"`
		Events []struct {
			Type  string `json:"type"`
			Actor string `json:"actor"`
		} `json:"events"`
	}
	hist := do(http.MethodGet, path+"/history", m.Keys["auditor"], nil, nil)
	hist.JSON(t, &h)
	if hist.Status != http.StatusOK || !h.Intact || len(h.Events) != 3 || h.Events[2].Type != "rapport.GoalClosed.v1" || h.Events[0].Actor != "analyst" {
		t.Errorf("history: %d %s", hist.Status, hist.Body)
	}
	if resp := do(http.MethodGet, path+"/history", analyst, nil, nil); resp.Status != http.StatusForbidden {
		t.Errorf("an analyst reads the audit history: %d", resp.Status)
	}
}
