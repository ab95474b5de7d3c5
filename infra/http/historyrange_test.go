package http_test

import (
	"net/http"
	"testing"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestHistoryFromAfterToIs422 answers like analytics: 422 naming from.
func TestHistoryFromAfterToIs422(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	id := register(t, m, "history-range@example.com")
	resp := m.Get(t, "auditor", "/v1/customers/"+id+"/history?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z")
	requireProblem(t, resp, http.StatusUnprocessableEntity, "invalid_fields", "from")
}
