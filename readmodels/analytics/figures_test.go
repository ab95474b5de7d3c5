package analytics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
	"github.com/rapport-crm/rapport/readmodels/rollups"
	"github.com/rapport-crm/rapport/readmodels/sla"
	"github.com/rapport-crm/rapport/readmodels/surveys"
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

// ts parses an RFC 3339 time of the scenario.
func simTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func refTo[T any](v T) *T { return &v }

// scenario is a small CRM in 2025 whose every figure is computed by hand
// in TestAnalyticsFigures. Customers (registered 2025-01-01 unless said):
//
//	A enterprise, tier A, emea, account manager alice
//	B enterprise, tier B, amer, account manager bob
//	C smb, tier A, emea, account manager alice
//	D smb, tier C, no region, no account manager
//	E no classification, registered 2025-04-10 (mid-period)
type scenario struct {
	A, B, C, D, E                   uuid.UUID
	K1, K2, K3, K4, K5, K6, K7      uuid.UUID
	FU1, FU2, FU3, FU4              uuid.UUID
	contactA1, contactA2, contactB1 uuid.UUID
	surveyA1, surveyA3, surveyC1    uuid.UUID
	eraseA                          func()
}

func buildScenario(s *sim) *scenario {
	sc := &scenario{}
	reg := func(at, name, segment, tier, region string) uuid.UUID {
		return s.do(uuid.Nil, at, domain.RegisterCustomer{Name: name, Phone: "+44 20 7946 000" + fmt.Sprint(len(name)+int(name[0])), Segment: segment, Tier: tier, Region: region})
	}
	contact := func(id uuid.UUID, at string) uuid.UUID {
		return s.do(id, at, domain.LogContact{Channel: domain.ChannelPhone, Direction: domain.DirectionOutbound, Summary: "call with " + at, By: "carol"})
	}
	survey := func(id uuid.UUID, at string, csat, nps *int) uuid.UUID {
		return s.do(id, at, domain.RecordSurvey{CSAT: csat, NPS: nps, Comment: "comment " + at, Channel: domain.ChannelEmail})
	}
	file := func(id uuid.UUID, at string, sev domain.Severity) uuid.UUID {
		return s.do(id, at, domain.FileComplaint{Category: "billing", Severity: sev, Description: "description " + at, Channel: domain.ChannelEmail})
	}
	ack := func(id, k uuid.UUID, at string) {
		s.do(id, at, domain.AcknowledgeComplaint{ComplaintID: k, By: "dave", Note: "on it"})
	}
	resolve := func(id, k uuid.UUID, at, text string) {
		s.do(id, at, domain.ResolveComplaint{ComplaintID: k, By: "erin", Resolution: text})
	}
	reopen := func(id, k uuid.UUID, at string) {
		s.do(id, at, domain.ReopenComplaint{ComplaintID: k, Reason: "again"})
	}
	followUp := func(id uuid.UUID, at, due string) uuid.UUID {
		return s.do(id, at, domain.ScheduleFollowUp{DueAt: simTime(due), By: "carol", Note: "call back"})
	}
	churn := func(id uuid.UUID, at string, churnedAt *time.Time) {
		s.do(id, at, domain.MarkChurned{Reason: "left", ChurnedAt: churnedAt})
	}
	reactivate := func(id uuid.UUID, at string) { s.do(id, at, domain.Reactivate{Reason: "back"}) }
	manager := func(id uuid.UUID, at, member string) {
		s.do(id, at, domain.AssignTeamMember{Role: domain.RoleAccountManager, Member: member})
	}

	sc.A = reg("2025-01-01T09:00:00Z", "A", "enterprise", "A", "emea")
	sc.B = reg("2025-01-01T09:00:00Z", "B", "enterprise", "B", "amer")
	sc.C = reg("2025-01-01T09:00:00Z", "C", "smb", "A", "emea")
	sc.D = reg("2025-01-01T09:00:00Z", "D", "smb", "C", "")
	manager(sc.A, "2025-01-01T10:00:00Z", "alice")
	manager(sc.B, "2025-01-01T10:00:00Z", "bob")
	manager(sc.C, "2025-01-01T10:00:00Z", "alice")
	churn(sc.C, "2025-02-15T00:00:00Z", nil)
	sc.K6 = file(sc.D, "2025-02-20T00:00:00Z", domain.SeverityMedium)
	survey(sc.D, "2025-02-28T23:59:59Z", refTo(5), nil)
	sc.surveyA1 = survey(sc.A, "2025-03-05T00:00:00Z", refTo(5), refTo(10))
	survey(sc.B, "2025-03-10T00:00:00Z", refTo(3), nil)
	sc.K1 = file(sc.A, "2025-03-10T10:00:00Z", domain.SeverityHigh)
	ack(sc.A, sc.K1, "2025-03-10T12:00:00Z")
	resolve(sc.A, sc.K1, "2025-03-11T10:00:00Z", "refunded")
	sc.contactA1 = contact(sc.A, "2025-03-15T00:00:00Z")
	reactivate(sc.C, "2025-03-20T00:00:00Z")
	sc.K2 = file(sc.A, "2025-04-01T00:00:00Z", domain.SeverityCritical)
	sc.FU4 = followUp(sc.C, "2025-04-01T00:00:00Z", "2025-04-05T00:00:00Z")
	ack(sc.A, sc.K2, "2025-04-01T03:00:00Z")
	survey(sc.A, "2025-04-02T00:00:00Z", refTo(4), refTo(8))
	resolve(sc.A, sc.K2, "2025-04-03T00:00:00Z", "replaced")
	sc.E = reg("2025-04-10T00:00:00Z", "E", "", "", "")
	churn(sc.B, "2025-04-12T00:00:00Z", refTo(simTime("2025-04-10T00:00:00Z"))) // recorded two days late
	survey(sc.B, "2025-04-15T00:00:00Z", nil, refTo(9))
	sc.K3 = file(sc.B, "2025-04-20T08:00:00Z", domain.SeverityMedium)
	ack(sc.B, sc.K3, "2025-04-20T10:00:00Z")
	resolve(sc.B, sc.K3, "2025-04-22T08:00:00Z", "fixed")
	sc.contactB1 = contact(sc.B, "2025-04-30T00:00:00Z")
	reopen(sc.B, sc.K3, "2025-05-01T08:00:00Z")
	sc.FU1 = followUp(sc.A, "2025-05-01T09:00:00Z", "2025-05-10T00:00:00Z")
	ack(sc.B, sc.K3, "2025-05-01T20:00:00Z")
	reactivate(sc.B, "2025-05-02T00:00:00Z")
	resolve(sc.B, sc.K3, "2025-05-03T08:00:00Z", "fixed again")
	churn(sc.E, "2025-05-05T00:00:00Z", nil)
	sc.FU2 = followUp(sc.B, "2025-05-05T12:00:00Z", "2025-05-15T00:00:00Z")
	sc.K4 = file(sc.C, "2025-05-10T00:00:00Z", domain.SeverityLow)
	contact(sc.C, "2025-05-10T12:00:00Z")
	churn(sc.C, "2025-05-15T00:00:00Z", nil)
	sc.surveyA3 = survey(sc.A, "2025-05-20T00:00:00Z", refTo(2), refTo(3))
	sc.K5 = file(sc.C, "2025-05-20T00:00:00Z", domain.SeverityHigh)
	ack(sc.C, sc.K5, "2025-05-20T01:00:00Z")
	sc.contactA2 = contact(sc.A, "2025-05-20T12:00:00Z")
	resolve(sc.C, sc.K5, "2025-05-21T00:00:00Z", "done")
	reopen(sc.C, sc.K5, "2025-05-25T00:00:00Z")
	sc.FU3 = followUp(sc.D, "2025-05-25T12:00:00Z", "2025-06-10T00:00:00Z")
	contact(sc.D, "2025-05-31T23:00:00Z")
	sc.surveyC1 = survey(sc.C, "2025-05-31T23:59:59Z", refTo(1), refTo(0))
	survey(sc.C, "2025-06-01T00:00:00Z", refTo(5), refTo(10))
	sc.K7 = file(sc.E, "2025-06-01T00:00:00Z", domain.SeverityLow)
	churn(sc.D, "2025-06-10T00:00:00Z", nil)
	sc.eraseA = func() { s.do(sc.A, "2025-07-01T00:00:00Z", domain.EraseCustomerData{Reason: "GDPR request"}) }
	return sc
}

