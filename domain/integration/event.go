package integration

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
)

// Event is one integration event as it leaves the service: the envelope
// every consumer sees (feed, webhooks, brokers) and the type's data.
//
// ID is the domain event's id, so a redelivery or a replay carries the same
// id and a consumer can recognise what it already handled. Position is the
// event's place in the global log: the feed's cursor, the SSE id and the
// position a webhook replay starts after.
//
// A reminder (types "reminder.*", reminder.go) is no event of the
// customer's stream: CustomerID is the customer it is about and Revision
// the revision of the customer's stream it was judged on (the state it
// reflects), so it may equal another event's; its ID and Position are its
// own.
type Event struct {
	ID         uuid.UUID       `json:"id"`
	Type       string          `json:"type"`
	CustomerID uuid.UUID       `json:"customer_id"`
	Revision   uint64          `json:"revision"`
	Position   uint64          `json:"position"`
	OccurredAt time.Time       `json:"occurred_at"`
	RecordedAt time.Time       `json:"recorded_at"`
	Data       json.RawMessage `json:"data"`
}

// Source is a stored domain event with what the envelope needs from the
// log; the feed's projector fills it from a decoded event.
type Source struct {
	EventID    uuid.UUID
	CustomerID uuid.UUID
	Revision   uint64
	Position   uint64
	RecordedAt time.Time
	Event      domain.Event
}
