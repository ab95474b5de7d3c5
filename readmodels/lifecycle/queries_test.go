package lifecycle_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// TestQueries: before the projector has created its table every query is
// readmodel.ErrNotReady; with only the projectors Reads names, every query
// answers.
func TestQueries(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	run := func(q *lifecycle.Queries) []error {
		_, e1 := q.Known(t.Context(), id)
		_, e2 := q.Spells(t.Context(), id)
		return []error{e1, e2}
	}
	for i, err := range run(lifecycle.NewQueries(apptest.ReadModels(t))) {
		if !errors.Is(err, readmodel.ErrNotReady) {
			t.Errorf("query %d before setup: %v, want ErrNotReady", i, err)
		}
	}
	q := lifecycle.NewQueries(apptest.ReadModels(t, lifecycle.NewProjector()))
	if reads := q.Reads(); len(reads) != 1 || reads[0] != lifecycle.Name {
		t.Fatalf("Reads %v", reads)
	}
	for i, err := range run(q) {
		if err != nil {
			t.Errorf("query %d reading only %v: %v", i, q.Reads(), err)
		}
	}
	if known, err := q.Known(t.Context(), id); known || err != nil {
		t.Errorf("an unknown customer: %v, %v", known, err)
	}
}
