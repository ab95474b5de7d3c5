package customers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/risk"
	"github.com/rapport-crm/rapport/readmodels/sla"
)

// now is when the risk cases are evaluated.
var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// history builds a customer's events relative to now.
type history struct {
	id     uuid.UUID
	events []domain.Event
}

func newHistory(registeredAgo time.Duration) *history {
	id := uuid.New()
	return &history{id: id, events: []domain.Event{domain.CustomerRegistered{CustomerID: id, Name: "Risk " + id.String()[:8],
		Email: id.String()[:8] + "@example.com", Segment: "smb", OccurredAt: now.Add(-registeredAgo)}}}
}

func (h *history) add(e ...domain.Event) *history { h.events = append(h.events, e...); return h }

func (h *history) contact(ago time.Duration) *history {
	return h.add(domain.ContactLogged{ContactID: uuid.New(), Channel: domain.ChannelPhone, Direction: domain.DirectionOutbound, Summary: "call", By: "bob", OccurredAt: now.Add(-ago)})
}

// complaint files a complaint ago and returns its id.
func (h *history) complaint(sev domain.Severity, ago time.Duration) uuid.UUID {
	id := uuid.New()
	h.add(domain.ComplaintFiled{ComplaintID: id, Category: "billing", Severity: sev, Description: "x", OccurredAt: now.Add(-ago)})
	return id
}

func (h *history) ack(id uuid.UUID, ago time.Duration) *history {
	return h.add(domain.ComplaintAcknowledged{ComplaintID: id, By: "bob", OccurredAt: now.Add(-ago)})
}

func (h *history) resolve(id uuid.UUID, ago time.Duration) *history {
	return h.add(domain.ComplaintResolved{ComplaintID: id, By: "bob", Resolution: "done", OccurredAt: now.Add(-ago)})
}

func (h *history) survey(csat, nps *int, answeredAgo time.Duration) *history {
	return h.add(domain.SurveyRecorded{SurveyID: uuid.New(), CSAT: csat, NPS: nps, OccurredAt: now.Add(-answeredAgo)})
}

func (h *history) followUp(scheduledAgo, dueAgo time.Duration) *history {
	return h.add(domain.FollowUpScheduled{FollowUpID: uuid.New(), DueAt: now.Add(-dueAgo), By: "bob", OccurredAt: now.Add(-scheduledAgo)})
}

// riskString renders a risk as "score level factor=points …" ("none" for nil).
func riskString(r *risk.Risk) string {
	if r == nil {
		return "none"
	}
	parts := []string{fmt.Sprint(r.Score), r.Level}
	for _, f := range r.Factors {
		parts = append(parts, fmt.Sprintf("%s=%d", f.Factor, f.Points))
	}
	return strings.Join(parts, " ")
}

type riskCase struct {
	name string
	h    *history
	want string // riskString of the expected risk at now, default weights
}

