package goals_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/goals"
)

var (
	q2From = time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	q2To   = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC) // 91 days
)

func goal(figure string, c domain.Comparator, target float64) domain.Goal {
	return domain.Goal{Set: true, Figure: figure, Comparator: c, Target: target, From: q2From, To: q2To}
}

func f(v float64) *float64 { return &v }

func show(v *float64) string {
	if v == nil {
		return "nil"
	}
	return fmt.Sprintf("%g", *v)
}

func near(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return math.Abs(*a-*b) < 1e-9
}

// atShare is the instant at share s of the Q2 period.
func atShare(s float64) time.Time {
	return q2From.Add(time.Duration(s * float64(q2To.Sub(q2From))))
}

// TestGoalWindows: the baseline is the same-length period just before
// from; current runs from from up to now, or to to once past, and does not
// exist before from.
func TestGoalWindows(t *testing.T) {
	for _, c := range []struct {
		name             string
		now              time.Time
		baseline, curent *goals.Window
	}{
		{"before the period", q2From.Add(-time.Hour), &goals.Window{From: q2From.Add(-91 * 24 * time.Hour), To: q2From}, nil},
		{"at from", q2From, &goals.Window{From: q2From.Add(-91 * 24 * time.Hour), To: q2From}, nil},
		{"running", atShare(0.5), &goals.Window{From: q2From.Add(-91 * 24 * time.Hour), To: q2From}, &goals.Window{From: q2From, To: atShare(0.5)}},
		{"at to", q2To, &goals.Window{From: q2From.Add(-91 * 24 * time.Hour), To: q2From}, &goals.Window{From: q2From, To: q2To}},
		{"long past", q2To.AddDate(2, 0, 0), &goals.Window{From: q2From.Add(-91 * 24 * time.Hour), To: q2From}, &goals.Window{From: q2From, To: q2To}},
	} {
		b, cur := goals.Windows(q2From, q2To, c.now)
		if fmt.Sprint(b) != fmt.Sprint(c.baseline) || fmt.Sprint(cur) != fmt.Sprint(c.curent) {
			t.Errorf("%s: baseline %v current %v, want %v %v", c.name, b, cur, c.baseline, c.curent)
		}
	}
	// The baseline is clipped at the product's earliest time.
	early := time.Date(1900, 2, 1, 0, 0, 0, 0, time.UTC)
	b, _ := goals.Windows(early, early.AddDate(1, 0, 0), early)
	if b == nil || !b.From.Equal(domain.MinTime) || !b.To.Equal(early) {
		t.Errorf("early baseline %v", b)
	}
	b, _ = goals.Windows(domain.MinTime, domain.MinTime.AddDate(1, 0, 0), domain.MinTime)
	if b != nil {
		t.Errorf("a goal from 1900-01-01 has no baseline, got %v", b)
	}
}

// TestGoalProgressDefinition: progress is the share of the way from the
// baseline to the target, clipped to 0–100.
func TestGoalProgressDefinition(t *testing.T) {
	now := atShare(0.5)
	for _, c := range []struct {
		name              string
		goal              domain.Goal
		baseline, current *float64
		want              *float64
	}{
		{"halfway up", goal("csat_pct", domain.AtLeast, 90), f(80), f(85), f(50)},
		{"a quarter down", goal("churn_rate", domain.AtMost, 4), f(8), f(7), f(25)},
		{"beyond the target is 100", goal("csat_pct", domain.AtLeast, 90), f(80), f(95), f(100)},
		{"the target exactly is 100", goal("nps", domain.AtLeast, 30), f(10), f(30), f(100)},
		{"moving away is 0", goal("csat_pct", domain.AtLeast, 90), f(80), f(70), f(0)},
		{"baseline already met and current not is 0", goal("csat_pct", domain.AtLeast, 90), f(95), f(85), f(0)},
		{"baseline at the target and current short is 0", goal("csat_pct", domain.AtLeast, 90), f(90), f(85), f(0)},
		{"baseline met and current met is 100", goal("csat_pct", domain.AtLeast, 90), f(95), f(93), f(100)},
		{"no current: undefined", goal("csat_pct", domain.AtLeast, 90), f(80), nil, nil},
		{"no baseline and short: undefined", goal("csat_pct", domain.AtLeast, 90), nil, f(85), nil},
		{"no baseline and met: 100", goal("csat_pct", domain.AtLeast, 90), nil, f(91), f(100)},
		{"negative figures", goal("nps", domain.AtLeast, 0), f(-40), f(-10), f(75)},
	} {
		got := goals.Judge(c.goal, c.baseline, c.current, now).Progress
		if !near(got, c.want) {
			t.Errorf("%s: progress %s, want %s", c.name, show(got), show(c.want))
		}
	}
}

