package app

import (
	"github.com/rapport-crm/rapport/readmodels/work"
)

// workQueries wires the work queues: SLA breaches judged by the configured
// targets, churn risk with the configured weights, contact due by the
// configured cadence, all at the time of each query.
func (m *Main) workQueries() *work.Queries {
	weights, targets := riskSettings(m.cfg.ReadModels)
	return work.NewQueries(m.Pool, work.WithSLA(targets), work.WithRiskWeights(weights), work.WithCadence(m.cfg.ReadModels.Cadence))
}