// riskCases are hand-computed: each factor and each threshold boundary
// with PRODUCT.md's default weights.
func riskCases() []riskCase {
	var cases []riskCase
	add := func(name string, h *history, want string) { cases = append(cases, riskCase{name, h, want}) }

	// days_since_contact: whole days since the last contact, or the
	// registration: more than 30 (31+) 10, more than 60 20, more than 90 30.
	add("registered 5 days ago, never contacted", newHistory(5*day), "0 low")
	add("contact 30 days 23 h ago", newHistory(400*day).contact(31*day-time.Hour), "0 low")
	add("contact 31 days ago", newHistory(400*day).contact(31*day), "10 low days_since_contact=10")
	add("contact 60 days 23 h ago", newHistory(400*day).contact(61*day-time.Hour), "10 low days_since_contact=10")
	add("contact 61 days ago", newHistory(400*day).contact(61*day), "20 low days_since_contact=20")
	add("contact 90 days 23 h ago", newHistory(400*day).contact(91*day-time.Hour), "20 low days_since_contact=20")
	add("contact 91 days ago", newHistory(400*day).contact(91*day), "30 medium days_since_contact=30")
	add("never contacted, registered 61 days ago", newHistory(61*day), "20 low days_since_contact=20")
	add("late-logged old contact does not count", newHistory(400*day).contact(10*day).contact(200*day), "0 low")

	// open_complaints: 15 each, at most 30 (low severity filed an hour
	// ago: within its SLA).
	one := newHistory(5 * day)
	one.complaint(domain.SeverityLow, time.Hour)
	add("one open complaint", one, "15 low open_complaints=15")
	two := newHistory(5 * day)
	two.complaint(domain.SeverityLow, time.Hour)
	two.complaint(domain.SeverityLow, time.Hour)
	add("two open complaints", two, "30 medium open_complaints=30")
	three := newHistory(5 * day)
	for range 3 {
		three.complaint(domain.SeverityLow, time.Hour)
	}
	add("three open complaints: capped at 30, and 3 in 90 days", three, "40 medium open_complaints=30 complaints_last_90_days=10")

	// sla_breach (high: first response 4 h, resolution 72 h).
	frBreached := newHistory(5 * day)
	frBreached.complaint(domain.SeverityHigh, 5*time.Hour)
	add("first response overdue", frBreached, "30 medium open_complaints=15 sla_breach=15")
	frPending := newHistory(5 * day)
	frPending.complaint(domain.SeverityHigh, 4*time.Hour-time.Minute)
	add("first response still within target", frPending, "15 low open_complaints=15")
	frInTime := newHistory(5 * day)
	frInTime.ack(frInTime.complaint(domain.SeverityHigh, 5*time.Hour), 4*time.Hour+30*time.Minute)
	add("acknowledged within target", frInTime, "15 low open_complaints=15")
	frLate := newHistory(5 * day)
	frLate.ack(frLate.complaint(domain.SeverityHigh, 6*time.Hour), time.Hour)
	add("acknowledged after the target", frLate, "30 medium open_complaints=15 sla_breach=15")
	resBreached := newHistory(5 * day)
	resBreached.ack(resBreached.complaint(domain.SeverityHigh, 73*time.Hour), 72*time.Hour)
	add("resolution overdue", resBreached, "30 medium open_complaints=15 sla_breach=15")
	resPending := newHistory(5 * day)
	resPending.ack(resPending.complaint(domain.SeverityHigh, 71*time.Hour), 70*time.Hour)
	add("resolution still within target", resPending, "15 low open_complaints=15")
	resolvedLate := newHistory(5 * day)
	resolvedLate.resolve(resolvedLate.complaint(domain.SeverityHigh, 100*time.Hour), time.Hour)
	add("resolved after its targets: not open", resolvedLate, "0 low")
	reopened := newHistory(20 * day)
	c := reopened.complaint(domain.SeverityHigh, 200*time.Hour)
	reopened.ack(c, 199*time.Hour).resolve(c, 150*time.Hour).add(domain.ComplaintReopened{ComplaintID: c, Reason: "again", OccurredAt: now.Add(-time.Hour)})
	add("reopened an hour ago: targets from the reopening", reopened, "15 low open_complaints=15")
	reopenedLate := newHistory(20 * day)
	c = reopenedLate.complaint(domain.SeverityHigh, 200*time.Hour)
	reopenedLate.ack(c, 199*time.Hour).resolve(c, 150*time.Hour).add(domain.ComplaintReopened{ComplaintID: c, Reason: "again", OccurredAt: now.Add(-5 * time.Hour)})
	add("reopened 5 h ago, not acknowledged again", reopenedLate, "30 medium open_complaints=15 sla_breach=15")

	// complaints_last_90_days: 3 or more filed in the last 90 days.
	recent := newHistory(200 * day).contact(time.Hour)
	for _, ago := range []time.Duration{90*day - time.Hour, 50 * day, 10 * day} {
		recent.resolve(recent.complaint(domain.SeverityLow, ago), ago-time.Hour)
	}
	add("3 complaints in 90 days", recent, "10 low complaints_last_90_days=10")
	older := newHistory(200 * day).contact(time.Hour)
	for _, ago := range []time.Duration{90*day + time.Hour, 50 * day, 10 * day} {
		older.resolve(older.complaint(domain.SeverityLow, ago), ago-time.Hour)
	}
	add("2 complaints in 90 days and one before", older, "0 low")

	// low_csat: ≤ 2 20, = 3 5; low_nps: ≤ 6 20, 7–8 5.
	for _, x := range []struct {
		csat int
		want string
	}{{1, "20 low low_csat=20"}, {2, "20 low low_csat=20"}, {3, "5 low low_csat=5"}, {4, "0 low"}} {
		add(fmt.Sprintf("CSAT %d", x.csat), newHistory(5*day).survey(ptr(x.csat), nil, day), x.want)
	}
	for _, x := range []struct {
		nps  int
		want string
	}{{0, "20 low low_nps=20"}, {6, "20 low low_nps=20"}, {7, "5 low low_nps=5"}, {8, "5 low low_nps=5"}, {9, "0 low"}} {
		add(fmt.Sprintf("NPS %d", x.nps), newHistory(5*day).survey(nil, ptr(x.nps), day), x.want)
	}

	// csat_drop: the last CSAT 2 or more below the one answered before.
	add("CSAT 5 then 3", newHistory(5*day).survey(ptr(5), nil, 3*day).survey(ptr(3), nil, day), "15 low low_csat=5 csat_drop=10")
	add("CSAT 4 then 3", newHistory(5*day).survey(ptr(4), nil, 3*day).survey(ptr(3), nil, day), "5 low low_csat=5")
	add("CSAT 5 then 4", newHistory(5*day).survey(ptr(5), nil, 3*day).survey(ptr(4), nil, day), "0 low")
	// Recorded in the other order: "last" follows answered_at.
	add("CSAT 2 answered last, recorded first", newHistory(5*day).survey(ptr(2), nil, day).survey(ptr(5), nil, 3*day), "30 medium low_csat=20 csat_drop=10")

	// follow_up_overdue: past due, no contact since it was scheduled.
	add("follow-up overdue", newHistory(5*day).followUp(3*day, time.Hour), "10 low follow_up_overdue=10")
	add("follow-up not yet due", newHistory(5*day).followUp(3*day, -time.Hour), "0 low")
	add("follow-up done by a contact", newHistory(5*day).followUp(3*day, time.Hour).contact(2*day), "0 low")

	// Everything at once: 30+30+15+10+20+20+10+10 = 145, capped at 100.
	all := newHistory(400*day).contact(100*day).followUp(99*day, 98*day).survey(ptr(5), nil, 97*day).survey(ptr(1), ptr(0), 96*day)
	for range 3 {
		all.complaint(domain.SeverityHigh, 80*day)
	}
	add("every factor: capped at 100", all,
		"100 high days_since_contact=30 open_complaints=30 sla_breach=15 complaints_last_90_days=10 low_csat=20 low_nps=20 csat_drop=10 follow_up_overdue=10")
	add("55 is medium", newHistory(400*day).survey(ptr(3), ptr(6), day), "55 medium days_since_contact=30 low_csat=5 low_nps=20")
	add("60 is high", newHistory(400*day).survey(ptr(2), nil, day).followUp(2*day, time.Hour), "60 high days_since_contact=30 low_csat=20 follow_up_overdue=10")
	add("65 is high", newHistory(400*day).survey(ptr(2), ptr(8), day).followUp(2*day, time.Hour), "65 high days_since_contact=30 low_csat=20 low_nps=5 follow_up_overdue=10")

	// Only active customers have a score.
	add("churned", newHistory(400*day).add(domain.CustomerChurned{Reason: "price", OccurredAt: now.Add(-day)}), "none")
	add("churned and reactivated", newHistory(400*day).add(domain.CustomerChurned{Reason: "price", OccurredAt: now.Add(-2 * day)},
		domain.CustomerReactivated{OccurredAt: now.Add(-day)}), "30 medium days_since_contact=30")
	add("erased", newHistory(400*day).add(domain.CustomerDataErased{Reason: "GDPR", OccurredAt: now.Add(-day)}), "none")
	return cases
}

