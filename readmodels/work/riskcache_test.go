package work_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/risk"
	"github.com/rapport-crm/rapport/readmodels/sla"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// clock is a settable clock for queries.
type clock struct{ at time.Time }

func (c *clock) now() time.Time { return c.at }

// atRiskFilters are the selections the cache must answer like the
// definition: every level, a classification, an owner.
func atRiskFilters() []work.AtRiskFilter {
	return []work.AtRiskFilter{{}, {Level: risk.LevelHigh}, {Level: risk.LevelMedium},
		{Filter: work.Filter{Tier: "A"}}, {Filter: work.Filter{Owner: "ann"}, Level: risk.LevelMedium}}
}

// differences reads every filter's whole queue from got and from want,
// 7 rows a page (so that the cursors are exercised, and the pages must
// join into the one-page answer), and returns the filters whose answers
// differ.
func differences(t *testing.T, got, want *work.Queries) []string {
	t.Helper()
	return compare(t, got, want, func(q *work.Queries, f work.AtRiskFilter) []work.AtRisk {
		return pages(t, 7, func(limit int, cursor string) (readmodel.Page[work.AtRisk], error) {
			return q.AtRisk(t.Context(), f, limit, cursor)
		})
	})
}

// onePageDifferences is differences with each queue read in one page.
func onePageDifferences(t *testing.T, got, want *work.Queries) []string {
	t.Helper()
	return compare(t, got, want, func(q *work.Queries, f work.AtRiskFilter) []work.AtRisk {
		p, err := q.AtRisk(t.Context(), f, work.MaxLimit, "")
		if err != nil || p.NextCursor != "" {
			t.Fatalf("%+v: %v, or more than %d rows", f, err, work.MaxLimit)
		}
		return p.Items
	})
}

func compare(t *testing.T, got, want *work.Queries, read func(*work.Queries, work.AtRiskFilter) []work.AtRisk) []string {
	t.Helper()
	var out []string
	for _, f := range atRiskFilters() {
		a, b := read(got, f), read(want, f)
		if !reflect.DeepEqual(a, b) {
			i := 0
			for i < min(len(a), len(b)) && reflect.DeepEqual(a[i], b[i]) {
				i++
			}
			first := "missing"
			if i < len(a) && i < len(b) {
				first = fmt.Sprintf("%s %d, the definition %s %d", a[i].Customer.ID, a[i].Risk.Score, b[i].Customer.ID, b[i].Risk.Score)
			}
			out = append(out, fmt.Sprintf("%+v: %d rows, the definition %d; row %d: %s", f, len(a), len(b), i, first))
		}
	}
	return out
}

// cacheState counts the active rows whose cached score (key of q) holds
// at now and those that do not.
func cacheState(t *testing.T, m *apptest.Main, key int64, now time.Time) (fresh, stale int) {
	t.Helper()
	if err := m.Pool.QueryRow(t.Context(), `SELECT
			count(*) FILTER (WHERE risk_key = $1 AND risk_valid_until > $2 AND risk_scored_at <= $2),
			count(*) FILTER (WHERE NOT coalesce(risk_key = $1 AND risk_valid_until > $2 AND risk_scored_at <= $2, false))
		FROM readmodels.customers WHERE status = 'active'`, key, now).Scan(&fresh, &stale); err != nil {
		t.Fatal(err)
	}
	return fresh, stale
}

// changeInstants returns instants at which some active customer's score
// can change after from (customer_risk_valid_until), and the microsecond
// either side of each: where factors expire.
func changeInstants(t *testing.T, m *apptest.Main, from time.Time, n int) []time.Time {
	t.Helper()
	rows, err := m.Pool.Query(t.Context(), `SELECT DISTINCT v FROM (
			SELECT readmodels.customer_risk_valid_until(status, registered_at, last_contact_at, open_complaints, complaints_total,
				complaints, next_follow_up_due_at, $1) AS v
			FROM readmodels.customers WHERE status = 'active') x
		WHERE v < 'infinity' ORDER BY v LIMIT $2`, from, n)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := collectTimes(rows)
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, v := range vs {
		out = append(out, v.Add(-time.Microsecond), v, v.Add(time.Microsecond))
	}
	return out
}

