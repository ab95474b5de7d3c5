package commands

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

// Routing handles the complaint routing rules: one stream
// (domain.RoutingStream) whose every ComplaintRoutingSet is a version,
// with the actor, correlation and causation of the request that set it,
// so that the rules are audited like a customer.
type Routing struct {
	store eventstore.Store
	codec *eventcodec.Codec
	now   func() time.Time
}

// NewRouting returns the routing rules' command handler (now nil: the
// clock).
func NewRouting(store eventstore.Store, codec *eventcodec.Codec, now func() time.Time) *Routing {
	if now == nil {
		now = time.Now
	}
	return &Routing{store: store, codec: codec, now: now}
}

// RoutingRequest sets the rules.
type RoutingRequest struct {
	Command   domain.SetComplaintRouting
	CommandID uuid.UUID
	Actor     string
	// CorrelationID as for Request.
	CorrelationID string
	// ExpectedVersion, when set, makes the change conditional on the
	// current version (HTTP If-Match): *RevisionMismatchError otherwise.
	ExpectedVersion *int
}

// RoutingResult says which version holds after the command.
type RoutingResult struct {
	Version int
	// Revision and Position are those of the version's event (-1 and 0
	// when there is none yet).
	Revision int64
	Position eventstore.Position
	// Appended is false when the rules were those already in force.
	Appended bool
}

// Set decides and appends a new version of the rules. The same rules
// again append nothing; a lost race with another writer is decided
// again, at most five times.
func (h *Routing) Set(ctx context.Context, req RoutingRequest) (RoutingResult, error) {
	if req.CommandID == uuid.Nil {
		return RoutingResult{}, errors.New("commands: routing request without command id")
	}
	for attempt := 0; ; attempt++ {
		st, err := h.load(ctx)
		if err != nil {
			return RoutingResult{}, err
		}
		if req.ExpectedVersion != nil && *req.ExpectedVersion != st.state.Version {
			return RoutingResult{}, &RevisionMismatchError{Expected: uint64(*req.ExpectedVersion), ExpectedAny: []uint64{uint64(*req.ExpectedVersion)}, Current: int64(st.state.Version)}
		}
		now := h.now()
		events, err := domain.DecideRouting(st.state, req.Command, now)
		if err != nil {
			return RoutingResult{}, err
		}
		if len(events) == 0 {
			return RoutingResult{Version: st.state.Version, Revision: st.revision, Position: st.position}, nil
		}
		ids := make([]uuid.UUID, len(events))
		for i := range events {
			ids[i] = eventID(req.CommandID, i)
		}
		data, _, err := h.codec.Encode(ctx, eventcodec.Batch{
			Stream: domain.RoutingStream, FirstRevision: uint64(st.revision + 1), PrevHash: st.lastHash,
			Metadata: eventcodec.Metadata{RecordedAt: now.UTC(), Actor: req.Actor, CorrelationID: req.CorrelationID, CausationID: req.CommandID},
			Events:   events, IDs: ids,
		})
		if err != nil {
			return RoutingResult{}, err
		}
		expected := eventstore.NoStream
		if st.revision >= 0 {
			expected = eventstore.Exact(uint64(st.revision))
		}
		res, err := h.store.Append(ctx, domain.RoutingStream, expected, data)
		var wrong *eventstore.WrongExpectedRevisionError
		if errors.As(err, &wrong) && attempt < 5 && req.ExpectedVersion == nil {
			continue
		}
		if err != nil {
			return RoutingResult{}, fmt.Errorf("commands: append routing rules: %w", err)
		}
		return RoutingResult{Version: st.state.Version + 1, Revision: int64(res.Revision), Position: res.Position, Appended: true}, nil
	}
}

type routingState struct {
	state    domain.Routing
	revision int64
	position eventstore.Position
	lastHash string
}

// load folds the routing stream (a few events: one per version).
func (h *Routing) load(ctx context.Context) (routingState, error) {
	st := routingState{revision: -1}
	for {
		events, err := h.store.ReadStream(ctx, domain.RoutingStream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: uint64(st.revision + 1), Limit: 500})
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("commands: load routing rules: %w", err)
		}
		for _, rec := range events {
			d, err := h.codec.Decode(ctx, rec)
			if err != nil {
				return st, fmt.Errorf("commands: load routing rules: %w", err)
			}
			st.state = domain.EvolveRouting(st.state, d.Event)
			st.revision, st.position, st.lastHash = int64(rec.Revision), rec.Position, d.Metadata.Hash
		}
		if len(events) < 500 {
			return st, nil
		}
	}
}

// HandleOnce runs req unless the customer's stream already holds an event
// caused by it (metadata causation id = req.CommandID) after revision
// after: then it answers that event's place, Replayed, and appends
// nothing. It is how a policy issues a command at most once although it
// may be run again after a crash, when this process's cache of recent
// commands is gone and the customer's revision has moved, so that neither
// the cache nor the store's own check of event ids would see the retry.
// The search reads the stream backwards from its end down to after.
func (h *Customers) HandleOnce(ctx context.Context, req Request, after uint64) (Result, error) {
	if req.CommandID == uuid.Nil {
		return Result{}, errors.New("commands: request without command id")
	}
	stream := domain.StreamName(req.CustomerID)
	from := eventstore.LastRevision
	for {
		events, err := h.cfg.Store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: from, Limit: 200})
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			break
		}
		if err != nil {
			return Result{}, fmt.Errorf("commands: look for an earlier run: %w", err)
		}
		for _, rec := range events {
			if rec.Revision <= after {
				return h.Handle(ctx, req)
			}
			if causedBy(rec, req.CommandID) {
				return Result{CustomerID: req.CustomerID, Revision: rec.Revision, Position: rec.Position, Replayed: true}, nil
			}
		}
		if len(events) < 200 || events[len(events)-1].Revision == 0 {
			break
		}
		from = events[len(events)-1].Revision - 1
	}
	return h.Handle(ctx, req)
}

// causedBy says whether the stored event's metadata names command as its
// causation.
func causedBy(rec eventstore.RecordedEvent, command uuid.UUID) bool {
	var meta struct {
		CausationID uuid.UUID `json:"causation_id"`
	}
	return json.Unmarshal(rec.Metadata, &meta) == nil && meta.CausationID == command
}