func TestChurnRiskFactors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cases := riskCases()
	for _, c := range cases {
		e.do(t, c.h.id, c.h.events...)
	}
	q := e.q.At(now)
	byLevel := map[string][]uuid.UUID{}
	for _, c := range cases {
		got, err := q.Get(ctx, c.h.id)
		if err != nil {
			t.Fatal(err)
		}
		if s := riskString(got.ChurnRisk); s != c.want {
			t.Errorf("%s: risk %q, want %q", c.name, s, c.want)
		}
		if got.ChurnRisk != nil {
			byLevel[got.ChurnRisk.Level] = append(byLevel[got.ChurnRisk.Level], c.h.id)
		}
	}
	// The list filter uses the same function: each level lists exactly the
	// customers Get scores at it, across pages.
	for _, level := range []string{risk.LevelLow, risk.LevelMedium, risk.LevelHigh} {
		got := listAll(t, q, customers.Filter{Risk: level}, 3)
		for _, c := range got {
			if c.ChurnRisk == nil || c.ChurnRisk.Level != level {
				t.Errorf("risk=%s listed %s with %s", level, c.ID, riskString(c.ChurnRisk))
			}
		}
		if !sameIDs(ids(got), byLevel[level]) {
			t.Errorf("risk=%s: %d customers, want %d", level, len(got), len(byLevel[level]))
		}
	}
	if _, err := q.List(ctx, customers.Filter{Risk: "extreme"}, 10, ""); err == nil {
		t.Error("unknown risk level accepted")
	}
}

