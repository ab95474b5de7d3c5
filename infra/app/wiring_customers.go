package app

import (
	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/risk"
	"github.com/rapport-crm/rapport/readmodels/sla"
)

// customerQueries wires the customer directory's queries (with churn risk)
// into the HTTP server: the score is evaluated at each query with the
// configured weights (RAPPORT_RISK_WEIGHTS) and SLA targets (RAPPORT_SLA).
func (m *Main) customerQueries() rhttp.CustomerQueries {
	weights, targets := riskSettings(m.cfg.ReadModels)
	return customers.NewQueries(m.Pool, customers.WithRisk(weights, targets),
		customers.WithCadence(m.cfg.ReadModels.Cadence, m.cfg.ReadModels.MaxOutboundPerWeek))
}

// riskSettings are the weights and the SLA targets of the churn risk,
// defaults filled in.
func riskSettings(s ReadModelSettings) (risk.Weights, sla.Targets) {
	weights := risk.DefaultWeights()
	if s.RiskWeights != nil {
		weights = *s.RiskWeights
	}
	targets := s.SLA
	if targets == nil {
		targets = sla.Defaults()
	}
	return weights, targets
}