// jsonNull stands for a jsonNull figure or key in the expectations.
var jsonNull = struct{}{}

// figures maps a group key (or jsonNull) to figures.
type figures map[any]map[string]any

// getReport computes an analytics report with the service's queries and
// returns its groups by key ("<null>" for a null key), each as the API
// answers it in JSON: the key, and every figure a float64 or nil when
// undefined; and the groups so rendered, in order.
func getReport(t *testing.T, m *apptest.Main, s *sim, family, query string) (map[string]map[string]any, []string, []byte) {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	var p analytics.Params
	p.GroupBy = analytics.GroupBy(q.Get("group_by"))
	p.From, p.To = simTime(q.Get("from")), simTime(q.Get("to"))
	f := analytics.Family(family)
	rep, err := analytics.NewQueries(m.Pool, nil).Report(t.Context(), f, p)
	if err != nil {
		t.Fatalf("%s?%s: %v", family, query, err)
	}
	out := map[string]map[string]any{}
	var order []string
	var groups []map[string]any
	for i := range rep.Groups {
		g := &rep.Groups[i]
		key, shown := "<null>", map[string]any{"key": nil}
		if g.Key != nil {
			key, shown["key"] = *g.Key, *g.Key
		}
		for _, c := range analytics.Columns(f) {
			switch v := g.Figure(c).(type) {
			case *float64:
				if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
					shown[c] = nil
				} else {
					shown[c] = *v
				}
			case int64:
				shown[c] = float64(v)
			default:
				t.Fatalf("%s?%s: figure %s is a %T", family, query, c, v)
			}
		}
		out[key] = shown
		order = append(order, key)
		groups = append(groups, shown)
	}
	raw, err := json.Marshal(groups)
	if err != nil {
		t.Fatal(err)
	}
	return out, order, raw
}

