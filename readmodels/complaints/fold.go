package complaints

import (
	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
)

// ComplaintOf is the complaint an event is about; ok is false for an
// event about no complaint. The complaints read model and the analytics'
// rollups pick their events with it, so they cannot disagree on which
// events a complaint has.
func ComplaintOf(e domain.Event) (id uuid.UUID, ok bool) {
	switch e := e.(type) {
	case domain.ComplaintFiled:
		return e.ComplaintID, true
	case domain.ComplaintAssigned:
		return e.ComplaintID, true
	case domain.ComplaintAcknowledged:
		return e.ComplaintID, true
	case domain.ComplaintEscalated:
		return e.ComplaintID, true
	case domain.ComplaintResolved:
		return e.ComplaintID, true
	case domain.ComplaintReopened:
		return e.ComplaintID, true
	}
	return uuid.Nil, false
}

// Fold is a complaint event folded over the complaint's state c (nil
// before its filing) by the domain's own Evolve: a filing starts the
// complaint, every later event evolves it alone. ok is false when the
// event changes nothing: a second filing of a complaint, or an event about
// a complaint never filed (Decide refuses both, so only a log written by
// other means has them). The complaints read model and the rollups fold
// with it: one fold, so their complaints are the same.
func Fold(c *domain.Complaint, e domain.Event) (next domain.Complaint, ok bool) {
	if _, filing := e.(domain.ComplaintFiled); filing {
		if c != nil {
			return domain.Complaint{}, false
		}
		return domain.Evolve(domain.Customer{}, e).Complaints[0], true
	}
	if c == nil {
		return domain.Complaint{}, false
	}
	return domain.Evolve(domain.Customer{Complaints: []domain.Complaint{*c}}, e).Complaints[0], true
}
