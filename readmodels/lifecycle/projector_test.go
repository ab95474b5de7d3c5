package lifecycle_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
)

// TestProjectorFollowsTheDomain projects a generated year of customer
// histories (encoded like the command side's) and compares each customer's
// spells with the domain's fold; then erases a customer (which changes no
// life cycle) and checks that a rebuild from the log gives the same table.
func TestProjectorFollowsTheDomain(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	h := m.Generate(t, 7, 4000)
	check := func(when string) {
		t.Helper()
		compareWithDomain(t, m, h.Events, when)
		m.CheckReconciles(t, when, lifecycle.Name)
	}
	check("projected")
	h.EraseBusiest(t)
	check("after the erasure")
	m.Rebuild(t, lifecycle.Name)
	check("after a rebuild")
}

// compareWithDomain checks each customer's last spell and number of
// spells against the domain's fold of its events.
func compareWithDomain(t *testing.T, m *apptest.Main, history map[uuid.UUID][]domain.Event, when string) {
	t.Helper()
	type lastSpell struct {
		spells    int
		open      bool
		churnedAt *time.Time
	}
	last := map[uuid.UUID]lastSpell{}
	rows, err := m.Pool.Query(t.Context(), `SELECT DISTINCT ON (customer_id) customer_id, spell, active_until IS NULL, churned_at
		FROM readmodels.customer_lifecycle ORDER BY customer_id, spell DESC`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		var spell int32
		var s lastSpell
		if err := rows.Scan(&id, &spell, &s.open, &s.churnedAt); err != nil {
			t.Fatal(err)
		}
		s.spells = int(spell)
		last[id] = s
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	same := func(a time.Time, b *time.Time) bool { return (a.IsZero() && b == nil) || (b != nil && a.Equal(*b)) }
	for id, events := range history {
		c := domain.Fold(events...)
		reactivations := 0
		for _, e := range events {
			if _, ok := e.(domain.CustomerReactivated); ok {
				reactivations++
			}
		}
		got := last[id]
		if got.spells != 1+reactivations || got.open != (c.Status == domain.StatusActive || c.Status == domain.StatusErased && c.ChurnedAt.IsZero()) ||
			!c.ChurnedAt.IsZero() && !same(c.ChurnedAt, got.churnedAt) {
			t.Errorf("%s: customer %s (%s, churned %v): %d spells, open %v, churned %v", when, id, c.Status, c.ChurnedAt, got.spells, got.open, got.churnedAt)
		}
	}
}

// TestActiveCustomerCounts cross-checks "active at an instant" in SQL
// with the domain: for instants across the generated year, the customers
// the life cycles call active are exactly those whose events up to then
// fold to an active (not churned) customer.
func TestActiveCustomerCounts(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	ctx := t.Context()
	h := m.Generate(t, 11, 2000)
	start := time.Now().AddDate(-1, 0, 0)
	for day := 0; day <= 400; day += 23 {
		at := start.AddDate(0, 0, day)
		want := 0
		for _, events := range h.Events {
			// The generator dates every event after the one before, so
			// the state at an instant folds the events up to it.
			var upTo []domain.Event
			for _, e := range events {
				if !e.BusinessTime().After(at) {
					upTo = append(upTo, e)
				}
			}
			if domain.Fold(upTo...).Status == domain.StatusActive {
				want++
			}
		}
		var got int
		if err := m.Pool.QueryRow(ctx, `SELECT count(*) FROM readmodels.customer_lifecycle
			WHERE active_from <= $1 AND (active_until IS NULL OR active_until > $1)`, at).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("active at %s: %d, the domain says %d", at.Format(time.DateOnly), got, want)
		}
	}
}