// checkReport compares a report with hand-computed figures: every group
// expected and no other, every figure named.
func checkReport(t *testing.T, m *apptest.Main, s *sim, family, query string, w figures) {
	t.Helper()
	got, _, raw := getReport(t, m, s, family, query)
	var keys []string
	for k := range w {
		if k == jsonNull {
			keys = append(keys, "<null>")
		} else {
			keys = append(keys, k.(string))
		}
	}
	var gotKeys []string
	for k := range got {
		gotKeys = append(gotKeys, k)
	}
	sort.Strings(keys)
	sort.Strings(gotKeys)
	if !slices.Equal(keys, gotKeys) {
		t.Errorf("%s?%s: groups %v, want %v\n%s", family, query, gotKeys, keys, raw)
		return
	}
	for k, figures := range w {
		key := "<null>"
		if k != jsonNull {
			key = k.(string)
		}
		for name, v := range figures {
			g, present := got[key][name]
			if !present {
				t.Errorf("%s?%s group %s: no %s", family, query, key, name)
				continue
			}
			if v == jsonNull {
				if g != nil {
					t.Errorf("%s?%s group %s: %s = %v, want null", family, query, key, name, g)
				}
				continue
			}
			want := toFloat(v)
			f, ok := g.(float64)
			if !ok || math.Abs(f-want) > 1e-9 {
				t.Errorf("%s?%s group %s: %s = %v, want %v", family, query, key, name, g, want)
			}
		}
	}
}

func toFloat(v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case float64:
		return v
	}
	panic(fmt.Sprintf("expectation %v (%T)", v, v))
}

const scenarioPeriod = "from=2025-03-01T00:00:00Z&to=2025-06-01T00:00:00Z"

