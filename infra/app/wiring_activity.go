package app

import (
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// activityProjectors are the projectors of contacts, follow-ups,
// complaints, surveys and customer lifecycles.
func activityProjectors() []projections.Projector {
	return []projections.Projector{
		contacts.NewProjector(),
		complaints.NewProjector(),
		surveys.NewProjector(),
		lifecycle.NewProjector(),
	}
}

// analyticsQueries are the analysts' figures, SLA breaches judged by the
// configured targets, answered from the rollups where they hold them.
func (m *Main) analyticsQueries() *analytics.Queries {
	return analytics.NewQueries(m.Pool, m.cfg.ReadModels.SLA).
		WithCadence(m.cfg.ReadModels.Cadence, m.cfg.ReadModels.MaxOutboundPerWeek).
		WithRollups()
}
