package goals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// Auditor answers a goal's history from the event log itself, as the
// customers' auditor does: the authoritative events with their metadata,
// and whether the stream's hash chain holds.
type Auditor struct {
	store eventstore.Store
	codec *eventcodec.Codec
}

// NewAuditor returns the goals' auditor over the event store.
func NewAuditor(store eventstore.Store, codec *eventcodec.Codec) *Auditor {
	return &Auditor{store: store, codec: codec}
}

// Event is one stored goal event as an auditor sees it.
type Event struct {
	Revision      uint64          `json:"revision"`
	Position      uint64          `json:"position"`
	EventID       uuid.UUID       `json:"event_id"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	RecordedAt    time.Time       `json:"recorded_at"`
	OccurredAt    time.Time       `json:"occurred_at"`
	Actor         string          `json:"actor"`
	CorrelationID string          `json:"correlation_id"`
	CausationID   uuid.UUID       `json:"causation_id"`
	Data          json.RawMessage `json:"data"`
	PrevHash      string          `json:"prev_hash"`
	Hash          string          `json:"hash"`
}

// History is a goal's whole stream and the verdict on its chain.
type History struct {
	GoalID uuid.UUID
	Events []Event
	// Intact says every event chains to the one before it; BrokenAt says
	// where it does not.
	Intact   bool
	BrokenAt *eventcodec.LinkError
}

// ErrGoalNotFound says the goal has no stream.
var ErrGoalNotFound = errors.New("goals: goal not found")

// History reads the goal's stream (goals have a handful of events) and
// verifies its chain.
func (a *Auditor) History(ctx context.Context, id uuid.UUID) (History, error) {
	h := History{GoalID: id, Intact: true}
	verifier := a.codec.NewVerifier()
	const page = 500
	from := uint64(0)
	for {
		recs, err := a.store.ReadStream(ctx, domain.GoalStreamName(id), eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: from, Limit: page})
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return h, ErrGoalNotFound
		}
		if err != nil {
			return h, fmt.Errorf("goals: read history: %w", err)
		}
		for _, rec := range recs {
			var meta eventcodec.Metadata
			if err := json.Unmarshal(rec.Metadata, &meta); err != nil {
				return h, fmt.Errorf("goals: metadata of revision %d: %w", rec.Revision, err)
			}
			if h.Intact {
				var link *eventcodec.LinkError
				if err := verifier.Verify(rec); errors.As(err, &link) {
					h.Intact, h.BrokenAt = false, link
				} else if err != nil {
					return h, err
				}
			}
			data := rec.Data
			if !json.Valid(data) {
				data, _ = json.Marshal(string(rec.Data))
			}
			h.Events = append(h.Events, Event{
				Revision: rec.Revision, Position: uint64(rec.Position), EventID: rec.ID, Type: rec.Type,
				SchemaVersion: meta.SchemaVersion, RecordedAt: meta.RecordedTime(rec.RecordedAt), OccurredAt: meta.OccurredAt,
				Actor: meta.Actor, CorrelationID: meta.CorrelationID, CausationID: meta.CausationID,
				Data: data, PrevHash: meta.PrevHash, Hash: meta.Hash,
			})
			from = rec.Revision + 1
		}
		if len(recs) < page {
			return h, nil
		}
	}
}
