package customers_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// TestQueriesReadiness: before the projector has created its table (and
// the churn-risk functions) Get and List are readmodel.ErrNotReady; with
// only the projectors Reads names, both answer, every filter included.
func TestQueriesReadiness(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	run := func(q *customers.Queries) []error {
		_, e1 := q.Get(t.Context(), id)
		_, e2 := q.List(t.Context(), customers.Filter{}, 10, "")
		_, e3 := q.List(t.Context(), customers.Filter{Segment: "s", Tier: "A", Region: "r", Owner: "o", Status: "active", Q: "q", Risk: "high", NoContactDays: 3},
			10, customers.Cursor.Encode(readmodel.Key{ID: id}))
		return []error{e1, e2, e3}
	}
	for i, err := range run(customers.NewQueries(apptest.ReadModels(t))) {
		if !errors.Is(err, readmodel.ErrNotReady) {
			t.Errorf("query %d before setup: %v, want ErrNotReady", i, err)
		}
	}
	p, err := customers.NewProjector(customers.Config{})
	if err != nil {
		t.Fatal(err)
	}
	q := customers.NewQueries(apptest.ReadModels(t, p))
	if reads := q.Reads(); len(reads) != 1 || reads[0] != customers.Name {
		t.Fatalf("Reads %v", reads)
	}
	for i, err := range run(q) {
		if err != nil && !errors.Is(err, customers.ErrNotFound) {
			t.Errorf("query %d reading only %v: %v", i, q.Reads(), err)
		}
	}
	if _, err := q.List(t.Context(), customers.Filter{}, 10, readmodel.CursorKind("c").Encode(readmodel.Key{ID: id})); !errors.Is(err, customers.ErrBadCursor) {
		t.Errorf("a contact list's cursor: %v", err)
	}
}
