package http_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestAParkedGoalSaysStale: while the goals projector has a goal's stream
// parked (a revision its table refuses), the goal answers its last good
// state with stale: true, alone and in the list, and the other goal of
// the list carries no marker; after the fix and a retry it is current.
func TestAParkedGoalSaysStale(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	ctx := context.Background()
	analyst := m.Keys["analyst"]
	now := time.Now().UTC()
	set := func(name string) (id string, position uint64) {
		t.Helper()
		resp := m.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/goals", Key: analyst, Body: map[string]any{
			"name": name, "figure": "csat_pct", "comparator": "at_least", "target": 90,
			"from": now.AddDate(0, 0, -10).Format(time.RFC3339), "to": now.AddDate(0, 0, 80).Format(time.RFC3339)}})
		if resp.Status != http.StatusCreated {
			t.Fatalf("set: %d %s", resp.Status, resp.Body)
		}
		var res struct {
			GoalID   string `json:"goal_id"`
			Position uint64 `json:"position"`
		}
		resp.JSON(t, &res)
		return res.GoalID, res.Position
	}
	parked, _ := set("CSAT to 90 %")
	healthy, pos := set("CSAT to 90 % in EMEA")
	type goal struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Target float64
		Stale  *bool `json:"stale"`
	}
	get := func(id string, position uint64) goal {
		t.Helper()
		resp := m.Do(t, apptest.Request{Method: http.MethodGet, Path: "/v1/goals/" + id + "?min_position=" + strconv.FormatUint(position, 10), Key: analyst})
		if resp.Status != http.StatusOK {
			t.Fatalf("get: %d %s", resp.Status, resp.Body)
		}
		var g goal
		resp.JSON(t, &g)
		return g
	}
	list := func(position uint64) map[string]goal {
		t.Helper()
		resp := m.Do(t, apptest.Request{Method: http.MethodGet, Path: "/v1/goals?min_position=" + strconv.FormatUint(position, 10), Key: analyst})
		if resp.Status != http.StatusOK {
			t.Fatalf("list: %d %s", resp.Status, resp.Body)
		}
		var page struct {
			Items []json.RawMessage `json:"items"`
		}
		resp.JSON(t, &page)
		out := map[string]goal{}
		for _, raw := range page.Items {
			var g goal
			if err := json.Unmarshal(raw, &g); err != nil {
				t.Fatal(err)
			}
			out[g.ID] = g
		}
		return out
	}
	if g := get(parked, pos); g.Stale != nil {
		t.Fatalf("before parking: %+v", g)
	}

	var schema string
	if err := m.Pool.QueryRow(ctx, `SELECT schema_name FROM projections.generations WHERE projector = 'goals' AND state = 'active'`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	table := schema + ".goals"
	if _, err := m.Pool.Exec(ctx, `ALTER TABLE `+table+` ADD CONSTRAINT parking_trap CHECK (name NOT LIKE 'Trapped%')`); err != nil {
		t.Fatal(err)
	}
	rev := m.Do(t, apptest.Request{Method: http.MethodPatch, Path: "/v1/goals/" + parked, Key: analyst, Body: map[string]any{"name": "Trapped goal"}})
	if rev.Status != http.StatusOK {
		t.Fatalf("revise: %d %s", rev.Status, rev.Body)
	}
	var revised struct {
		Position uint64 `json:"position"`
	}
	rev.JSON(t, &revised)
	if g := get(parked, revised.Position); g.Stale == nil || !*g.Stale || g.Name != "CSAT to 90 %" {
		t.Fatalf("the parked goal: %+v, want its last good state with stale: true", g)
	}
	items := list(revised.Position)
	if g := items[parked]; g.Stale == nil || !*g.Stale {
		t.Errorf("the parked goal in the list: %+v", g)
	}
	if g := items[healthy]; g.ID == "" || g.Stale != nil {
		t.Errorf("the healthy goal in the list: %+v", g)
	}

	if _, err := m.Pool.Exec(ctx, `ALTER TABLE `+table+` DROP CONSTRAINT parking_trap`); err != nil {
		t.Fatal(err)
	}
	retry := m.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/projections/goals/parked/goal-" + parked + "/retry", Key: m.Keys["admin"]})
	if retry.Status != http.StatusOK {
		t.Fatalf("retry: %d %s", retry.Status, retry.Body)
	}
	if g := get(parked, revised.Position); g.Stale != nil || g.Name != "Trapped goal" {
		t.Errorf("after the retry: %+v", g)
	}
}
