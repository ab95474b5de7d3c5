package risk

import (
	"fmt"
	"strconv"
	"strings"
)

// Factor names, as the API and the SQL function report them.
const (
	FactorDaysSinceContact = "days_since_contact"
	FactorOpenComplaints   = "open_complaints"
	FactorSLABreach        = "sla_breach"
	FactorComplaints90Days = "complaints_last_90_days"
	FactorLowCSAT          = "low_csat"
	FactorLowNPS           = "low_nps"
	FactorCSATDrop         = "csat_drop"
	FactorFollowUpOverdue  = "follow_up_overdue"
)

// Factors lists the factor names in the order a score lists them.
func Factors() []string {
	return []string{FactorDaysSinceContact, FactorOpenComplaints, FactorSLABreach, FactorComplaints90Days,
		FactorLowCSAT, FactorLowNPS, FactorCSATDrop, FactorFollowUpOverdue}
}

// Levels.
const (
	LevelLow    = "low"
	LevelMedium = "medium"
	LevelHigh   = "high"
)

// Level thresholds: low < MediumFrom ≤ medium < HighFrom ≤ high.
const (
	MediumFrom = 30
	HighFrom   = 60
	// MaxScore caps a score.
	MaxScore = 100
)

// ValidLevel reports whether l is a level.
func ValidLevel(l string) bool { return l == LevelLow || l == LevelMedium || l == LevelHigh }

// Risk is a customer's churn risk: the score, its level and the factors
// that made it.
type Risk struct {
	Score   int      `json:"score"`
	Level   string   `json:"level"`
	Factors []Factor `json:"factors"`
}

// Factor is one contribution to a score.
type Factor struct {
	Factor string `json:"factor"`
	Points int    `json:"points"`
}

// Weights are the points of each factor (RAPPORT_RISK_WEIGHTS). Each is a
// whole number from 0 to 100; a factor weighted 0 never shows.
type Weights struct {
	Contact30d        int // days_since_contact, more than 30 days
	Contact60d        int // days_since_contact, more than 60 days
	Contact90d        int // days_since_contact, more than 90 days
	OpenComplaint     int // open_complaints, per open complaint
	OpenComplaintsMax int // open_complaints, at most
	SLABreach         int // sla_breach
	Complaints90d     int // complaints_last_90_days
	CSATLow           int // low_csat, last CSAT ≤ 2
	CSATNeutral       int // low_csat, last CSAT = 3
	NPSDetractor      int // low_nps, last NPS ≤ 6
	NPSPassive        int // low_nps, last NPS 7–8
	CSATDrop          int // csat_drop
	FollowUpOverdue   int // follow_up_overdue
	// PurchaseLapsed is purchase_lapsed (purchases.go): 0, off, by default.
	PurchaseLapsed int
}

// weight names a field of Weights: its key in RAPPORT_RISK_WEIGHTS and
// its position in the SQL function's weights array (the order here).
type weight struct {
	key   string
	field func(*Weights) *int
	def   int
}

// weightTable is the one list of weights: the parser, String, Array, the
// SQL function's default and readmodels.customer_risk_weights follow it.
var weightTable = []weight{
	{"contact_30d", func(w *Weights) *int { return &w.Contact30d }, 10},
	{"contact_60d", func(w *Weights) *int { return &w.Contact60d }, 20},
	{"contact_90d", func(w *Weights) *int { return &w.Contact90d }, 30},
	{"open_complaint", func(w *Weights) *int { return &w.OpenComplaint }, 15},
	{"open_complaints_max", func(w *Weights) *int { return &w.OpenComplaintsMax }, 30},
	{"sla_breach", func(w *Weights) *int { return &w.SLABreach }, 15},
	{"complaints_90d", func(w *Weights) *int { return &w.Complaints90d }, 10},
	{"csat_low", func(w *Weights) *int { return &w.CSATLow }, 20},
	{"csat_neutral", func(w *Weights) *int { return &w.CSATNeutral }, 5},
	{"nps_detractor", func(w *Weights) *int { return &w.NPSDetractor }, 20},
	{"nps_passive", func(w *Weights) *int { return &w.NPSPassive }, 5},
	{"csat_drop", func(w *Weights) *int { return &w.CSATDrop }, 10},
	{"follow_up_overdue", func(w *Weights) *int { return &w.FollowUpOverdue }, 10},
	{"purchase_lapsed", func(w *Weights) *int { return &w.PurchaseLapsed }, 0},
}

// MaxWeight bounds each weight.
const MaxWeight = 100

// DefaultWeights are PRODUCT.md's weights.
func DefaultWeights() Weights {
	var w Weights
	for _, x := range weightTable {
		*x.field(&w) = x.def
	}
	return w
}

// WeightKeys lists the keys ParseWeights takes, in order.
func WeightKeys() []string {
	keys := make([]string, len(weightTable))
	for i, x := range weightTable {
		keys[i] = x.key
	}
	return keys
}

// ParseWeights reads weights written as "contact_90d=30,open_complaint=15,…"
// over the defaults: weights not named keep their default. Blank input is
// the defaults. Each key may appear once; each value is a whole number
// from 0 to 100.
func ParseWeights(s string) (Weights, error) {
	w := DefaultWeights()
	if strings.TrimSpace(s) == "" {
		return w, nil
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return Weights{}, fmt.Errorf("risk weights: %q: want key=points, e.g. contact_90d=30", part)
		}
		var target *int
		for _, x := range weightTable {
			if x.key == key {
				target = x.field(&w)
			}
		}
		if target == nil {
			return Weights{}, fmt.Errorf("risk weights: unknown weight %q (known: %s)", key, strings.Join(WeightKeys(), ", "))
		}
		if seen[key] {
			return Weights{}, fmt.Errorf("risk weights: %q is given twice", key)
		}
		seen[key] = true
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > MaxWeight {
			return Weights{}, fmt.Errorf("risk weights: %s=%q: want a whole number from 0 to %d", key, value, MaxWeight)
		}
		*target = n
	}
	return w, nil
}

// Validate reports a weight out of range.
func (w Weights) Validate() error {
	for _, x := range weightTable {
		if v := *x.field(&w); v < 0 || v > MaxWeight {
			return fmt.Errorf("risk weights: %s=%d: want a whole number from 0 to %d", x.key, v, MaxWeight)
		}
	}
	return nil
}

// String writes the weights in the form ParseWeights reads.
func (w Weights) String() string {
	parts := make([]string, len(weightTable))
	for i, x := range weightTable {
		parts[i] = x.key + "=" + strconv.Itoa(*x.field(&w))
	}
	return strings.Join(parts, ",")
}

// Array returns the weights in the order of the SQL function's weights
// argument (WeightKeys' order).
func (w Weights) Array() []int32 {
	out := make([]int32, len(weightTable))
	for i, x := range weightTable {
		out[i] = int32(*x.field(&w))
	}
	return out
}
