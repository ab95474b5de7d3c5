package app

import (
	"github.com/rapport-crm/rapport/commands"
	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/audit"
	"github.com/rapport-crm/rapport/readmodels/goals"
	"github.com/rapport-crm/rapport/readmodels/staff"
)

// goalProjectors are the projectors of the goal streams and of the team
// spells the staff scorecards read.
func goalProjectors() []projections.Projector {
	return []projections.Projector{goals.NewProjector(), staff.NewProjector()}
}

// openGoals makes the goal command handler, beside the customers' one.
func (m *Main) openGoals() error {
	handler, err := commands.NewGoals(commands.GoalConfig{
		Store:   m.Store,
		Codec:   m.Codec,
		Timeout: m.cfg.CommandTimeout,
		Logger:  m.cfg.Logger,
	})
	m.Goals = handler
	return err
}

// wireGoals adds the goal commands, queries and auditor to the HTTP
// configuration: goals are judged by the same analytics queries the
// analysts read, at the time of each query.
func (m *Main) wireGoals(cfg *rhttp.Config) {
	cfg.GoalCommands = m.Goals
	cfg.Goals = goals.NewQueries(m.Pool, m.analyticsQueries())
	cfg.GoalAuditor = audit.New(m.Store, m.Codec)
	cfg.Staff = staff.NewQueries(m.Pool, m.cfg.ReadModels.SLA)
}
