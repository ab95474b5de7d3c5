package http_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/analytics"
)

// sim decides commands at simulated business times through the real
// command layer (commands.Request.At), as the seed generator does.
type sim struct {
	t    *testing.T
	m    *apptest.Main
	last eventstore.Position
}

func (s *sim) do(id uuid.UUID, at string, cmd domain.Command) uuid.UUID {
	s.t.Helper()
	res, err := s.m.Commands.Handle(context.Background(), commands.Request{
		CustomerID: id, Command: cmd, CommandID: uuid.New(), Actor: "tester", CorrelationID: "sim", At: simTime(at),
	})
	if err != nil {
		s.t.Fatalf("%T at %s: %v", cmd, at, err)
	}
	s.last = max(s.last, res.Position)
	if _, ok := cmd.(domain.RegisterCustomer); ok {
		return res.CustomerID
	}
	return res.CreatedID
}

// wait waits until every read model has applied what the sim wrote.
func (s *sim) wait() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.m.Engine.WaitForPosition(ctx, s.last); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sim) minPosition() string { return fmt.Sprint(uint64(s.last)) }

// ts parses an RFC 3339 time of the scenario.
func simTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func refTo[T any](v T) *T { return &v }

// TestAnalyticsParameters checks the parameters' rules: defaults, 422
// naming the parameter, and the role.
func TestAnalyticsParameters(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	s := &sim{t: t, m: m}
	id := s.do(uuid.Nil, time.Now().UTC().Add(-24*time.Hour).Format(time.RFC3339), domain.RegisterCustomer{Name: "Now", Phone: "+1 555 0101", Segment: "smb"})
	s.do(id, time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), domain.RecordSurvey{CSAT: refTo(4)})
	s.wait()

	// Without from/to: the 90 days up to now; without group_by: "all".
	resp := m.Get(t, "analyst", "/v1/analytics/satisfaction?min_position="+s.minPosition())
	var body struct {
		From, To time.Time
		GroupBy  *string `json:"group_by"`
		Groups   []map[string]any
	}
	resp.JSON(t, &body)
	if body.GroupBy != nil || len(body.Groups) != 1 || body.Groups[0]["key"] != "all" || body.Groups[0]["responses"] != 1.0 ||
		time.Since(body.To) > time.Minute || body.To.Sub(body.From) != 90*24*time.Hour {
		t.Errorf("defaults: %s", resp.Body)
	}
	// Only to: from is 90 days before it.
	resp = m.Get(t, "analyst", "/v1/analytics/churn?to=2025-04-01T00:00:00Z")
	resp.JSON(t, &body)
	if !body.From.Equal(simTime("2025-01-01T00:00:00Z")) || !body.To.Equal(simTime("2025-04-01T00:00:00Z")) {
		t.Errorf("only to: %s", resp.Body)
	}
	// Offsets are read and answered in UTC.
	resp = m.Get(t, "analyst", "/v1/analytics/churn?from="+url.QueryEscape("2025-01-01T02:00:00+02:00")+"&to=2025-02-01T00:00:00Z&group_by=month")
	resp.JSON(t, &body)
	if !body.From.Equal(simTime("2025-01-01T00:00:00Z")) || len(body.Groups) != 1 || body.Groups[0]["key"] != "2025-01" || body.Groups[0]["churn_rate"] != nil {
		t.Errorf("offset: %s", resp.Body)
	}

	bad := map[string]string{
		"group_by=colour":      "group_by",
		"group_by=":            "group_by",
		"from=yesterday":       "from",
		"to=2025-13-01T00:00Z": "to",
		"from=":                "from",
		"from=2025-02-01T00:00:00Z&to=2025-02-01T00:00:00Z":                "from",
		"from=2025-03-01T00:00:00Z&to=2025-02-01T00:00:00Z":                "from",
		"from=2999-01-01T00:00:00Z":                                        "from",
		"from=1900-01-01T00:00:00Z&to=2025-01-01T00:00:00Z&group_by=month": "group_by",
		"min_position=soon":                                                "min_position",
	}
	for q, field := range bad {
		for _, f := range []string{"satisfaction", "kpis"} {
			resp := m.Get(t, "analyst", "/v1/analytics/"+f+"?"+q)
			var p fieldProblem
			resp.JSON(t, &p)
			if resp.Status != http.StatusUnprocessableEntity || len(p.Errors) == 0 || p.Errors[0].Field != field {
				t.Errorf("%s?%s: %d %s, want 422 naming %s", f, q, resp.Status, resp.Body, field)
			}
		}
	}
	// A hundred years by month is fine; analysts only.
	if resp := m.Get(t, "analyst", "/v1/analytics/contacts?from=1930-01-01T00:00:00Z&to=2030-01-01T00:00:00Z&group_by=month"); resp.Status != http.StatusOK {
		t.Errorf("100 years by month: %d %s", resp.Status, resp.Body)
	}
	if resp := m.Get(t, "writer", "/v1/analytics/kpis"); resp.Status != http.StatusForbidden {
		t.Errorf("writer: %d", resp.Status)
	}
}

type fieldProblem struct {
	Status int
	Reason string
	Errors []struct{ Field, Message string }
}

// TestAnalyticsEmptyService: without any data every figure is null (a
// count 0), never zero divided by zero; grouped by a classification there
// is no group at all.
func TestAnalyticsEmptyService(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	// MustOpen waits for the read models' views; should one still be
	// missing, it is 503 not_caught_up with Retry-After (the cold start
	// itself is TestQueriesBeforeReadModelsExist's).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp := m.Get(t, "analyst", "/v1/analytics/kpis")
		if resp.Status == http.StatusOK {
			break
		}
		if resp.Status != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || time.Now().After(deadline) {
			t.Fatalf("before the read models exist: %d %s", resp.Status, resp.Body)
		}
	}
	for _, f := range analytics.Families() {
		for _, q := range []string{"", "group_by=segment", "group_by=month&from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z"} {
			resp := m.Get(t, "analyst", "/v1/analytics/"+string(f)+"?"+q)
			if resp.Status != http.StatusOK {
				t.Fatalf("%s?%s: %d %s", f, q, resp.Status, resp.Body)
			}
			var body struct{ Groups []map[string]any }
			resp.JSON(t, &body)
			wantGroups := map[string]int{"": 1, "group_by=segment": 0}[q]
			if strings.Contains(q, "month") {
				wantGroups = 2
			}
			if len(body.Groups) != wantGroups {
				t.Errorf("%s?%s: %d groups, want %d: %s", f, q, len(body.Groups), wantGroups, resp.Body)
			}
			for _, g := range body.Groups {
				for name, v := range g {
					switch v := v.(type) {
					case nil:
					case string:
						if name != "key" {
							t.Errorf("%s?%s: %s = %q", f, q, name, v)
						}
					case float64:
						if v != 0 || !slices.Contains([]string{"responses", "csat_responses", "nps_responses", "active_at_start", "churned",
							"sla_breaches", "first_response_breaches", "resolution_breaches", "filed", "resolved", "active_in_period",
							"follow_ups_overdue", "active_at_end", "contacted", "over_contacted", "not_due"}, name) {
							t.Errorf("%s?%s: %s = %v, want null", f, q, name, v)
						}
					default:
						t.Errorf("%s?%s: %s = %v", f, q, name, v)
					}
				}
			}
		}
	}
}
