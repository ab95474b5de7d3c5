package app

import (
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/feed"
)

// feedProjectors is the change feed's projector: the integration events
// that GET /v1/feed, the webhooks and the brokers deliver.
func feedProjectors() []projections.Projector {
	return []projections.Projector{feed.NewProjector()}
}

// feedQueries reads the change feed.
func (m *Main) feedQueries() *feed.Queries { return feed.NewQueries(m.Pool) }
