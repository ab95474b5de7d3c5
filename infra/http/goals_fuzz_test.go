package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/readmodels/goals"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// domainOnlyGoals decides goal commands with the pure domain against one
// set goal (the path's id), like domainOnly does for customers.
type domainOnlyGoals struct{ state domain.Goal }

func (d domainOnlyGoals) Handle(_ context.Context, req commands.GoalRequest) (commands.GoalResult, error) {
	state := d.state
	if _, ok := req.Command.(domain.SetGoal); ok {
		state = domain.Goal{}
	}
	cmd := req.Command
	if set, ok := cmd.(domain.SetGoal); ok {
		set.GoalID = uuid.New()
		cmd = set
	}
	events, err := domain.DecideGoal(state, cmd, time.Now())
	if err != nil {
		return commands.GoalResult{}, err
	}
	return commands.GoalResult{GoalID: req.GoalID, Revision: uint64(len(events)), Appended: len(events)}, nil
}

type noGoals struct{}

func (noGoals) Goal(context.Context, uuid.UUID) (goals.Goal, error) {
	return goals.Goal{}, goals.ErrNotFound
}
func (noGoals) Goals(context.Context, goals.ListParams, string, int) (readmodel.Page[goals.Goal], error) {
	return readmodel.Page[goals.Goal]{}, nil
}
func (noGoals) Reads() []string { return nil }

// FuzzGoalBodies sends arbitrary bodies to every goal command: no input
// may produce a 5xx or a panic, and every refusal is a problem document.
func FuzzGoalBodies(f *testing.F) {
	from := time.Now().Add(-time.Hour)
	state := domain.FoldGoal(domain.GoalSet{GoalID: uuid.MustParse("7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f"), Name: "g", Figure: "nps",
		Comparator: domain.AtLeast, Target: 10, From: from, To: from.AddDate(0, 1, 0), OccurredAt: from})
	s, err := rhttp.NewServer(rhttp.Config{Commands: domainOnly{}, GoalCommands: domainOnlyGoals{state}, Goals: noGoals{}, Keys: anyKey{}, RateLimit: 1e9, RateBurst: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	var routes []rhttp.Route
	for _, r := range s.Routes() {
		if r.Method != http.MethodGet && (r.Name == "setGoal" || r.Name == "reviseGoal" || r.Name == "closeGoal") {
			routes = append(routes, r)
		}
	}
	if len(routes) != 3 {
		f.Fatalf("goal command routes: %d", len(routes))
	}
	for i, seed := range []string{
		`{"name":"n","figure":"csat_pct","comparator":"at_least","target":90,"from":"2026-01-01T00:00:00Z","to":"2026-04-01T00:00:00Z"}`,
		`{"name":"n","figure":"nps","comparator":"at_most","target":-100,"from":"2026-01-01T00:00:00Z","to":"2026-04-01T00:00:00Z","scope":{"owner":"a"}}`,
		`{"target":1e400}`, `{"target":"90"}`, `{"scope":{"segment":"a","tier":"B"}}`, `{"scope":null}`, `{"from":"9999-12-31T23:59:59Z"}`,
		`{"to":"0001-01-01T00:00:00Z"}`, `{"reason":"\u0000"}`, `{"comparator":""}`, `{}`, `[]`, `null`, `{"figure":"nps"}`, `{`, ``,
	} {
		f.Add(uint8(i), []byte(seed))
	}
	handler := s.Handler()
	f.Fuzz(func(t *testing.T, pick uint8, body []byte) {
		route := routes[int(pick)%len(routes)]
		req := httptest.NewRequest(route.Method, concretePath(route.Path), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer fuzz")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s with %q: %d %s", route.Method, route.Path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var p struct {
				Status int    `json:"status"`
				Reason string `json:"reason"`
			}
			if rec.Header().Get("Content-Type") != "application/problem+json" || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Status != rec.Code || p.Reason == "" {
				t.Fatalf("%s %s with %q: %d answer is not a problem document: %s", route.Method, route.Path, body, rec.Code, rec.Body)
			}
		}
	})
}
