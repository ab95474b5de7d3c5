package domain

import (
	"strings"

	"github.com/google/uuid"
)

// streamPrefix is the stream category of customers. EventStoreDB derives the
// category "customer" from the part before the first dash, so projections can
// subscribe to all customers at once.
const streamPrefix = "customer-"

// StreamName is the name of the event stream that holds one customer's
// history: "customer-<uuid>".
func StreamName(id uuid.UUID) string {
	return streamPrefix + id.String()
}

// CustomerIDFromStream is the inverse of StreamName. It accepts only the exact
// form StreamName produces (lower-case, hyphenated uuid, not the nil uuid), so
// that every customer has exactly one stream name.
func CustomerIDFromStream(stream string) (uuid.UUID, bool) {
	raw, found := strings.CutPrefix(stream, streamPrefix)
	if !found {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(raw)
	if err != nil || id == uuid.Nil || id.String() != raw {
		return uuid.Nil, false
	}
	return id, true
}