func collectTimes(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close()
}) ([]time.Time, error) {
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var v time.Time
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// TestAtRiskCacheEqualsTheDefinition: over a generated history, the
// at-risk queue read through the cache of scores answers exactly what
// scoring every active customer answers (FullScoring), for every level
// and filter and page by page, at many instants — on either side of the
// instants where factors expire, after and between refreshes, going back
// before the last refresh, after events that reclassify, churn,
// reactivate, erase and file complaints, with other weights, and after a
// rebuild of the directory. A cache whose scores never expire
// (WithWrongValidity) must fail the same comparison.
func TestAtRiskCacheEqualsTheDefinition(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	gen := m.Generate(t, 11, 3000)
	h := &history{t: t, m: m, last: gen.Last}
	var first, last time.Time
	if err := m.Pool.QueryRow(t.Context(), `SELECT min(registered_at), max(updated_at) FROM readmodels.customers`).Scan(&first, &last); err != nil {
		t.Fatal(err)
	}
	if err := m.Pool.QueryRow(t.Context(), `SELECT max(coalesce(last_contact_at, registered_at)) FROM readmodels.customers`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	cached := work.NewQueries(m.Pool, work.WithClock(clk.now), work.WithRiskRefresh(false))
	full := work.FullScoring(cached)
	key := work.RiskKey(cached)

	var stepsWithExpired, stepsWithFresh, steps int
	check := func(when string, at time.Time) {
		t.Helper()
		clk.at = at
		fresh, stale := cacheState(t, m, key, at)
		steps++
		if fresh > 0 {
			stepsWithFresh++
		}
		for _, d := range differences(t, cached, full) {
			t.Errorf("%s (%s; %d fresh, %d stale): %s", when, at.Format(time.RFC3339Nano), fresh, stale, d)
		}
	}
	refresh := func(at time.Time) {
		t.Helper()
		clk.at = at
		if _, err := cached.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
	}

	// Nothing cached yet: every row is stale.
	mid := first.Add(last.Sub(first) * 2 / 3)
	check("before any refresh", mid)
	refresh(mid)
	if fresh, stale := cacheState(t, m, key, mid); stale != 0 || fresh == 0 {
		t.Fatalf("after a refresh at %s: %d fresh, %d stale", mid, fresh, stale)
	}
	check("just refreshed", mid)
	// Walk through the instants where factors expire, refreshing at every
	// third: in between, the rows that expired since are stale.
	instants := changeInstants(t, m, mid, 40)
	for _, d := range []time.Duration{time.Hour, 24 * time.Hour, 31 * 24 * time.Hour, 95 * 24 * time.Hour} {
		instants = append(instants, mid.Add(d))
	}
	slices.SortFunc(instants, func(a, b time.Time) int { return a.Compare(b) })
	for i, at := range instants {
		if _, stale := cacheState(t, m, key, at); stale > 0 {
			stepsWithExpired++
		}
		check(fmt.Sprintf("instant %d", i), at)
		if i%3 == 2 {
			refresh(at)
		}
	}
	// Back in time, before the last refresh: its scores do not hold there.
	check("before the last refresh", mid.Add(time.Hour))

	// Events void the rows they change; the definition sees them at once.
	at := time.Now().Truncate(time.Second).Add(-time.Hour)
	var sample []uuid.UUID
	rows, err := m.Pool.Query(t.Context(), `SELECT id FROM readmodels.customers WHERE status = 'active' ORDER BY id LIMIT 6`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		sample = append(sample, id)
	}
	rows.Close()
	if len(sample) < 6 {
		t.Fatalf("only %d active customers", len(sample))
	}
	tier := "A"
	h.do(sample[0], at, domain.ClassifyCustomer{Tier: &tier})
	h.do(sample[1], at, domain.MarkChurned{Reason: "gone"})
	h.do(sample[2], at, domain.MarkChurned{Reason: "gone"})
	h.do(sample[2], at.Add(time.Minute), domain.Reactivate{Reason: "back"})
	for range 3 {
		h.do(sample[3], at, domain.FileComplaint{Category: "billing", Severity: domain.SeverityCritical, Description: "d"})
	}
	h.do(sample[4], at, domain.AssignTeamMember{Role: domain.RoleAccountManager, Member: "ann"})
	h.do(sample[5], at, domain.ScheduleFollowUp{DueAt: at.Add(time.Hour), By: "ann", Note: "n"})
	h.wait()
	gen.Last = h.last
	gen.EraseBusiest(t)
	check("after events, before a refresh", at.Add(2*time.Minute))
	refresh(at.Add(2 * time.Minute))
	// The critical complaints' first response target (1 h) and the
	// follow-up (1 h) expire.
	for _, d := range []time.Duration{time.Hour, time.Hour + 2*time.Minute, time.Hour + 3*time.Minute, 25 * time.Hour} {
		check(fmt.Sprintf("%s after the events", d), at.Add(d))
	}

	// Other weights: the cached scores are another key's, so stale, until
	// refreshed under the new one; then the first queries' are stale.
	w := risk.DefaultWeights()
	w.Contact90d, w.NPSDetractor, w.OpenComplaint = 40, 35, 25
	otherCached := work.NewQueries(m.Pool, work.WithClock(clk.now), work.WithRiskWeights(w), work.WithRiskRefresh(false))
	otherFull := work.FullScoring(otherCached)
	clk.at = at.Add(26 * time.Hour)
	for _, d := range differences(t, otherCached, otherFull) {
		t.Errorf("other weights, another key's cache: %s", d)
	}
	if _, err := otherCached.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, d := range differences(t, otherCached, otherFull) {
		t.Errorf("other weights, refreshed: %s", d)
	}
	check("the first weights after the others refreshed", clk.at)

	// A rebuilt directory has no cached score until refreshed.
	m.Rebuild(t, customers.Name)
	check("after a rebuild", at.Add(27*time.Hour))
	refresh(at.Add(27 * time.Hour))
	check("after a rebuild, refreshed", at.Add(28*time.Hour))

	t.Logf("%d comparisons, %d with fresh rows, %d with rows expired since the last refresh", steps, stepsWithFresh, stepsWithExpired)
	if stepsWithFresh < steps/2 || stepsWithExpired < 5 {
		t.Errorf("the instants exercise too little of the cache")
	}

	// The same walk with a cache whose scores never expire must differ
	// from the definition somewhere: the comparison can see a wrong cache.
	wrong := work.WithWrongValidity(cached)
	clk.at = mid
	if _, err := wrong.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	caught := 0
	for _, at := range instants {
		clk.at = at
		caught += len(onePageDifferences(t, wrong, full))
	}
	t.Logf("a cache that never expires differs from the definition %d times", caught)
	if caught == 0 {
		t.Errorf("a cache that never expires answers like the definition at every instant: the instants test nothing")
	}
}

// TestValidUntilBoundsTheScore: for every active customer of a generated
// history and many instants t, readmodels.customer_risk gives the same
// score and factors at t, halfway to customer_risk_valid_until(t) and a
// microsecond before it (or 400 days on when it is infinity), with the
// default weights, with weights that make each factor's points distinct,
// and with other SLA targets.
func TestValidUntilBoundsTheScore(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	m.Generate(t, 5, 3000)
	var first, last time.Time
	if err := m.Pool.QueryRow(t.Context(), `SELECT min(registered_at), max(coalesce(last_contact_at, registered_at)) FROM readmodels.customers`).Scan(&first, &last); err != nil {
		t.Fatal(err)
	}
	distinct := risk.Weights{Contact30d: 1, Contact60d: 2, Contact90d: 4, OpenComplaint: 8, OpenComplaintsMax: 16, SLABreach: 32,
		Complaints90d: 64, CSATLow: 3, CSATNeutral: 5, NPSDetractor: 6, NPSPassive: 7, CSATDrop: 9, FollowUpOverdue: 10}
	other := sla.Defaults()
	for sev, target := range other {
		other[sev] = sla.Target{FirstResponse: target.FirstResponse / 3, Resolution: target.Resolution / 2}
	}
	slaJSON := func(tg sla.Targets) string {
		b, err := json.Marshal(tg.Seconds())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var instants []time.Time
	for i := range 12 {
		instants = append(instants, first.Add(last.Sub(first)*time.Duration(i)/11))
	}
	instants = append(instants, changeInstants(t, m, first.Add(last.Sub(first)/2), 30)...)
	const q = `SELECT count(*),
			count(*) FILTER (WHERE v.until < 'infinity'),
			count(*) FILTER (WHERE (r1.score, r1.factors) IS DISTINCT FROM (r0.score, r0.factors)
				OR (r2.score, r2.factors) IS DISTINCT FROM (r0.score, r0.factors))
		FROM readmodels.customers c
		CROSS JOIN LATERAL (SELECT readmodels.customer_risk_valid_until(c.status, c.registered_at, c.last_contact_at, c.open_complaints,
			c.complaints_total, c.complaints, c.next_follow_up_due_at, $1, $3::jsonb) AS until) v
		CROSS JOIN LATERAL (SELECT CASE WHEN v.until = 'infinity' THEN $1 + interval '400 days' ELSE v.until - interval '1 microsecond' END AS t) l
		CROSS JOIN LATERAL readmodels.customer_risk(c.status, c.registered_at, c.last_contact_at, c.open_complaints, c.complaints_total,
			c.complaints, c.last_csat, c.prev_csat, c.last_nps, c.next_follow_up_due_at, $1, $2, $3::jsonb) r0
		CROSS JOIN LATERAL readmodels.customer_risk(c.status, c.registered_at, c.last_contact_at, c.open_complaints, c.complaints_total,
			c.complaints, c.last_csat, c.prev_csat, c.last_nps, c.next_follow_up_due_at, l.t, $2, $3::jsonb) r1
		CROSS JOIN LATERAL readmodels.customer_risk(c.status, c.registered_at, c.last_contact_at, c.open_complaints, c.complaints_total,
			c.complaints, c.last_csat, c.prev_csat, c.last_nps, c.next_follow_up_due_at, $1 + (l.t - $1) / 2, $2, $3::jsonb) r2
		WHERE c.status = 'active' AND v.until > $1`
	checked := 0
	for _, setting := range []struct {
		name    string
		weights risk.Weights
		sla     string
	}{{"defaults", risk.DefaultWeights(), slaJSON(sla.Defaults())}, {"distinct weights", distinct, slaJSON(sla.Defaults())}, {"other SLA", distinct, slaJSON(other)}} {
		for _, at := range instants {
			var n, finite, wrong int
			if err := m.Pool.QueryRow(context.Background(), q, at, setting.weights.Array(), setting.sla).Scan(&n, &finite, &wrong); err != nil {
				t.Fatal(err)
			}
			checked += n
			if wrong > 0 {
				t.Errorf("%s at %s: %d of %d customers change score or factors before valid_until", setting.name, at.Format(time.RFC3339Nano), wrong, n)
			}
			if finite == 0 {
				t.Errorf("%s at %s: no customer's score can change (of %d)", setting.name, at, n)
			}
		}
	}
	if checked < 10_000 {
		t.Errorf("only %d customer-instants checked", checked)
	}
}
