package analytics_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/sla"
)

// TestFirstResponseMedianCountsAResolutionWithoutAcknowledgement:
// PRODUCT.md, Definitions — first response time = (acknowledged_at, else
// resolved_at) − filed_at, for the median and for the first-response breach
// alike, so both figures of a group speak of the same complaints.
//
// Hand-computed, all complaints high (first response 4 h, resolution
// 72 h), judged at 2025-06-01, period March–May 2025:
//
//	K1 A 03-10 acknowledged after 2 h, resolved after 24 h
//	K2 A 03-20 resolved after 6 h, never acknowledged: first response 6 h, breached
//	K3 A 04-01 acknowledged after 3 h, resolved after 24 h
//	K4 B 04-05 never answered: no first response (not in the median), both breached
//	K5 B 05-01 resolved after 5 h, never acknowledged: first response 5 h, breached
//
// A is enterprise, B smb.
func TestFirstResponseMedianCountsAResolutionWithoutAcknowledgement(t *testing.T) {
	m := apptest.MustOpen(t)
	ctx := t.Context()
	var last eventstore.Position
	do := func(id uuid.UUID, at string, cmd domain.Command) uuid.UUID {
		t.Helper()
		when, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Commands.Handle(ctx, commands.Request{CustomerID: id, Command: cmd, CommandID: uuid.New(), Actor: "tester", At: when})
		if err != nil {
			t.Fatalf("%T at %s: %v", cmd, at, err)
		}
		last = max(last, res.Position)
		if id == uuid.Nil {
			return res.CustomerID
		}
		return res.CreatedID
	}
	file := func(id uuid.UUID, at string) uuid.UUID {
		return do(id, at, domain.FileComplaint{Category: "billing", Severity: domain.SeverityHigh, Description: "charged twice"})
	}
	ack := func(id, k uuid.UUID, at string) { do(id, at, domain.AcknowledgeComplaint{ComplaintID: k, By: "dave"}) }
	resolve := func(id, k uuid.UUID, at string) {
		do(id, at, domain.ResolveComplaint{ComplaintID: k, By: "erin", Resolution: "refunded"})
	}

	a := do(uuid.Nil, "2025-01-01T00:00:00Z", domain.RegisterCustomer{Name: "A", Phone: "+44 20 7946 0001", Segment: "enterprise"})
	b := do(uuid.Nil, "2025-01-01T00:00:00Z", domain.RegisterCustomer{Name: "B", Phone: "+44 20 7946 0002", Segment: "smb"})
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
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := m.Engine.WaitForPosition(wctx, last); err != nil {
		t.Fatal(err)
	}

	judged := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	q := analytics.NewQueries(m.Pool, sla.Defaults()).WithClock(func() time.Time { return judged })
	period := analytics.Params{From: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), To: judged}
	const h = 3600.0
	type want struct {
		frMedian             *float64
		frBreaches, sla, res int64
		resMedian            *float64
	}
	f := func(v float64) *float64 { return &v }
	for _, x := range []struct {
		family  analytics.Family
		groupBy analytics.GroupBy
		want    map[string]want
	}{
		// First responses 2, 6, 3, 5 h: the median of 2, 3, 5, 6 is 4 h
		// (without K2 and K5 it would be 2.5 h). Resolutions 24, 6, 24,
		// 5 h: median 15 h.
		{analytics.Complaints, analytics.All, map[string]want{"all": {f(4 * h), 3, 3, 1, f(15 * h)}}},
		{analytics.KPIs, analytics.All, map[string]want{"all": {f(4 * h), 3, 3, 1, f(15 * h)}}},
		{analytics.Complaints, analytics.Segment, map[string]want{
			"enterprise": {f(3 * h), 1, 1, 0, f(24 * h)}, // 2, 6, 3 h; K2 breached
			"smb":        {f(5 * h), 2, 2, 1, f(5 * h)},  // K5 5 h (K4 none); K4 and K5 breached
		}},
		{analytics.Complaints, analytics.Month, map[string]want{
			"2025-03": {f(4 * h), 1, 1, 0, f(15 * h)}, // 2 and 6 h
			"2025-04": {f(3 * h), 1, 1, 1, f(24 * h)}, // K3 3 h; K4 unanswered
			"2025-05": {f(5 * h), 1, 1, 0, f(5 * h)},  // K5 alone, resolved unacknowledged
		}},
	} {
		p := period
		p.GroupBy = x.groupBy
		rep, err := q.Report(ctx, x.family, p)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]analytics.Group{}
		for _, g := range rep.Groups {
			if g.Key != nil {
				got[*g.Key] = g
			}
		}
		for key, w := range x.want {
			g, ok := got[key]
			name := fmt.Sprintf("%s by %q, group %s", x.family, x.groupBy, key)
			if !ok {
				t.Errorf("%s: missing", name)
				continue
			}
			if !sameFloat(g.FirstResponseMedianS, w.frMedian) {
				t.Errorf("%s: first_response_median_s %s, want %s", name, showFloat(g.FirstResponseMedianS), showFloat(w.frMedian))
			}
			if !sameFloat(g.ResolutionMedianS, w.resMedian) {
				t.Errorf("%s: resolution_median_s %s, want %s", name, showFloat(g.ResolutionMedianS), showFloat(w.resMedian))
			}
			if x.family == analytics.Complaints && (g.FirstResponseBreaches != w.frBreaches || g.ResolutionBreaches != w.res) {
				t.Errorf("%s: breaches first response %d resolution %d, want %d %d", name, g.FirstResponseBreaches, g.ResolutionBreaches, w.frBreaches, w.res)
			}
			if g.SLABreaches != w.sla {
				t.Errorf("%s: sla_breaches %d, want %d", name, g.SLABreaches, w.sla)
			}
		}
	}
}

func sameFloat(a, b *float64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return math.Abs(*a-*b) < 1e-9
}

func showFloat(v *float64) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprint(*v)
}