// TestChurnRiskLevelBoundariesAndWeights scores one customer (last CSAT
// 1, nothing else) with low_csat weighted 0, 29, 30, 59, 60 and 100.
func TestChurnRiskLevelBoundariesAndWeights(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h := newHistory(day).survey(ptr(1), nil, time.Hour)
	e.do(t, h.id, h.events...)
	for _, x := range []struct {
		points int
		want   string
	}{{0, "0 low"}, {29, "29 low low_csat=29"}, {30, "30 medium low_csat=30"}, {59, "59 medium low_csat=59"}, {60, "60 high low_csat=60"}, {100, "100 high low_csat=100"}} {
		w, err := risk.ParseWeights(fmt.Sprintf("csat_low=%d", x.points))
		if err != nil {
			t.Fatal(err)
		}
		q := customers.NewQueries(e.pool, customers.WithRisk(w, sla.Defaults()), customers.WithClock(func() time.Time { return now }))
		got, err := q.Get(ctx, h.id)
		if err != nil {
			t.Fatal(err)
		}
		if s := riskString(got.ChurnRisk); s != x.want {
			t.Errorf("csat_low=%d: %q, want %q", x.points, s, x.want)
		}
		level := strings.Fields(x.want)[1]
		if page, err := q.List(ctx, customers.Filter{Risk: level}, 10, ""); err != nil || len(page.Items) != 1 {
			t.Errorf("csat_low=%d: risk=%s lists %d (%v)", x.points, level, len(page.Items), err)
		}
	}
	// Configured SLA targets are used: with a 10-minute first response for
	// high complaints, one filed 20 minutes ago is overdue.
	c := newHistory(day)
	c.complaint(domain.SeverityHigh, 20*time.Minute)
	e.do(t, c.id, c.events...)
	targets, err := sla.Parse("high=10m/72h")
	if err != nil {
		t.Fatal(err)
	}
	q := customers.NewQueries(e.pool, customers.WithRisk(risk.DefaultWeights(), targets)).At(now)
	if got, err := q.Get(ctx, c.id); err != nil || riskString(got.ChurnRisk) != "30 medium open_complaints=15 sla_breach=15" {
		t.Errorf("configured SLA: %s (%v)", riskString(got.ChurnRisk), err)
	}
	if got, err := e.q.At(now).Get(ctx, c.id); err != nil || riskString(got.ChurnRisk) != "15 low open_complaints=15" {
		t.Errorf("default SLA: %s (%v)", riskString(got.ChurnRisk), err)
	}
}

