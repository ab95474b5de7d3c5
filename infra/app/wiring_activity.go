package app

import (
	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/projections"
)

// activityProjectors are the projectors of contacts, follow-ups,
// complaints, surveys and customer lifecycles.
func activityProjectors(ReadModelSettings) ([]projections.Projector, error) { return nil, nil }

// activityQueries wires their queries into the HTTP server.
func (m *Main) activityQueries() rhttp.ActivityQueries { return nil }

// analyticsQueries wires the analysts' figures into the HTTP server.
func (m *Main) analyticsQueries() rhttp.AnalyticsQueries { return nil }