// TestAnalyticsFigures checks every figure of PRODUCT.md against values
// computed by hand from the scenario, by group and by month, with the edge
// cases: no surveys, only detractors, a churn and a reactivation in one
// period, reopened complaints (timings of the last opening, open until
// resolved again), customers registered mid-period, empty groups, months
// across boundaries; then that an erasure and a rebuild leave every figure
// as it was. (How the API renders them, JSON and CSV, is infra/http's.)
func TestAnalyticsFigures(t *testing.T) {
	m := apptest.MustOpen(t)
	s := &sim{t: t, m: m}
	sc := buildScenario(s)
	s.wait()

	// Satisfaction over [03-01, 06-01): A (5,10) (4,8) (2,3), B (3,-) (-,9),
	// C (1,0) at 05-31T23:59:59; D's survey of 02-28 and C's of 06-01 are
	// outside. CSAT 5,4,2,3,1: 2 of 5 are 4-5, mean 3; NPS 10,8,3,9,0:
	// 2 promoters, 2 detractors.
	checkReport(t, m, s, "satisfaction", scenarioPeriod, figures{
		"all": {"csat_pct": 40, "csat_avg": 3, "nps": 0, "responses": 6, "csat_responses": 5, "nps_responses": 5},
	})
	checkReport(t, m, s, "satisfaction", scenarioPeriod+"&group_by=segment", figures{
		// A and B: CSAT 5,4,2,3 (2 of 4, mean 3.5), NPS 10,8,3,9 (2-1 of 4).
		"enterprise": {"csat_pct": 50, "csat_avg": 3.5, "nps": 25, "responses": 5},
		// C alone: only detractors.
		"smb": {"csat_pct": 0, "csat_avg": 1, "nps": -100, "responses": 1},
		// E has no segment and no survey: an empty group.
		jsonNull: {"csat_pct": jsonNull, "csat_avg": jsonNull, "nps": jsonNull, "responses": 0, "csat_responses": 0, "nps_responses": 0},
	})
	checkReport(t, m, s, "satisfaction", scenarioPeriod+"&group_by=owner", figures{
		"alice":  {"csat_pct": 50, "csat_avg": 3, "nps": -25, "responses": 4}, // A and C: CSAT 5,4,2,1; NPS 10,8,3,0
		"bob":    {"csat_pct": 0, "csat_avg": 3, "nps": 100, "responses": 2},  // B: CSAT 3; NPS 9
		jsonNull: {"csat_pct": jsonNull, "csat_avg": jsonNull, "nps": jsonNull, "responses": 0},
	})
	checkReport(t, m, s, "satisfaction", scenarioPeriod+"&group_by=tier", figures{
		"A": {"csat_pct": 50, "nps": -25, "responses": 4}, "B": {"csat_pct": 0, "nps": 100, "responses": 2},
		"C": {"csat_pct": jsonNull, "responses": 0}, jsonNull: {"responses": 0},
	})
	checkReport(t, m, s, "satisfaction", scenarioPeriod+"&group_by=month", figures{
		"2025-03": {"csat_pct": 50, "csat_avg": 4, "nps": 100, "responses": 2},   // A (5,10), B (3,-)
		"2025-04": {"csat_pct": 100, "csat_avg": 4, "nps": 50, "responses": 2},   // A (4,8), B (-,9)
		"2025-05": {"csat_pct": 0, "csat_avg": 1.5, "nps": -100, "responses": 2}, // A (2,3), C (1,0): only detractors
	})
	// February: D's CSAT 5 one second before March, no NPS answer at all.
	checkReport(t, m, s, "satisfaction", "from=2025-02-01T00:00:00Z&to=2025-03-01T00:00:00Z&group_by=month", figures{
		"2025-02": {"csat_pct": 100, "csat_avg": 5, "nps": jsonNull, "responses": 1, "nps_responses": 0},
	})
	// No surveys at all.
	checkReport(t, m, s, "satisfaction", "from=2025-07-01T00:00:00Z&to=2025-08-01T00:00:00Z", figures{
		"all": {"csat_pct": jsonNull, "csat_avg": jsonNull, "nps": jsonNull, "responses": 0},
	})

	// Churn over [03-01, 06-01): active at 03-01 are A, B and D (C churned
	// 02-15 and came back 03-20; E registered 04-10). Of them B churned
	// (04-10, recorded 04-12) and came back 05-02: still a churn.
	checkReport(t, m, s, "churn", scenarioPeriod, figures{
		"all": {"churn_rate": 100.0 / 3, "retention_rate": 100 - 100.0/3, "active_at_start": 3, "churned": 1},
	})
	checkReport(t, m, s, "churn", scenarioPeriod+"&group_by=segment", figures{
		"enterprise": {"churn_rate": 50, "retention_rate": 50, "active_at_start": 2, "churned": 1},
		"smb":        {"churn_rate": 0, "retention_rate": 100, "active_at_start": 1, "churned": 0},
		jsonNull:     {"churn_rate": jsonNull, "retention_rate": jsonNull, "active_at_start": 0, "churned": 0}, // E: registered mid-period
	})
	checkReport(t, m, s, "churn", scenarioPeriod+"&group_by=region", figures{
		"emea": {"churn_rate": 0, "active_at_start": 1}, "amer": {"churn_rate": 100, "retention_rate": 0, "active_at_start": 1},
		jsonNull: {"churn_rate": 0, "active_at_start": 1}, // D (E was not active at the start)
	})
	checkReport(t, m, s, "churn", scenarioPeriod+"&group_by=month", figures{
		"2025-03": {"churn_rate": 0, "active_at_start": 3, "churned": 0},  // A, B, D
		"2025-04": {"churn_rate": 25, "active_at_start": 4, "churned": 1}, // A, B, C, D; B churns
		"2025-05": {"churn_rate": 50, "active_at_start": 4, "churned": 2}, // A, C, D, E (B back 05-02); C and E churn
	})
	// Months not aligned with the period: each month from its own start,
	// clipped to the period.
	checkReport(t, m, s, "churn", "from=2025-03-15T00:00:00Z&to=2025-05-10T00:00:00Z&group_by=month", figures{
		"2025-03": {"churn_rate": 0, "active_at_start": 3},                // A, B, D at 03-15
		"2025-04": {"churn_rate": 25, "active_at_start": 4, "churned": 1}, // B
		"2025-05": {"churn_rate": 25, "active_at_start": 4, "churned": 1}, // E on 05-05; C's churn (05-15) is after the period
	})

	// Complaints filed in [03-01, 06-01): K1 (A high), K2 (A critical), K3
	// (B medium, reopened and resolved again), K4 (C low, open), K5 (C
	// high, reopened, open). Active in the period: A, B, C, D, E.
	// First responses of the last openings: K1 2 h, K2 3 h, K3 12 h (after
	// the reopening); K4 and K5 have none. Resolutions: K1 24 h, K2 48 h,
	// K3 48 h. Breaches (judged now): K2 both, K3 first response, K4 both,
	// K5 both (its last opening was never answered).
	checkReport(t, m, s, "complaints", scenarioPeriod, figures{
		"all": {"complaint_rate": 100, "resolution_rate": 60, "first_response_median_s": 10800, "resolution_median_s": 172800,
			"sla_breaches": 4, "first_response_breaches": 4, "resolution_breaches": 3, "filed": 5, "resolved": 3, "active_in_period": 5},
	})
	checkReport(t, m, s, "complaints", scenarioPeriod+"&group_by=segment", figures{
		"enterprise": {"complaint_rate": 150, "resolution_rate": 100, "first_response_median_s": 10800, "resolution_median_s": 172800,
			"sla_breaches": 2, "first_response_breaches": 2, "resolution_breaches": 1, "filed": 3, "active_in_period": 2},
		"smb": {"complaint_rate": 100, "resolution_rate": 0, "first_response_median_s": jsonNull, "resolution_median_s": jsonNull,
			"sla_breaches": 2, "first_response_breaches": 2, "resolution_breaches": 2, "filed": 2, "active_in_period": 2},
		jsonNull: {"complaint_rate": 0, "resolution_rate": jsonNull, "first_response_median_s": jsonNull, "resolution_median_s": jsonNull,
			"sla_breaches": 0, "filed": 0, "active_in_period": 1},
	})
	checkReport(t, m, s, "complaints", scenarioPeriod+"&group_by=month", figures{
		"2025-03": {"complaint_rate": 25, "resolution_rate": 100, "first_response_median_s": 7200, "resolution_median_s": 86400,
			"sla_breaches": 0, "filed": 1, "active_in_period": 4},
		// An even count: the median is the mean of 3 h and 12 h.
		"2025-04": {"complaint_rate": 40, "resolution_rate": 100, "first_response_median_s": 27000, "resolution_median_s": 172800,
			"sla_breaches": 2, "first_response_breaches": 2, "resolution_breaches": 1, "filed": 2, "active_in_period": 5},
		"2025-05": {"complaint_rate": 40, "resolution_rate": 0, "first_response_median_s": jsonNull, "resolution_median_s": jsonNull,
			"sla_breaches": 2, "first_response_breaches": 2, "resolution_breaches": 2, "filed": 2, "active_in_period": 5},
	})

	// Contacts at 06-01: active are A, B (back 05-02) and D; A (05-20) and
	// D (05-31) had a contact since 05-02. Overdue: B's follow-up (due
	// 05-15, no contact since); A's was completed 05-20, C's 05-10, D's is
	// not due.
	checkReport(t, m, s, "contacts", scenarioPeriod, figures{
		"all": {"contact_coverage": 200.0 / 3, "follow_ups_overdue": 1, "active_at_end": 3, "contacted": 2},
	})
	checkReport(t, m, s, "contacts", scenarioPeriod+"&group_by=segment", figures{
		"enterprise": {"contact_coverage": 50, "follow_ups_overdue": 1},
		"smb":        {"contact_coverage": 100, "follow_ups_overdue": 0},
		jsonNull:     {"contact_coverage": jsonNull, "follow_ups_overdue": 0, "active_at_end": 0},
	})
	checkReport(t, m, s, "contacts", scenarioPeriod+"&group_by=month", figures{
		// At 04-01: A, B, C, D active; only A's 03-15 contact is recent.
		"2025-03": {"contact_coverage": 25, "follow_ups_overdue": 0, "active_at_end": 4},
		// At 05-01: A, C, D, E active, none contacted since 04-01 (B's
		// contact is B's, churned then); C's follow-up due 04-05 is
		// overdue until its contact of 05-10.
		"2025-04": {"contact_coverage": 0, "follow_ups_overdue": 1, "active_at_end": 4},
		"2025-05": {"contact_coverage": 200.0 / 3, "follow_ups_overdue": 1, "active_at_end": 3},
	})

	// The headline figures together.
	kpis := map[string]any{"csat_pct": 40, "csat_avg": 3, "nps": 0, "responses": 6, "churn_rate": 100.0 / 3,
		"retention_rate": 100 - 100.0/3, "complaint_rate": 100, "resolution_rate": 60, "first_response_median_s": 10800,
		"resolution_median_s": 172800, "sla_breaches": 4, "contact_coverage": 200.0 / 3, "follow_ups_overdue": 1,
		// Active at the end A, B, D: B (tier B, last contact 04-30, 32 days)
		// is due, A (tier A, 05-20T12, 11 days) and D (C, 05-31) are not; no
		// customer has more than 3 outbound contacts in any 7 days.
		"cadence_adherence": 200.0 / 3, "over_contacted": 0}
	checkReport(t, m, s, "kpis", scenarioPeriod, figures{"all": kpis})
	checkReadmeSQL(t, m, kpis)

	// SLA targets are judged at query time: other targets, same rows.
	loose := sla.Defaults()
	loose[domain.SeverityCritical] = sla.Target{FirstResponse: 4 * time.Hour, Resolution: 72 * time.Hour}
	rep, err := analytics.NewQueries(m.Pool, loose).Report(t.Context(), analytics.Complaints,
		analytics.Params{From: simTime("2025-03-01T00:00:00Z"), To: simTime("2025-06-01T00:00:00Z")})
	if err != nil {
		t.Fatal(err)
	}
	if g := rep.Groups[0]; g.SLABreaches != 3 || g.FirstResponseBreaches != 3 || g.ResolutionBreaches != 2 {
		t.Errorf("with looser critical targets K2 no longer breaches: %+v", g)
	}

	// Erasure changes no figure, and neither does a rebuild after it.
	queries := []string{scenarioPeriod, scenarioPeriod + "&group_by=segment", scenarioPeriod + "&group_by=owner", scenarioPeriod + "&group_by=tier",
		scenarioPeriod + "&group_by=region", scenarioPeriod + "&group_by=month", "from=2025-01-01T00:00:00Z&to=2025-07-01T00:00:00Z&group_by=month"}
	snapshot := func() map[string][]byte {
		out := map[string][]byte{}
		for _, f := range analytics.Families() {
			for _, q := range queries {
				_, _, raw := getReport(t, m, s, string(f), q)
				out[string(f)+"?"+q] = raw
			}
		}
		return out
	}
	before := snapshot()
	sc.eraseA()
	s.wait()
	compare := func(when string) {
		t.Helper()
		after := snapshot()
		for k, raw := range before {
			if !bytes.Equal(raw, after[k]) {
				t.Errorf("%s changed %s:\n%s\n%s", when, k, raw, after[k])
			}
		}
	}
	compare("erasure")
	m.Rebuild(t, contacts.Name, complaints.Name, surveys.Name, lifecycle.Name, rollups.Name)
	compare("a rebuild after the erasure")
	// Personal data stays gone after the rebuild.
	var personal int
	if err := m.Pool.QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM readmodels.contacts WHERE customer_id = $1 AND summary IS NOT NULL) +
		(SELECT count(*) FROM readmodels.follow_ups WHERE customer_id = $1 AND note IS NOT NULL) +
		(SELECT count(*) FROM readmodels.complaints WHERE customer_id = $1 AND (description IS NOT NULL OR resolution IS NOT NULL)) +
		(SELECT count(*) FROM readmodels.complaint_events WHERE customer_id = $1 AND note IS NOT NULL) +
		(SELECT count(*) FROM readmodels.surveys WHERE customer_id = $1 AND comment IS NOT NULL)`, sc.A).Scan(&personal); err != nil {
		t.Fatal(err)
	}
	if personal != 0 {
		t.Errorf("%d personal values of the erased customer came back with the rebuild", personal)
	}
	var others int
	if err := m.Pool.QueryRow(t.Context(), `SELECT count(*) FROM readmodels.contacts WHERE customer_id <> $1 AND summary IS NOT NULL`, sc.A).Scan(&others); err != nil || others == 0 {
		t.Errorf("other customers' summaries: %d (%v)", others, err)
	}
}

// checkReadmeSQL runs the SQL of readmodels/README.md: each "-- figures:"
// block must give the figures Queries reports for the scenario's period
// (the README computes March-May 2025), and each "-- example:" block must
// run.
func checkReadmeSQL(t *testing.T, m *apptest.Main, want map[string]any) {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(raw), "```sql\n")[1:]
	checked := map[string]bool{}
	examples := 0
	for _, block := range blocks {
		sql, _, _ := strings.Cut(block, "```")
		first, _, _ := strings.Cut(sql, "\n")
		rows, err := m.Pool.Query(t.Context(), sql)
		if err != nil {
			t.Errorf("README %s: %v", first, err)
			continue
		}
		names := rows.FieldDescriptions()
		n := 0
		for rows.Next() {
			n++
			values, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(first, "-- figures:") {
				continue
			}
			for i, v := range values {
				name := names[i].Name
				checked[name] = true
				var got *float64
				switch v := v.(type) {
				case int64:
					f := float64(v)
					got = &f
				case float64:
					got = &v
				case pgtype.Numeric:
					if v.Valid {
						f, _ := v.Float64Value()
						got = &f.Float64
					}
				case nil:
				default:
					t.Errorf("README %s: %s is a %T", first, name, v)
				}
				w, ok := want[name]
				switch {
				case !ok:
					t.Errorf("README %s: unknown figure %s", first, name)
				case w == jsonNull && got != nil, w != jsonNull && (got == nil || math.Abs(*got-toFloat(w)) > 1e-9):
					shown := any(nil)
					if got != nil {
						shown = *got
					}
					t.Errorf("README %s: %s = %v, the queries say %v", first, name, shown, w)
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Errorf("README %s: %v", first, err)
		}
		if strings.HasPrefix(first, "-- example:") {
			examples++
		} else if n != 1 {
			t.Errorf("README %s: %d rows", first, n)
		}
	}
	for name := range want {
		if !checked[name] {
			t.Errorf("README: no SQL computes %s", name)
		}
	}
	// Every "-- example:" block of the README ran: NPS by segment, breaches
	// by owner, staff scorecards, and the feed's two (one of reminders).
	if examples != 5 {
		t.Errorf("README: %d worked examples ran", examples)
	}
}
