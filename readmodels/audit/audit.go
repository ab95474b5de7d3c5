package audit

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

// ErrCustomerNotFound says the customer has no events.
var ErrCustomerNotFound = errors.New("audit: customer not found")

// pageSize is how many events one store read brings: histories of any
// length are streamed in pages, in constant memory.
const pageSize = 500

// Auditor reads customers' histories.
type Auditor struct {
	store eventstore.Store
	codec *eventcodec.Codec
}

// New returns an auditor over the event store.
func New(store eventstore.Store, codec *eventcodec.Codec) *Auditor {
	return &Auditor{store: store, codec: codec}
}

// Event is one stored event as an auditor sees it: where it is, who caused
// it and why, and its payload with personal fields decrypted (null once
// the customer's data was erased).
type Event struct {
	Revision      uint64          `json:"revision"`
	Position      uint64          `json:"position"`
	EventID       uuid.UUID       `json:"event_id"`
	CustomerID    uuid.UUID       `json:"customer_id"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	RecordedAt    time.Time       `json:"recorded_at"`
	OccurredAt    time.Time       `json:"occurred_at"`
	Actor         string          `json:"actor"`
	CorrelationID string          `json:"correlation_id"`
	CausationID   uuid.UUID       `json:"causation_id"`
	Data          json.RawMessage `json:"data"`
	// Erased says the payload's personal fields were erased.
	Erased   bool   `json:"erased"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// Events calls visit with the customer's events from revision from, in
// stream order, until visit returns false or the stream ends.
func (a *Auditor) Events(ctx context.Context, customerID uuid.UUID, from uint64, visit func(Event) (bool, error)) error {
	stream := domain.StreamName(customerID)
	for {
		page, err := a.store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: from, Limit: pageSize})
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return ErrCustomerNotFound
		}
		if err != nil {
			return fmt.Errorf("audit: read events: %w", err)
		}
		for _, rec := range page {
			e, err := a.event(ctx, customerID, rec)
			if err != nil {
				return err
			}
			more, err := visit(e)
			if err != nil || !more {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		from = page[len(page)-1].Revision + 1
	}
}

func (a *Auditor) event(ctx context.Context, customerID uuid.UUID, rec eventstore.RecordedEvent) (Event, error) {
	var meta eventcodec.Metadata
	if err := json.Unmarshal(rec.Metadata, &meta); err != nil {
		return Event{}, fmt.Errorf("audit: metadata of revision %d: %w", rec.Revision, err)
	}
	data, erased, err := a.codec.RevealJSON(ctx, customerID, rec.Data)
	if err != nil {
		return Event{}, fmt.Errorf("audit: payload of revision %d: %w", rec.Revision, err)
	}
	return Event{
		Revision: rec.Revision, Position: uint64(rec.Position), EventID: rec.ID, CustomerID: customerID, Type: rec.Type,
		SchemaVersion: meta.SchemaVersion, RecordedAt: meta.RecordedTime(rec.RecordedAt), OccurredAt: meta.OccurredAt,
		Actor: meta.Actor, CorrelationID: meta.CorrelationID, CausationID: meta.CausationID,
		Data: data, Erased: erased, PrevHash: meta.PrevHash, Hash: meta.Hash,
	}, nil
}

// State is the customer as it was at an instant.
type State struct {
	Customer domain.Customer
	// Revision is the last event folded; Events counts them.
	Revision uint64
	Events   int
	// RecordedAt is when that last event was recorded.
	RecordedAt time.Time
	// Erased says the customer's personal data has been erased since (its
	// key is destroyed): the personal fields of Customer are unreadable,
	// not empty.
	Erased bool
}

// StateAsOf folds the customer's events recorded up to asOf. The recorded
// time is the one inside each event's hashed metadata (set by the service's
// clock, not by clients as business times are, and covered by the chain),
// not the store's column beside it, which a database writer could move
// without breaking anything. It returns ErrCustomerNotFound when no event
// was recorded by then.
func (a *Auditor) StateAsOf(ctx context.Context, customerID uuid.UUID, asOf time.Time) (State, error) {
	stream := domain.StreamName(customerID)
	var st State
	from := uint64(0)
	for {
		page, err := a.store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: from, Limit: pageSize})
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return st, ErrCustomerNotFound
		}
		if err != nil {
			return st, fmt.Errorf("audit: read events: %w", err)
		}
		for _, rec := range page {
			d, err := a.codec.Decode(ctx, rec)
			if err != nil {
				return st, fmt.Errorf("audit: %w", err)
			}
			recordedAt := d.Metadata.RecordedTime(rec.RecordedAt)
			if recordedAt.After(asOf) {
				return st.orNotFound()
			}
			st.Customer = domain.Evolve(st.Customer, d.Event)
			st.Revision, st.RecordedAt = rec.Revision, recordedAt
			st.Erased = st.Erased || d.Erased
			st.Events++
		}
		if len(page) < pageSize {
			return st.orNotFound()
		}
		from = page[len(page)-1].Revision + 1
	}
}

func (s State) orNotFound() (State, error) {
	if s.Events == 0 {
		return s, ErrCustomerNotFound
	}
	return s, nil
}

// Verification reports whether a stream's history is intact.
type Verification struct {
	CustomerID   uuid.UUID `json:"customer_id"`
	Intact       bool      `json:"intact"`
	Events       int       `json:"events"`
	LastRevision *uint64   `json:"last_revision"`
	// LastHash is the hash of the last event: anchoring it elsewhere (a
	// report, a ticket, `rapport audit anchor`) makes truncation of the
	// tail detectable too.
	LastHash string `json:"last_hash,omitempty"`
	// LastPosition is the last event's global log position.
	LastPosition *uint64 `json:"last_position,omitempty"`
	// LegacyEvents counts the events chained under the first, unkeyed
	// rule (written before chains were keyed, before the codec's
	// keyed-since mark; one after it breaks the chain). Their chain is
	// checked, but a database writer could have recomputed it; an anchor
	// taken since the upgrade seals them.
	LegacyEvents int `json:"legacy_events"`
	// BrokenAt is the first event whose hash does not follow.
	BrokenAt *Break `json:"broken_at"`
	// Anchor is the anchored head the stream was checked against, if any.
	Anchor *AnchorCheck `json:"anchor,omitempty"`
}

