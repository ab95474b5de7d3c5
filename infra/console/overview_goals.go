package console

import (
	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/goals"
)

// overviewGoals is how many open goals the overview asks for: the first
// page of GET /v1/goals (each goal costs up to two analytics reports).
const overviewGoals = 20

// goalRow is one goal as the overview shows it: the API's answer for it
// (GET /v1/goals), its figure's kind for formatting.
type goalRow struct {
	ID                  uuid.UUID
	Name, Figure, Label string
	Kind                string
	Comparator          string
	Target              *float64
	Scope, ScopeValue   string
	Baseline, Current   *float64
	Progress, Projected *float64
	Status              string
	ElapsedPct          *float64
	Period              goals.Window
}

// goalRows are the goals the overview shows: every open goal, or with a
// group chosen the goals scoped to that group (a goal's scope is one
// analytics group, PRODUCT.md "Goals").
func goalRows(items []goals.Goal, groupBy analytics.GroupBy, key string) []goalRow {
	var out []goalRow
	for _, g := range items {
		attr, val := g.Scope.Attribute()
		if key != "" && groupBy != analytics.All && (attr != string(groupBy) || val != key) {
			continue
		}
		row := goalRow{ID: g.ID, Name: g.Name, Figure: g.Figure, Label: g.Figure, Kind: "score",
			Comparator: string(g.Comparator), Target: ptrTo(g.Target), Scope: attr, ScopeValue: val,
			Baseline: g.Baseline, Current: g.Current, Progress: g.Progress, Projected: g.Projected,
			Status: string(g.Status), ElapsedPct: ptrTo(g.ElapsedPct), Period: goals.Window{From: g.From, To: g.To}}
		for _, k := range overviewKPIs {
			if k.Name == g.Figure {
				row.Label, row.Kind = k.Label, k.Kind
			}
		}
		out = append(out, row)
	}
	return out
}

func ptrTo(v float64) *float64 { return &v }
