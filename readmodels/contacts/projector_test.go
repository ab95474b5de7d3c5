package contacts_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/contacts"
)

// TestProjectorFollowsTheDomain projects a generated year of customer
// histories (encoded like the command side's) and compares every contact
// and follow-up row with the customers folded by the domain; then erases a
// customer, checks that its personal columns are NULL and the rest
// unchanged, and that a rebuild from the log gives the same tables without
// resurrecting personal data.
func TestProjectorFollowsTheDomain(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	h := m.Generate(t, 7, 4000)
	check := func(when string, erased uuid.UUID) {
		t.Helper()
		compareWithDomain(t, m, h.Events, erased, when)
		m.CheckReconciles(t, when, contacts.Name)
	}
	check("projected", uuid.Nil)
	victim := h.EraseBusiest(t)
	check("after the erasure", victim)
	m.Rebuild(t, contacts.Name)
	check("after a rebuild", victim)
}

// compareWithDomain checks the contacts and follow-ups against the
// domain's fold of each customer's events.
func compareWithDomain(t *testing.T, m *apptest.Main, history map[uuid.UUID][]domain.Event, erased uuid.UUID, when string) {
	t.Helper()
	ctx := t.Context()
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf(when+": "+format, args...)
	}
	type key struct{ customer, id uuid.UUID }
	type followUpRow struct {
		due, scheduled time.Time
		done           *time.Time
		note           *string
	}
	followUps := map[key]followUpRow{}
	rows, err := m.Pool.Query(ctx, `SELECT customer_id, follow_up_id, due_at, scheduled_at, done_at, note FROM readmodels.follow_ups`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k key
		var r followUpRow
		if err := rows.Scan(&k.customer, &k.id, &r.due, &r.scheduled, &r.done, &r.note); err != nil {
			t.Fatal(err)
		}
		followUps[k] = r
	}
	type perCustomer struct {
		contacts, summaries int
		lastContact         *time.Time
	}
	counts := map[uuid.UUID]*perCustomer{}
	rows, err = m.Pool.Query(ctx, `SELECT customer_id, count(*), count(summary), max(occurred_at) FROM readmodels.contacts GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		var n, summaries int64
		var lastContact *time.Time
		if err := rows.Scan(&id, &n, &summaries, &lastContact); err != nil {
			t.Fatal(err)
		}
		counts[id] = &perCustomer{contacts: int(n), summaries: int(summaries), lastContact: lastContact}
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}

	same := func(a time.Time, b *time.Time) bool { return (a.IsZero() && b == nil) || (b != nil && a.Equal(*b)) }
	seenFollowUps := 0
	for id, events := range history {
		c := domain.Fold(events...)
		isErased := id == erased
		var contactsLogged int
		var lastContact time.Time
		for _, e := range events {
			if e, ok := e.(domain.ContactLogged); ok {
				contactsLogged++
				if e.OccurredAt.After(lastContact) {
					lastContact = e.OccurredAt
				}
			}
		}
		got := counts[id]
		if got == nil {
			got = &perCustomer{}
		}
		if got.contacts != contactsLogged || !same(lastContact, got.lastContact) {
			errorf("customer %s: %d contacts (last %v); the domain says %d (last %v)", id, got.contacts, got.lastContact, contactsLogged, lastContact)
		}
		if isErased && got.summaries != 0 || !isErased && got.summaries != got.contacts {
			errorf("customer %s (erased %v): %d summaries of %d contacts", id, isErased, got.summaries, got.contacts)
		}
		for _, f := range c.FollowUps {
			seenFollowUps++
			r, ok := followUps[key{id, f.ID}]
			if !ok {
				errorf("follow-up %s missing", f.ID)
				continue
			}
			if !r.due.Equal(f.DueAt) || !r.scheduled.Equal(f.ScheduledAt) || f.Done != (r.done != nil) || f.Done && !r.done.Equal(f.DoneAt) ||
				(r.note != nil) != (f.Note != "" && !isErased) {
				errorf("follow-up %s: read model %+v, domain %+v", f.ID, r, f)
			}
		}
	}
	if seenFollowUps != len(followUps) || seenFollowUps == 0 {
		errorf("%d follow-ups in the read model, %d in the log", len(followUps), seenFollowUps)
	}
}
