package history_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/history"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// TestQueries: before the projector has created its table the history is
// readmodel.ErrNotReady; with only the projectors Reads names, it answers
// an empty page; a cursor is a revision.
func TestQueries(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	if _, err := history.NewQueries(apptest.ReadModels(t)).History(t.Context(), id, history.Filter{}, "", 10); !errors.Is(err, readmodel.ErrNotReady) {
		t.Errorf("before setup: %v, want ErrNotReady", err)
	}
	q := history.NewQueries(apptest.ReadModels(t, history.NewProjector()))
	if reads := q.Reads(); len(reads) != 1 || reads[0] != history.Name {
		t.Fatalf("Reads %v", reads)
	}
	page, err := q.History(t.Context(), id, history.Filter{Types: []string{"rapport.ContactLogged.v1"}}, "7", 10)
	if err != nil || len(page.Items) != 0 || page.NextCursor != "" {
		t.Errorf("reading only %v: %+v, %v", q.Reads(), page, err)
	}
	for _, c := range []string{"x", "-1", "1.5", "9223372036854775808"} {
		if _, err := q.History(t.Context(), id, history.Filter{}, c, 10); !errors.Is(err, readmodel.ErrBadCursor) || history.ValidCursor(c) {
			t.Errorf("cursor %q: %v", c, err)
		}
	}
}
