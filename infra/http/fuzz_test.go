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
)

// domainOnly handles commands with the pure domain against one registered
// customer: the fuzz targets reach every decoder and validator without a
// database, so they run fast enough to explore.
type domainOnly struct{ state domain.Customer }

func (d domainOnly) Handle(_ context.Context, req commands.Request) (commands.Result, error) {
	cmd, created := commands.WithDerivedIDs(req.Command, req.CommandID)
	events, err := domain.Decide(d.state, cmd, time.Now())
	if err != nil {
		return commands.Result{}, err
	}
	return commands.Result{CustomerID: req.CustomerID, Revision: uint64(len(events)), CreatedID: created, Appended: len(events)}, nil
}

type anyKey struct{}

func (anyKey) Authenticate(context.Context, string) (rhttp.Principal, error) {
	return rhttp.Principal{Name: "fuzzer", Roles: []rhttp.Role{rhttp.RoleAdmin}}, nil
}

func fuzzServer(f *testing.F) (*rhttp.Server, []rhttp.Route) {
	state := domain.Fold(
		domain.CustomerRegistered{CustomerID: uuid.MustParse("7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f"), Name: "Fuzz", Email: "fuzz@example.com", OccurredAt: time.Now().Add(-time.Hour)},
		domain.ComplaintFiled{ComplaintID: uuid.MustParse("0b4f6a2c-3d5e-4f70-8192-a3b4c5d6e7f8"), Category: "x", Severity: domain.SeverityLow, Description: "y", OccurredAt: time.Now().Add(-time.Hour)},
	)
	s, err := rhttp.NewServer(rhttp.Config{Commands: domainOnly{state}, Keys: anyKey{}, RateLimit: 1e9, RateBurst: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	var bodyRoutes []rhttp.Route
	for _, r := range s.Routes() {
		if r.Method != http.MethodGet {
			bodyRoutes = append(bodyRoutes, r)
		}
	}
	return s, bodyRoutes
}

// FuzzCommandBodies sends arbitrary bodies to every command endpoint: no
// input may produce a 5xx or a panic, and every refusal is a problem+json
// document whose status matches the answer.
func FuzzCommandBodies(f *testing.F) {
	s, routes := fuzzServer(f)
	seeds := []string{
		`{"name":"Ada","email":"ada@example.com","tags":["a"]}`,
		`{"name":"Ada","phone":"+44 1"}`,
		`{"channel":"phone","direction":"inbound","summary":"s","by":"b","occurred_at":"2026-01-02T03:04:05Z"}`,
		`{"due_at":"2099-01-01T00:00:00Z","by":"b"}`,
		`{"category":"c","severity":"critical","description":"d","channel":"email"}`,
		`{"csat":5,"nps":10,"complaint_id":"0b4f6a2c-3d5e-4f70-8192-a3b4c5d6e7f8"}`,
		`{"csat":0}`, `{"nps":-1}`, `{"csat":1e400}`, `{"segment":""}`, `{"tier":"Z"}`,
		`{"reason":"r","churned_at":"not a time"}`, `{"member":null}`, `{"assignee":[]}`,
		`{}`, `[]`, `null`, `"x"`, `{"a":1}`, `{"name":"\u0000"}`, `{} {}`, `{`, ``,
	}
	for i, seed := range seeds {
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
