package app

import (
	rhttp "github.com/rapport-crm/rapport/infra/http"
)

// customerQueries wires the customer directory's queries (with churn risk)
// into the HTTP server.
func (m *Main) customerQueries() rhttp.CustomerQueries { return nil }
