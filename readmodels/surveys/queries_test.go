package surveys_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// TestQueries: before the projector has created its tables every query is
// readmodel.ErrNotReady; with only the projectors Reads names, every query
// answers, and the list refuses another list's cursor.
func TestQueries(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	run := func(q *surveys.Queries) []error {
		_, e1 := q.Surveys(t.Context(), id, "", 10)
		_, e2 := q.Survey(t.Context(), id, id)
		return []error{e1, e2}
	}
	for i, err := range run(surveys.NewQueries(apptest.ReadModels(t))) {
		if !errors.Is(err, readmodel.ErrNotReady) {
			t.Errorf("query %d before setup: %v, want ErrNotReady", i, err)
		}
	}
	q := surveys.NewQueries(apptest.ReadModels(t, surveys.NewProjector()))
	if reads := q.Reads(); len(reads) != 1 || reads[0] != surveys.Name {
		t.Fatalf("Reads %v", reads)
	}
	for i, err := range run(q) {
		if err != nil && !errors.Is(err, surveys.ErrNotFound) {
			t.Errorf("query %d reading only %v: %v", i, q.Reads(), err)
		}
	}
	if _, err := q.Surveys(t.Context(), id, readmodel.CursorKind("k").Encode(readmodel.Key{ID: id}), 10); !errors.Is(err, readmodel.ErrBadCursor) {
		t.Errorf("a complaint cursor for surveys: %v", err)
	}
}
