package http_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/audit"
)

// TestGoalHistoryAgainstAnAnchor: with ?anchor= the goal's history also
// says whether its stream still reaches the head an anchor sealed, so a
// cut tail the chain alone cannot see shows as broken; an entry that is
// not this goal's is 422 naming anchor.
func TestGoalHistoryAgainstAnAnchor(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	ctx := context.Background()
	analyst, auditor := m.Keys["analyst"], m.Keys["auditor"]
	now := time.Now().UTC()
	set := func(name string) string {
		t.Helper()
		resp := m.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/goals", Key: analyst, Body: map[string]any{
			"name": name, "figure": "nps", "comparator": "at_least", "target": 20,
			"from": now.AddDate(0, 0, -10).Format(time.RFC3339), "to": now.AddDate(0, 0, 80).Format(time.RFC3339)}})
		if resp.Status != http.StatusCreated {
			t.Fatalf("set: %d %s", resp.Status, resp.Body)
		}
		var res struct {
			GoalID string `json:"goal_id"`
		}
		resp.JSON(t, &res)
		return res.GoalID
	}
	cut, other := set("NPS 20"), set("NPS 20 too")
	var last uint64
	for _, target := range []int{25, 30} {
		resp := m.Do(t, apptest.Request{Method: http.MethodPatch, Path: "/v1/goals/" + cut, Key: analyst, Body: map[string]any{"target": target}})
		if resp.Status != http.StatusOK {
			t.Fatalf("revise: %d %s", resp.Status, resp.Body)
		}
		var res struct {
			Position uint64 `json:"position"`
		}
		resp.JSON(t, &res)
		last = res.Position
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		head, err := m.Store.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(head) == 1 && uint64(head[0].Position) >= last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the last event never became visible in the global log")
		}
	}
	anchor, broken, err := audit.New(m.Store, m.Codec).Anchor(ctx, time.Now(), nil)
	if err != nil {
		t.Fatalf("anchor: %v %+v", err, broken)
	}
	entries := map[string]string{}
	for _, h := range anchor.Streams {
		entries[h.StreamName()] = h.Entry
	}
	type history struct {
		Intact   bool `json:"intact"`
		BrokenAt *struct {
			Revision uint64 `json:"revision"`
			Reason   string `json:"reason"`
		} `json:"broken_at"`
		Events []struct{} `json:"events"`
		Anchor *struct {
			Revision uint64 `json:"revision"`
		} `json:"anchor"`
	}
	get := func(id, entry string) history {
		t.Helper()
		path := "/v1/goals/" + id + "/history"
		if entry != "" {
			path += "?anchor=" + url.QueryEscape(entry)
		}
		resp := m.Do(t, apptest.Request{Method: http.MethodGet, Path: path, Key: auditor})
		if resp.Status != http.StatusOK {
			t.Fatalf("history: %d %s", resp.Status, resp.Body)
		}
		var h history
		resp.JSON(t, &h)
		return h
	}
	if h := get(cut, entries["goal-"+cut]); !h.Intact || h.Anchor == nil || h.Anchor.Revision != 2 || len(h.Events) != 3 {
		t.Fatalf("against a fresh anchor: %+v", h)
	}

	if _, err := m.Pool.Exec(ctx, `DELETE FROM eventstore.events WHERE stream = $1 AND revision = 2`, "goal-"+cut); err != nil {
		t.Fatal(err)
	}
	if h := get(cut, ""); !h.Intact || len(h.Events) != 2 {
		t.Errorf("without the anchor the chain cannot see the cut: %+v", h)
	}
	if h := get(cut, entries["goal-"+cut]); h.Intact || h.BrokenAt == nil || h.BrokenAt.Revision != 2 || !strings.Contains(h.BrokenAt.Reason, "truncated") {
		t.Errorf("against the anchor: %+v (break %+v)", h, h.BrokenAt)
	}
	for _, bad := range []string{"a1.x", entries["goal-"+other], entries["goal-"+cut][:len(entries["goal-"+cut])-2] + "00"} {
		resp := m.Do(t, apptest.Request{Method: http.MethodGet, Path: "/v1/goals/" + cut + "/history?anchor=" + url.QueryEscape(bad), Key: auditor})
		if resp.Status != http.StatusUnprocessableEntity || !slices.Contains(problemFields(t, resp), "anchor") {
			t.Errorf("entry %q: %d %s", bad, resp.Status, resp.Body)
		}
	}
}
