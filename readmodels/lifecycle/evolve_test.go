package lifecycle

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
)

// TestEvolve folds life cycles into spells, including back-dated churns
// that would otherwise make spells overlap.
func TestEvolve(t *testing.T) {
	id := uuid.New()
	day := func(d int) time.Time { return time.Date(2026, 1, d, 0, 0, 0, 0, time.UTC) }
	type span struct{ from, until time.Time } // zero until: open
	cases := []struct {
		name   string
		events []domain.Event
		want   []span
	}{
		{"registered", []domain.Event{domain.CustomerRegistered{OccurredAt: day(1)}}, []span{{day(1), time.Time{}}}},
		{"churned", []domain.Event{domain.CustomerRegistered{OccurredAt: day(1)}, domain.CustomerChurned{OccurredAt: day(5)}},
			[]span{{day(1), day(5)}}},
		{"churned and back", []domain.Event{domain.CustomerRegistered{OccurredAt: day(1)}, domain.CustomerChurned{OccurredAt: day(5)},
			domain.CustomerReactivated{OccurredAt: day(9)}}, []span{{day(1), day(5)}, {day(9), time.Time{}}}},
		{"churn back-dated before the registration: an empty spell", []domain.Event{domain.CustomerRegistered{OccurredAt: day(3)},
			domain.CustomerChurned{OccurredAt: day(2)}}, []span{{day(3), day(3)}}},
		{"churn back-dated before the reactivation", []domain.Event{domain.CustomerRegistered{OccurredAt: day(1)},
			domain.CustomerChurned{OccurredAt: day(5)}, domain.CustomerReactivated{OccurredAt: day(9)}, domain.CustomerChurned{OccurredAt: day(7)}},
			[]span{{day(1), day(5)}, {day(9), day(9)}}},
		{"reactivation dated before the churn", []domain.Event{domain.CustomerRegistered{OccurredAt: day(1)},
			domain.CustomerChurned{OccurredAt: day(5)}, domain.CustomerReactivated{OccurredAt: day(4)}},
			[]span{{day(1), day(5)}, {day(5), time.Time{}}}},
		{"events that do not fit change nothing", []domain.Event{domain.CustomerChurned{OccurredAt: day(1)}, domain.CustomerRegistered{OccurredAt: day(2)},
			domain.CustomerRegistered{OccurredAt: day(3)}, domain.CustomerReactivated{OccurredAt: day(4)}, domain.CustomerChurned{OccurredAt: day(6)},
			domain.CustomerChurned{OccurredAt: day(7)}, domain.CustomerDataErased{OccurredAt: day(8)}},
			[]span{{day(2), day(6)}}},
	}
	for _, c := range cases {
		var spells []*Spell
		var cur *Spell
		for _, e := range c.events {
			next, changed := Evolve(cur, id, e)
			if changed && next != cur {
				spells = append(spells, next)
			}
			cur = next
		}
		if len(spells) != len(c.want) {
			t.Errorf("%s: %d spells, want %d", c.name, len(spells), len(c.want))
			continue
		}
		for i, s := range spells {
			w := c.want[i]
			until := time.Time{}
			if s.ActiveUntil != nil {
				until = *s.ActiveUntil
			}
			if s.Number != i+1 || !s.ActiveFrom.Equal(w.from) || !until.Equal(w.until) || (i > 0) != (s.ReactivatedAt != nil) {
				t.Errorf("%s: spell %d = %+v, want [%v, %v)", c.name, i+1, s, w.from, w.until)
			}
		}
	}
}
