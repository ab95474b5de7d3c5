package analytics_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/analytics"
)

// TestFirstResponseMedianAndReadmeSQLCountAResolutionWithoutAcknowledgement:
// first response = acknowledgement, else a resolution without one, for the
// median as for the breach — in the API and in readmodels/README.md's SQL.
// The history is readmodels/analytics' definitions test's, hand-computed
// there: high complaints (first response 4 h) in March–May 2025 answered
// after 2 h (acknowledged), 6 h (resolved unacknowledged), 3 h
// (acknowledged), never, and 5 h (resolved unacknowledged).
func TestFirstResponseMedianAndReadmeSQLCountAResolutionWithoutAcknowledgement(t *testing.T) {
	m := apptest.MustOpen(t)
	s := &sim{t: t, m: m}
	file := func(id uuid.UUID, at string) uuid.UUID {
		return s.do(id, at, domain.FileComplaint{Category: "billing", Severity: domain.SeverityHigh, Description: "charged twice"})
	}
	ack := func(id, k uuid.UUID, at string) {
		s.do(id, at, domain.AcknowledgeComplaint{ComplaintID: k, By: "dave"})
	}
	resolve := func(id, k uuid.UUID, at string) {
		s.do(id, at, domain.ResolveComplaint{ComplaintID: k, By: "erin", Resolution: "refunded"})
	}
	a := s.do(uuid.Nil, "2025-01-01T00:00:00Z", domain.RegisterCustomer{Name: "A", Phone: "+44 20 7946 0001", Segment: "enterprise"})
	b := s.do(uuid.Nil, "2025-01-01T00:00:00Z", domain.RegisterCustomer{Name: "B", Phone: "+44 20 7946 0002", Segment: "smb"})
	k1 := file(a, "2025-03-10T10:00:00Z")
	ack(a, k1, "2025-03-10T12:00:00Z")
	resolve(a, k1, "2025-03-11T10:00:00Z")
	k2 := file(a, "2025-03-20T00:00:00Z")
	resolve(a, k2, "2025-03-20T06:00:00Z")
	k3 := file(a, "2025-04-01T00:00:00Z")
	ack(a, k3, "2025-04-01T03:00:00Z")
	resolve(a, k3, "2025-04-02T00:00:00Z")
	file(b, "2025-04-05T00:00:00Z")
	k5 := file(b, "2025-05-01T00:00:00Z")
	resolve(b, k5, "2025-05-01T05:00:00Z")
	s.wait()

	// First responses 2, 6, 3, 5 h: median 4 h; breached K2, K4, K5 (K4
	// also its resolution): 3. Resolutions 24, 6, 24, 5 h: median 15 h.
	// 5 complaints, 4 resolved, 2 customers active.
	checkReport(t, m, s, "complaints", scenarioPeriod, figures{
		"all": {"first_response_median_s": 14400, "first_response_breaches": 3, "resolution_median_s": 54000,
			"sla_breaches": 3, "resolution_breaches": 1, "complaint_rate": 250, "resolution_rate": 80},
	})
	checkReport(t, m, s, "complaints", scenarioPeriod+"&group_by=segment", figures{
		"enterprise": {"first_response_median_s": 10800, "first_response_breaches": 1},
		"smb":        {"first_response_median_s": 18000, "first_response_breaches": 2},
	})

	// The README's SQL gives the API's headline figures for this history.
	got, _, _ := getReport(t, m, s, "kpis", scenarioPeriod)
	want := map[string]any{}
	for name, v := range got["all"] {
		if !slices.Contains(analytics.Columns(analytics.KPIs), name) {
			continue
		}
		if v == nil {
			want[name] = jsonNull
		} else {
			want[name] = v
		}
	}
	if want["first_response_median_s"] != 14400.0 {
		t.Errorf("kpis first_response_median_s %v, want 14400", want["first_response_median_s"])
	}
	checkReadmeSQL(t, m, want)
}