// TestGoalStatusDefinitions: met and missed once the period is over;
// on_track while it runs if the target is met now or the linear
// extrapolation over the elapsed share reaches it; at_risk otherwise.
func TestGoalStatusDefinitions(t *testing.T) {
	for _, c := range []struct {
		name              string
		goal              domain.Goal
		baseline, current *float64
		now               time.Time
		want              goals.Status
		projected         *float64
	}{
		// Over.
		{"over and met", goal("csat_pct", domain.AtLeast, 90), f(80), f(90), q2To, goals.Met, nil},
		{"over and missed", goal("csat_pct", domain.AtLeast, 90), f(80), f(89.9), q2To.Add(time.Hour), goals.Missed, nil},
		{"over at most met", goal("churn_rate", domain.AtMost, 5), f(8), f(5), q2To, goals.Met, nil},
		{"over without a figure is missed", goal("csat_pct", domain.AtLeast, 90), f(80), nil, q2To, goals.Missed, nil},
		// Running, met now.
		{"met now", goal("csat_pct", domain.AtLeast, 90), f(80), f(91), atShare(0.1), goals.OnTrack, f(100)},
		// Running, level figures follow the trend from the baseline:
		// baseline + (current − baseline) ÷ s.
		{"level on trend", goal("csat_pct", domain.AtLeast, 90), f(80), f(85), atShare(0.5), goals.OnTrack, f(90)},
		{"level behind the trend", goal("csat_pct", domain.AtLeast, 90), f(80), f(84), atShare(0.5), goals.AtRisk, f(88)},
		{"level at most on trend", goal("first_response_median_s", domain.AtMost, 3600), f(7200), f(5400), atShare(0.5), goals.OnTrack, f(3600)},
		{"level without a baseline is judged on current", goal("csat_avg", domain.AtLeast, 4.5), nil, f(4.2), atShare(0.5), goals.AtRisk, f(4.2)},
		// Running, accumulating figures grow in proportion: current ÷ s.
		{"count at least on pace", goal("responses", domain.AtLeast, 400), f(300), f(100), atShare(0.25), goals.OnTrack, f(400)},
		{"count at least behind pace", goal("responses", domain.AtLeast, 400), f(300), f(99), atShare(0.25), goals.AtRisk, f(396)},
		{"churn at most within pace", goal("churn_rate", domain.AtMost, 6), f(8), f(2), atShare(0.5), goals.OnTrack, f(4)},
		{"churn under now but over pace", goal("churn_rate", domain.AtMost, 6), f(8), f(4), atShare(0.5), goals.OnTrack, f(8)},
		{"churn already over", goal("churn_rate", domain.AtMost, 6), f(8), f(7), atShare(0.5), goals.AtRisk, f(14)},
		{"retention's shortfall accumulates", goal("retention_rate", domain.AtLeast, 95), f(92), f(97), atShare(0.5), goals.OnTrack, f(94)},
		{"projection stays in range", goal("complaint_rate", domain.AtMost, 10), nil, f(60), atShare(0.5), goals.AtRisk, f(100)},
		// Running without a figure yet.
		{"no data yet", goal("csat_pct", domain.AtLeast, 90), f(95), nil, atShare(0.5), goals.AtRisk, nil},
		// Not begun: judged on the latest figure, the baseline.
		{"not begun, baseline meets", goal("csat_pct", domain.AtLeast, 90), f(95), nil, q2From.Add(-time.Hour), goals.OnTrack, nil},
		{"not begun, baseline short", goal("csat_pct", domain.AtLeast, 90), f(80), nil, q2From, goals.AtRisk, nil},
	} {
		j := goals.Judge(c.goal, c.baseline, c.current, c.now)
		if j.Status != c.want {
			t.Errorf("%s: status %s, want %s (%+v)", c.name, j.Status, c.want, j)
		}
		if c.want != goals.Met && c.want != goals.Missed && c.current != nil && !c.now.Before(c.goal.From) && !near(j.Projected, c.projected) {
			t.Errorf("%s: projected %s, want %s", c.name, show(j.Projected), show(c.projected))
		}
		if (c.want == goals.Met || c.want == goals.Missed) && j.Projected != nil {
			t.Errorf("%s: a finished goal projects nothing, got %s", c.name, show(j.Projected))
		}
	}
	// The elapsed share.
	if e := goals.Judge(goal("nps", domain.AtLeast, 0), nil, nil, atShare(0.25)).ElapsedPct; math.Abs(e-25) > 1e-6 {
		t.Errorf("elapsed %g, want 25", e)
	}
	for _, now := range []time.Time{q2From.Add(-time.Hour), q2To.Add(time.Hour)} {
		e := goals.Judge(goal("nps", domain.AtLeast, 0), nil, nil, now).ElapsedPct
		if e != 0 && e != 100 {
			t.Errorf("elapsed %g outside the period", e)
		}
	}
}
