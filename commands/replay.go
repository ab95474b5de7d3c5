package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// firstResult answers a command that the domain recognised as already
// recorded (domain.AlreadyRecordedError: its created id is in the state)
// with the result it had the first time: the revision and position of its
// last event, found by reading the stream backwards for the command's
// causation id. This is the backstop behind the recent-commands cache and
// the transport's durable idempotency keys: however late the retry, it
// appends nothing and answers as the first run did.
func (h *Customers) firstResult(ctx context.Context, entry *cacheEntry, created uuid.UUID, req Request) (Result, error) {
	const page = 500
	stream := domain.StreamName(entry.customerID)
	from := uint64(max(entry.revision, 0))
	for {
		events, err := h.cfg.Store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: from, Limit: page})
		if err != nil {
			return Result{}, fmt.Errorf("commands: find the first run of a retried command: %w", err)
		}
		for _, rec := range events {
			var meta eventcodec.Metadata
			if err := json.Unmarshal(rec.Metadata, &meta); err != nil {
				return Result{}, fmt.Errorf("commands: find the first run of a retried command: metadata of %s@%d: %w", stream, rec.Revision, err)
			}
			if meta.CausationID != req.CommandID {
				continue
			}
			if req.RequestHash != "" && meta.RequestHash != "" && meta.RequestHash != req.RequestHash {
				return Result{}, ErrIdempotencyKeyReused
			}
			return Result{CustomerID: entry.customerID, Revision: rec.Revision, Position: rec.Position, CreatedID: created, Replayed: true}, nil
		}
		if len(events) < page || events[len(events)-1].Revision == 0 {
			break
		}
		from = events[len(events)-1].Revision - 1
	}
	// The id is recorded but not by this command id: only a caller that
	// chose the created id itself could get here. Appending it again would
	// duplicate it; refuse.
	return Result{}, errors.New("commands: the id this command creates is already recorded by another command")
}