// TestChurnRiskChangesWithTime: the same directory row scores differently
// later, without any new event.
func TestChurnRiskChangesWithTime(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h := newHistory(20*day).followUp(20*day, -5*day).survey(ptr(4), ptr(9), 20*day)
	h.complaint(domain.SeverityHigh, time.Hour)
	for _, ago := range []time.Duration{85 * day, 30 * day} {
		h.resolve(h.complaint(domain.SeverityLow, ago), ago-time.Hour)
	}
	e.do(t, h.id, h.events...)
	for _, x := range []struct {
		at   time.Time
		want string
	}{
		// 20 days since registration; one open complaint within its SLA;
		// 3 complaints in 90 days; the follow-up is due in 5 days.
		{now, "25 low open_complaints=15 complaints_last_90_days=10"},
		// 4 h later the first response is overdue.
		{now.Add(4 * time.Hour), "40 medium open_complaints=15 sla_breach=15 complaints_last_90_days=10"},
		// 6 days later: the follow-up is overdue, the oldest complaint
		// left the 90 days.
		{now.Add(6 * day), "40 medium open_complaints=15 sla_breach=15 follow_up_overdue=10"},
		// 12 days later: 32 days since registration.
		{now.Add(12 * day), "50 medium days_since_contact=10 open_complaints=15 sla_breach=15 follow_up_overdue=10"},
	} {
		got, err := e.q.At(x.at).Get(ctx, h.id)
		if err != nil {
			t.Fatal(err)
		}
		if s := riskString(got.ChurnRisk); s != x.want {
			t.Errorf("at %s: %q, want %q", x.at, s, x.want)
		}
	}
}

