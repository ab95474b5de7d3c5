package surveys_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// TestProjectorFollowsTheDomain projects a generated year of customer
// histories (encoded like the command side's) and compares each
// customer's surveys with the domain's events; then erases a customer,
// checks that its comments are NULL, and that a rebuild from the log gives
// the same table without resurrecting them.
func TestProjectorFollowsTheDomain(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	h := m.Generate(t, 7, 4000)
	check := func(when string, erased uuid.UUID) {
		t.Helper()
		compareWithDomain(t, m, h.Events, erased, when)
		m.CheckReconciles(t, when, surveys.Name)
	}
	check("projected", uuid.Nil)
	victim := h.EraseBusiest(t)
	check("after the erasure", victim)
	m.Rebuild(t, surveys.Name)
	check("after a rebuild", victim)
}

// compareWithDomain checks the surveys against each customer's events.
func compareWithDomain(t *testing.T, m *apptest.Main, history map[uuid.UUID][]domain.Event, erased uuid.UUID, when string) {
	t.Helper()
	type perCustomer struct{ surveys, comments int }
	counts := map[uuid.UUID]perCustomer{}
	rows, err := m.Pool.Query(t.Context(), `SELECT customer_id, count(*), count(comment) FROM readmodels.surveys GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		var n, comments int64
		if err := rows.Scan(&id, &n, &comments); err != nil {
			t.Fatal(err)
		}
		counts[id] = perCustomer{surveys: int(n), comments: int(comments)}
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	for id, events := range history {
		isErased := id == erased
		answered := 0
		for _, e := range events {
			if _, ok := e.(domain.SurveyRecorded); ok {
				answered++
			}
		}
		got := counts[id]
		if got.surveys != answered {
			t.Errorf("%s: customer %s: %d surveys; the domain says %d", when, id, got.surveys, answered)
		}
		if isErased && got.comments != 0 || !isErased && got.comments != got.surveys {
			t.Errorf("%s: customer %s (erased %v): %d comments of %d surveys", when, id, isErased, got.comments, got.surveys)
		}
	}
}
