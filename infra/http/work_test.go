package http_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// workPage is a page of any queue as the API answers it.
type workPage struct {
	Items []struct {
		ComplaintID uuid.UUID `json:"complaint_id"`
		FollowUpID  uuid.UUID `json:"follow_up_id"`
		Customer    struct {
			ID   uuid.UUID `json:"id"`
			Href string    `json:"href"`
		} `json:"customer"`
		SLA      string   `json:"sla"`
		Breaches []string `json:"breaches"`
		State    string   `json:"state"`
		Cadence  int      `json:"cadence_days"`
		Risk     struct {
			Score   int    `json:"score"`
			Level   string `json:"level"`
			Factors []struct {
				Factor string `json:"factor"`
			} `json:"factors"`
		} `json:"risk"`
	} `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

func getWork(t *testing.T, m *apptest.Main, role, path string) workPage {
	t.Helper()
	resp := m.Get(t, role, path)
	if resp.Status != http.StatusOK {
		t.Fatalf("%s as %s: %d %s", path, role, resp.Status, resp.Body)
	}
	var p workPage
	resp.JSON(t, &p)
	return p
}

// expect422 checks that path is refused naming exactly the fields.
func expect422(t *testing.T, m *apptest.Main, path string, fields ...string) {
	t.Helper()
	resp := m.Get(t, "analyst", path)
	var problem struct {
		Errors []struct{ Field string }
	}
	resp.JSON(t, &problem)
	var got []string
	for _, e := range problem.Errors {
		got = append(got, e.Field)
	}
	if resp.Status != http.StatusUnprocessableEntity || !slices.Equal(got, fields) {
		t.Errorf("%s: %d naming %v, want 422 naming %v (%s)", path, resp.Status, got, fields, resp.Body)
	}
}

// TestWorkQueuesEndToEnd reads each queue through the API (every exchange
// validated against the OpenAPI document), judged at the real now.
func TestWorkQueuesEndToEnd(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	s := &sim{t: t, m: m}
	now := time.Now().UTC()
	ago := func(d time.Duration) string { return now.Add(-d).Format(time.RFC3339) }
	day := 24 * time.Hour
	c := s.do(uuid.Nil, ago(100*day), domain.RegisterCustomer{Name: "Queue", Phone: "+1 555 0142", Segment: "wq", Tier: "A"})
	breached := s.do(c, ago(5*time.Hour), domain.FileComplaint{Category: "billing", Severity: domain.SeverityHigh, Description: "late"})
	atRisk := s.do(c, ago(3*time.Hour+30*time.Minute), domain.FileComplaint{Category: "billing", Severity: domain.SeverityHigh, Description: "soon"})
	followUp := s.do(c, ago(day), domain.ScheduleFollowUp{DueAt: now.Add(3 * day), By: "ann"})
	s.do(c, ago(day), domain.RecordSurvey{NPS: refTo(2)})
	s.wait()
	wait := "min_position=" + s.minPosition()
	href := "/v1/customers/" + c.String()

	p := getWork(t, m, "writer", "/v1/work/complaints?segment=wq&"+wait)
	if len(p.Items) != 2 || p.Items[0].ComplaintID != breached || p.Items[1].ComplaintID != atRisk ||
		p.Items[0].Customer.ID != c || p.Items[0].Customer.Href != href || p.Items[0].SLA != "breached" ||
		!slices.Equal(p.Items[0].Breaches, []string{"first_response"}) || p.Items[1].SLA != "at_risk" {
		t.Errorf("complaints: %+v", p)
	}
	if p := getWork(t, m, "analyst", "/v1/work/complaints?sla=at_risk&severity=high&tier=A&"+wait); len(p.Items) != 1 || p.Items[0].ComplaintID != atRisk {
		t.Errorf("at risk: %+v", p)
	}
	first := getWork(t, m, "admin", "/v1/work/complaints?limit=1&"+wait)
	if len(first.Items) != 1 || first.NextCursor == nil {
		t.Fatalf("page 1: %+v", first)
	}
	if next := getWork(t, m, "writer", "/v1/work/complaints?limit=1&cursor="+*first.NextCursor); len(next.Items) != 1 || next.Items[0].ComplaintID != atRisk || next.NextCursor != nil {
		t.Errorf("page 2: %+v", next)
	}

	if p := getWork(t, m, "writer", "/v1/work/follow-ups?state=upcoming&by=ann&"+wait); len(p.Items) != 1 || p.Items[0].FollowUpID != followUp ||
		p.Items[0].State != "upcoming" || p.Items[0].Customer.Href != href {
		t.Errorf("follow-ups: %+v", p)
	}
	if p := getWork(t, m, "writer", "/v1/work/follow-ups?state=overdue&"+wait); len(p.Items) != 0 {
		t.Errorf("overdue: %+v", p)
	}
	if p := getWork(t, m, "analyst", "/v1/work/contact-due?tier=A&"+wait); len(p.Items) != 1 || p.Items[0].Customer.ID != c || p.Items[0].Cadence != 14 {
		t.Errorf("contact-due: %+v", p)
	}
	// 30 (no contact for 100 days) + 30 (two open complaints) + 15 (SLA
	// breach) + 20 (NPS 2) = 95.
	if p := getWork(t, m, "analyst", "/v1/work/at-risk?level=high&"+wait); len(p.Items) != 1 || p.Items[0].Customer.Href != href ||
		p.Items[0].Risk.Score != 95 || len(p.Items[0].Risk.Factors) != 4 {
		t.Errorf("at-risk: %+v", p)
	}
	if p := getWork(t, m, "analyst", "/v1/work/at-risk?level=medium&"+wait); len(p.Items) != 0 {
		t.Errorf("at-risk medium: %+v", p)
	}

	// Bad parameters: 422 naming each.
	other := work.FollowUpsCursor.Encode(readmodel.Key{At: now, ID: uuid.New()})
	expect422(t, m, "/v1/work/complaints?sla=late", "sla")
	expect422(t, m, "/v1/work/complaints?severity=urgent&assignee=%00", "severity", "assignee")
	expect422(t, m, "/v1/work/complaints?cursor="+other, "cursor")
	expect422(t, m, "/v1/work/follow-ups?state=soon&limit=0", "limit", "state")
	expect422(t, m, "/v1/work/follow-ups?cursor=nope", "cursor")
	expect422(t, m, "/v1/work/contact-due?tier=D&limit=501", "tier", "limit")
	expect422(t, m, "/v1/work/at-risk?level=low", "level")
	expect422(t, m, "/v1/work/at-risk?owner=%20%20", "owner")

	// Roles: writer, analyst and admin; not auditor; a key is needed.
	for _, path := range []string{"/v1/work/complaints", "/v1/work/follow-ups", "/v1/work/contact-due", "/v1/work/at-risk"} {
		for role, want := range map[string]int{"writer": 200, "analyst": 200, "admin": 200, "auditor": 403} {
			if resp := m.Get(t, role, path); resp.Status != want {
				t.Errorf("%s as %s: %d, want %d", path, role, resp.Status, want)
			}
		}
		if resp := m.Do(t, apptest.Request{Method: http.MethodGet, Path: path}); resp.Status != http.StatusUnauthorized {
			t.Errorf("%s without a key: %d", path, resp.Status)
		}
	}
}