// TestNoContactDaysAndTheAnalystsQuestion: which high-risk customers have
// had no contact for 60 days, and why.
func TestNoContactDaysAndTheAnalystsQuestion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	silent := newHistory(400*day).contact(61*day).survey(ptr(1), ptr(2), 10*day) // 20+20+20: high
	silent60 := newHistory(400*day).contact(60*day).survey(ptr(2), ptr(3), 10*day)
	talking := newHistory(400*day).contact(10*day).survey(ptr(1), ptr(0), 10*day).followUp(9*day, day) // 20+20+10: medium
	neverContacted := newHistory(70*day).survey(ptr(1), ptr(1), day)                                   // 20+20+20: high
	quietButFine := newHistory(400 * day).contact(100 * day)                                           // 30: medium
	for _, h := range []*history{silent, silent60, talking, neverContacted, quietButFine} {
		e.do(t, h.id, h.events...)
	}
	q := e.q.At(now)
	got := listAll(t, q, customers.Filter{NoContactDays: 60}, 2)
	if !sameIDs(ids(got), []uuid.UUID{silent.id, silent60.id, neverContacted.id, quietButFine.id}) {
		t.Errorf("no_contact_days=60: %v", ids(got))
	}
	if got := listAll(t, q, customers.Filter{NoContactDays: 61}, 2); !sameIDs(ids(got), []uuid.UUID{silent.id, neverContacted.id, quietButFine.id}) {
		t.Errorf("no_contact_days=61: %v", ids(got))
	}
	answer := listAll(t, q, customers.Filter{Risk: risk.LevelHigh, NoContactDays: 60}, 10)
	want := map[uuid.UUID]string{
		silent.id:         "60 high days_since_contact=20 low_csat=20 low_nps=20",
		silent60.id:       "50 medium days_since_contact=10 low_csat=20 low_nps=20",
		neverContacted.id: "60 high days_since_contact=20 low_csat=20 low_nps=20",
	}
	if !sameIDs(ids(answer), []uuid.UUID{silent.id, neverContacted.id}) {
		t.Fatalf("high risk, no contact for 60 days: %v", ids(answer))
	}
	for _, c := range answer {
		if s := riskString(c.ChurnRisk); s != want[c.ID] {
			t.Errorf("%s: %q, want %q", c.ID, s, want[c.ID])
		}
	}
	// The same question in SQL, as SCHEMA.md writes it.
	rows, err := e.pool.Query(ctx, analystSQL, now)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var sqlIDs []uuid.UUID
	for rows.Next() {
		var (
			id      uuid.UUID
			name    *string
			last    *time.Time
			days    int
			score   int
			factors []byte
		)
		if err := rows.Scan(&id, &name, &last, &days, &score, &factors); err != nil {
			t.Fatal(err)
		}
		sqlIDs = append(sqlIDs, id)
		if score != 60 || days < 60 || !strings.Contains(string(factors), `"days_since_contact"`) {
			t.Errorf("SQL answer %s: score %d, %d days, factors %s", id, score, days, factors)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !sameIDs(sqlIDs, []uuid.UUID{silent.id, neverContacted.id}) {
		t.Errorf("SQL answer: %v", sqlIDs)
	}
}

// analystSQL is SCHEMA.md's answer to the analysts' question, with the
// time as $1 instead of now().
const analystSQL = `
SELECT c.id, c.name, c.last_contact_at,
       floor(extract(epoch FROM $1::timestamptz - coalesce(c.last_contact_at, c.registered_at)) / 86400)::int AS days_without_contact,
       r.score, r.factors
FROM readmodels.customers c
CROSS JOIN LATERAL readmodels.customer_risk(c.status, c.registered_at, c.last_contact_at, c.open_complaints,
       c.complaints_total, c.complaints, c.last_csat, c.prev_csat, c.last_nps, c.next_follow_up_due_at, $1) r
WHERE r.level = 'high'
  AND coalesce(c.last_contact_at, c.registered_at) <= $1::timestamptz - interval '60 days'
ORDER BY r.score DESC, c.id`

func TestChurnRiskWeightsInSQL(t *testing.T) {
	e := newEnv(t)
	h := newHistory(day)
	e.do(t, h.id, h.events...) // the projector has set up its functions
	var got []int32
	if err := e.pool.QueryRow(context.Background(), `SELECT readmodels.customer_risk_weights('{"contact_90d": 40, "sla_breach": 0}')`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	w := risk.DefaultWeights()
	w.Contact90d, w.SLABreach = 40, 0
	if !slices.Equal(got, w.Array()) {
		t.Fatalf("customer_risk_weights: %v, want %v", got, w.Array())
	}
}

func listAll(t *testing.T, q *customers.Queries, f customers.Filter, limit int) []customers.Customer {
	t.Helper()
	var out []customers.Customer
	cursor := ""
	for {
		page, err := q.List(context.Background(), f, limit, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) > limit {
			t.Fatalf("page of %d, limit %d", len(page.Items), limit)
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

func ids(cs []customers.Customer) []uuid.UUID {
	out := make([]uuid.UUID, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

// sameIDs compares as sets, and fails on repeats.
func sameIDs(a, b []uuid.UUID) bool {
	seen := map[uuid.UUID]int{}
	for _, id := range a {
		seen[id]++
	}
	if len(seen) != len(a) || len(a) != len(b) {
		return false
	}
	for _, id := range b {
		if seen[id] != 1 {
			return false
		}
	}
	return true
}
