package contacts_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// TestQueries: before the projector has created its tables every query is
// readmodel.ErrNotReady; with only the projectors Reads names, every query
// answers, and lists refuse another list's cursor.
func TestQueries(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	run := func(q *contacts.Queries) []error {
		_, e1 := q.Contacts(t.Context(), id, "", 10)
		_, e2 := q.Contact(t.Context(), id, id)
		_, e3 := q.FollowUps(t.Context(), id, "", 10)
		_, e4 := q.FollowUp(t.Context(), id, id)
		return []error{e1, e2, e3, e4}
	}
	for i, err := range run(contacts.NewQueries(apptest.ReadModels(t))) {
		if !errors.Is(err, readmodel.ErrNotReady) {
			t.Errorf("query %d before setup: %v, want ErrNotReady", i, err)
		}
	}
	q := contacts.NewQueries(apptest.ReadModels(t, contacts.NewProjector()))
	if reads := q.Reads(); len(reads) != 1 || reads[0] != contacts.Name {
		t.Fatalf("Reads %v", reads)
	}
	for i, err := range run(q) {
		if err != nil && !errors.Is(err, contacts.ErrNotFound) {
			t.Errorf("query %d reading only %v: %v", i, q.Reads(), err)
		}
	}
	other := contacts.FollowUpsCursor.Encode(readmodel.Key{ID: id})
	if _, err := q.Contacts(t.Context(), id, other, 10); !errors.Is(err, readmodel.ErrBadCursor) {
		t.Errorf("a follow-up cursor for contacts: %v", err)
	}
	if _, err := q.FollowUps(t.Context(), id, contacts.ContactsCursor.Encode(readmodel.Key{ID: id}), 10); !errors.Is(err, readmodel.ErrBadCursor) {
		t.Errorf("a contact cursor for follow-ups: %v", err)
	}
}