// Break locates the first broken link of a chain.
type Break struct {
	Revision uint64    `json:"revision"`
	EventID  uuid.UUID `json:"event_id"`
	Reason   string    `json:"reason"`
}

// Verify recomputes the customer's hash chain from the stored events and
// checks the store's columns against it. It needs the chain key (derived
// from the master key) but no data key: the chain covers what is stored,
// so erasure keeps it valid. A chain alone cannot show that events were
// cut from its end: VerifyAnchored checks against an anchor too.
func (a *Auditor) Verify(ctx context.Context, customerID uuid.UUID) (Verification, error) {
	return a.verify(ctx, customerID, nil)
}

func (a *Auditor) verify(ctx context.Context, customerID uuid.UUID, head *StreamHead) (Verification, error) {
	v := Verification{CustomerID: customerID, Intact: true}
	chain := a.codec.NewVerifier()
	var anchored *anchorState
	if head != nil {
		anchored = &anchorState{head: *head}
	}
	stream := domain.StreamName(customerID)
	from := uint64(0)
	for {
		page, err := a.store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: from, Limit: pageSize})
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return v, ErrCustomerNotFound
		}
		if err != nil {
			return v, fmt.Errorf("audit: read events: %w", err)
		}
		for _, rec := range page {
			if done := v.check(chain, anchored, rec); done {
				v.finish(anchored)
				return v, nil
			}
		}
		if len(page) < pageSize {
			v.finish(anchored)
			return v, nil
		}
		from = page[len(page)-1].Revision + 1
	}
}

// check verifies the next event, and against the anchored head if there
// is one; it reports whether the chain is broken.
func (v *Verification) check(chain *eventcodec.Verifier, anchored *anchorState, rec eventstore.RecordedEvent) bool {
	if err := chain.Verify(rec); err != nil {
		var link *eventcodec.LinkError
		reason := err.Error()
		if errors.As(err, &link) {
			reason = link.Reason
		}
		v.Intact = false
		v.BrokenAt = &Break{Revision: rec.Revision, EventID: rec.ID, Reason: reason}
		return true
	}
	rev, pos := rec.Revision, uint64(rec.Position)
	v.Events++
	v.LastRevision, v.LastPosition = &rev, &pos
	v.LastHash = chain.LastHash
	v.LegacyEvents = chain.Legacy
	if anchored != nil {
		return v.checkAnchored(anchored, rec, chain.LastLegacy)
	}
	return false
}

// finish closes a stream's verification: against an anchor, a stream that
// ended before its anchored head was truncated.
func (v *Verification) finish(anchored *anchorState) {
	if anchored != nil {
		v.finishAnchored(anchored)
	}
}

// VerifyAll verifies every customer stream by reading the global log once,
// keeping one small chain state per customer. It calls report for each
// customer, in order of first appearance.
func (a *Auditor) VerifyAll(ctx context.Context, progress func(events int), report func(Verification) error) error {
	return a.verifyLog(ctx, nil, progress, report, nil)
}

// verifyLog is VerifyAll, against anchored heads when heads is not nil
// (then a stream without a head must be keyed throughout); it leaves the
// last event of the log in logHead.
func (a *Auditor) verifyLog(ctx context.Context, heads map[uuid.UUID]StreamHead, progress func(events int), report func(Verification) error, logHead *LogHead) error {
	type streamState struct {
		chain    *eventcodec.Verifier
		anchored *anchorState
		v        Verification
	}
	states := map[string]*streamState{}
	var order []string
	from := eventstore.Start
	seen := 0
	for {
		page, err := a.store.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Forwards, From: from, Limit: pageSize})
		if err != nil {
			return fmt.Errorf("audit: read the log: %w", err)
		}
		for _, rec := range page {
			from = rec.Position
			if logHead != nil {
				*logHead = LogHead{Position: uint64(rec.Position), Stream: rec.Stream, Revision: rec.Revision, EventID: rec.ID}
			}
			id, ok := domain.CustomerIDFromStream(rec.Stream)
			if !ok {
				continue
			}
			st := states[rec.Stream]
			if st == nil {
				st = &streamState{chain: a.codec.NewVerifier(), v: Verification{CustomerID: id, Intact: true}}
				if head, known := heads[id]; known {
					st.anchored = &anchorState{head: head}
				}
				states[rec.Stream] = st
				order = append(order, rec.Stream)
			}
			if st.v.Intact && !st.v.check(st.chain, st.anchored, rec) && heads != nil && st.anchored == nil && st.chain.LastLegacy {
				// A stream the anchor does not know was written after it,
				// so after chains were keyed: an unkeyed event in it was
				// written without the key.
				st.v.Intact = false
				st.v.BrokenAt = &Break{Revision: rec.Revision, EventID: rec.ID, Reason: "it uses the unkeyed chain in a stream the anchor does not know: the stream was written after the anchor, without the key"}
			}
			seen++
		}
		if progress != nil {
			progress(seen)
		}
		if len(page) < pageSize {
			break
		}
	}
	for _, stream := range order {
		st := states[stream]
		st.v.finish(st.anchored)
		if err := report(st.v); err != nil {
			return err
		}
	}
	return nil
}
