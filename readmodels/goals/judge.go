package goals

import (
	"math"
	"time"

	"github.com/rapport-crm/rapport/domain"
)

// Status is a goal's judgement (PRODUCT.md "Goals").
type Status string

const (
	// Met: the period is over and the figure met the target.
	Met Status = "met"
	// Missed: the period is over and the figure did not meet the target.
	Missed Status = "missed"
	// OnTrack: the figure meets the target now, or its linear
	// extrapolation over the elapsed share of the period reaches it.
	OnTrack Status = "on_track"
	// AtRisk: otherwise.
	AtRisk Status = "at_risk"
)

// Statuses lists the statuses, for the list's filter.
func Statuses() []Status { return []Status{Met, Missed, OnTrack, AtRisk} }

// Window is a half-open period [From, To) a figure is computed over.
type Window struct{ From, To time.Time }

// Windows are the periods of a goal's two figures at now:
//
//   - baseline: the same length as the goal's period, just before it,
//     [from − (to − from), from) (clipped at the earliest time the product
//     takes, 1900-01-01; nil if nothing is left);
//   - current: from the start of the period up to now, or up to to once
//     the period is over, [from, min(now, to)); nil before the period has
//     begun (now ≤ from).
func Windows(from, to, now time.Time) (baseline, current *Window) {
	span := to.Sub(from)
	b := Window{From: from.Add(-span), To: from}
	if from.Sub(domain.MinTime) < span { // from − span before 1900, or overflowing
		b.From = domain.MinTime
	}
	if b.From.Before(b.To) {
		baseline = &b
	}
	if now.After(from) {
		end := to
		if now.Before(to) {
			end = now
		}
		current = &Window{From: from, To: end}
	}
	return baseline, current
}

// Judgement is what a goal answers besides its figures.
type Judgement struct {
	// Progress is the share (0–100) of the way from the baseline to the
	// target that the current figure has come.
	Progress *float64
	Status   Status
	// ElapsedPct is the share (0–100) of the period gone by at now.
	ElapsedPct float64
	// Projected is the current figure extrapolated linearly to the end of
	// the period (within the figure's range), while the period runs and
	// the figure is known; nil otherwise.
	Projected *float64
}

// accumulating are the figures that count facts over their period, so
// that over part of the period they are about that part of the full
// period's value: responses, SLA breaches (of complaints filed in the
// period), churn rate (customers churned in the period ÷ active at its
// start) and complaint rate (complaints filed ÷ customers active).
// Retention is 100 − churn rate, so its shortfall accumulates. The other
// figures are levels (shares, averages, medians, a state at the period's
// end) that do not grow with the period.
var accumulating = map[string]bool{"responses": true, "sla_breaches": true, "churn_rate": true, "complaint_rate": true}

// Judge judges a goal at now from its baseline and current figures (nil
// when undefined: no data in the window, or the window does not exist).
//
//   - Progress = (current − baseline) ÷ (target − baseline) × 100, clipped
//     to 0–100: 100 once the current figure meets the target; 0 when it
//     does not and the baseline already met it (or equals the target);
//     nil without a current figure, or without a baseline while the
//     target is not met.
//   - Status: once the period is over (now ≥ to), met if the current
//     figure meets the target, else missed. While it runs, on_track if the
//     current figure meets the target, or if its projection does; at_risk
//     otherwise (also when there is no current figure yet). Before the
//     period begins the latest figure is the baseline: on_track if it meets
//     the target, else at_risk.
//   - Projection, with s the elapsed share of the period (0 < s < 1): an
//     accumulating figure grows in proportion, current ÷ s (retention:
//     100 − (100 − current) ÷ s); a level figure continues its trend from
//     the baseline, baseline + (current − baseline) ÷ s (current itself
//     without a baseline). On track by projection is the same as progress
//     at least the elapsed share for a level figure.
func Judge(g domain.Goal, baseline, current *float64, now time.Time) Judgement {
	var j Judgement
	span := g.To.Sub(g.From)
	elapsed := now.Sub(g.From)
	switch {
	case elapsed <= 0:
		j.ElapsedPct = 0
	case elapsed >= span:
		j.ElapsedPct = 100
	default:
		j.ElapsedPct = 100 * elapsed.Seconds() / span.Seconds()
	}
	meets := func(v *float64) bool { return v != nil && g.Comparator.Meets(*v, g.Target) }
	j.Progress = progress(g, baseline, current)

	switch {
	case !now.Before(g.To):
		j.Status = Missed
		if meets(current) {
			j.Status = Met
		}
		return j
	case !now.After(g.From):
		j.Status = AtRisk
		if meets(baseline) {
			j.Status = OnTrack
		}
		return j
	}
	if current == nil {
		j.Status = AtRisk
		return j
	}
	projected := project(g.Figure, baseline, *current, j.ElapsedPct/100)
	j.Projected = &projected
	j.Status = AtRisk
	if meets(current) || meets(&projected) {
		j.Status = OnTrack
	}
	return j
}

func progress(g domain.Goal, baseline, current *float64) *float64 {
	if current == nil {
		return nil
	}
	v := 0.0
	switch {
	case g.Comparator.Meets(*current, g.Target):
		v = 100
	case baseline == nil:
		return nil
	case g.Comparator.Meets(*baseline, g.Target):
		// The way ran backwards: the baseline met the target, current
		// does not (and moving away from the target is no progress).
	default:
		v = 100 * (*current - *baseline) / (g.Target - *baseline)
		v = math.Max(0, math.Min(100, v))
	}
	return &v
}

// project extrapolates a figure from elapsed share s (0 < s < 1) of the
// period to its end, within the figure's range.
func project(figure string, baseline *float64, current, s float64) float64 {
	var v float64
	switch {
	case figure == "retention_rate":
		v = 100 - (100-current)/s
	case accumulating[figure]:
		v = current / s
	case baseline != nil:
		v = *baseline + (current-*baseline)/s
	default:
		v = current
	}
	if f, ok := domain.LookupGoalFigure(figure); ok {
		v = math.Max(f.Min, math.Min(f.Max, v))
	}
	return v
}
