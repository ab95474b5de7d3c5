package app

import (
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/value"
)

// valueProjectors are the projectors of purchases and loyalty points.
func valueProjectors() []projections.Projector {
	return []projections.Projector{value.NewProjector()}
}

// valueQueries answer customers' value, loyalty and the value figures.
func (m *Main) valueQueries() *value.Queries { return value.NewQueries(m.Pool) }
