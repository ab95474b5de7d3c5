package app

import (
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/rollups"
)

// rollupProjectors are the projectors of the analytics' pre-aggregated
// figures (package rollups): the analytics answer from them
// (analyticsQueries), the documented SQL stays their definition.
func rollupProjectors() []projections.Projector {
	return []projections.Projector{rollups.NewProjector()}
}
