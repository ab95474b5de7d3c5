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

// ErrStreamNotFound says an audited stream (a goal's, the routing rules')
// has no events.
var ErrStreamNotFound = errors.New("audit: stream not found")

// ErrNotAudited says a stream is not one of the audited kinds.
var ErrNotAudited = errors.New("audit: not an audited stream")

// Audited says whether stream is one the auditor verifies and anchors:
// a customer's, a goal's or the complaint routing rules'. They are the
// service's aggregates, written through the command layer with the same
// metadata and hash chain, so a database writer must not be able to edit
// any of them unseen.
func Audited(stream string) bool {
	if _, ok := domain.CustomerIDFromStream(stream); ok {
		return true
	}
	if _, ok := domain.GoalIDFromStream(stream); ok {
		return true
	}
	return stream == domain.RoutingStream
}

// customerOf is the customer id of a customer stream, uuid.Nil for the
// other audited streams (which hold no personal data).
func customerOf(stream string) uuid.UUID {
	id, _ := domain.CustomerIDFromStream(stream)
	return id
}

// notFound maps a missing stream to the error its callers know: a
// customer stream's is ErrCustomerNotFound.
func notFound(stream string) error {
	if customerOf(stream) != uuid.Nil {
		return ErrCustomerNotFound
	}
	return ErrStreamNotFound
}

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
	Revision uint64    `json:"revision"`
	Position uint64    `json:"position"`
	EventID  uuid.UUID `json:"event_id"`
	// Stream is the event's stream; CustomerID is set in a customer's.
	Stream        string          `json:"stream"`
	CustomerID    uuid.UUID       `json:"customer_id,omitzero"`
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
	return a.StreamEvents(ctx, domain.StreamName(customerID), from, visit)
}

// StreamEvents is Events for any audited stream (Audited): a goal's or
// the routing rules' as well as a customer's. A missing customer stream
// is ErrCustomerNotFound, another missing stream ErrStreamNotFound.
func (a *Auditor) StreamEvents(ctx context.Context, stream string, from uint64, visit func(Event) (bool, error)) error {
	if !Audited(stream) {
		return fmt.Errorf("%w: %q", ErrNotAudited, stream)
	}
	for {
		page, err := a.store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: from, Limit: pageSize})
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return notFound(stream)
		}
		if err != nil {
			return fmt.Errorf("audit: read events: %w", err)
		}
		for _, rec := range page {
			e, err := a.event(ctx, rec)
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

// event renders a stored event. Only customer streams hold encrypted
// personal fields; a payload that is not JSON (a database writer's edit)
// is shown as a JSON string rather than failing the whole answer.
func (a *Auditor) event(ctx context.Context, rec eventstore.RecordedEvent) (Event, error) {
	var meta eventcodec.Metadata
	if err := json.Unmarshal(rec.Metadata, &meta); err != nil {
		return Event{}, fmt.Errorf("audit: metadata of revision %d: %w", rec.Revision, err)
	}
	customerID := customerOf(rec.Stream)
	data, erased := json.RawMessage(rec.Data), false
	if customerID != uuid.Nil {
		var err error
		if data, erased, err = a.codec.RevealJSON(ctx, customerID, rec.Data); err != nil {
			return Event{}, fmt.Errorf("audit: payload of revision %d: %w", rec.Revision, err)
		}
	}
	if !json.Valid(data) {
		data, _ = json.Marshal(string(data))
	}
	return Event{
		Revision: rec.Revision, Position: uint64(rec.Position), EventID: rec.ID, Stream: rec.Stream, CustomerID: customerID, Type: rec.Type,
		SchemaVersion: meta.SchemaVersion, RecordedAt: meta.RecordedTime(rec.RecordedAt), OccurredAt: meta.OccurredAt,
		Actor: meta.Actor, CorrelationID: meta.CorrelationID, CausationID: meta.CausationID,
		Data: data, Erased: erased, PrevHash: meta.PrevHash, Hash: meta.Hash,
	}, nil
}

// History is a whole audited stream and the verdict on its chain, read in
// one pass: what a goal's history answers (goals have a handful of
// events; a customer's history is paged with Events instead).
type History struct {
	Events       []Event
	Verification Verification
}

// History reads the stream whole and verifies its chain as it goes.
func (a *Auditor) History(ctx context.Context, stream string) (History, error) {
	h := History{Verification: newVerification(stream)}
	if !Audited(stream) {
		return h, fmt.Errorf("%w: %q", ErrNotAudited, stream)
	}
	chain := a.codec.NewVerifier()
	from := uint64(0)
	for {
		page, err := a.store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: from, Limit: pageSize})
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return h, notFound(stream)
		}
		if err != nil {
			return h, fmt.Errorf("audit: read events: %w", err)
		}
		for _, rec := range page {
			if h.Verification.Intact {
				h.Verification.check(chain, nil, rec)
			}
			e, err := a.event(ctx, rec)
			if err != nil {
				return h, err
			}
			h.Events = append(h.Events, e)
		}
		if len(page) < pageSize {
			return h, nil
		}
		from = page[len(page)-1].Revision + 1
	}
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
	// Stream is the stream verified; CustomerID is set for a customer's.
	Stream       string    `json:"stream"`
	CustomerID   uuid.UUID `json:"customer_id,omitzero"`
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
	return a.verify(ctx, domain.StreamName(customerID), nil)
}

// VerifyStream is Verify for any audited stream: a goal's, the routing
// rules', or a customer's by its stream name.
func (a *Auditor) VerifyStream(ctx context.Context, stream string) (Verification, error) {
	if !Audited(stream) {
		return Verification{}, fmt.Errorf("%w: %q", ErrNotAudited, stream)
	}
	return a.verify(ctx, stream, nil)
}

// newVerification starts the verification of stream: intact until an
// event says otherwise.
func newVerification(stream string) Verification {
	return Verification{Stream: stream, CustomerID: customerOf(stream), Intact: true}
}

// Name is how reports name the stream: the customer's id, or the stream.
func (v Verification) Name() string {
	if v.CustomerID != uuid.Nil {
		return v.CustomerID.String()
	}
	return v.Stream
}

func (a *Auditor) verify(ctx context.Context, stream string, head *StreamHead) (Verification, error) {
	v := newVerification(stream)
	chain := a.codec.NewVerifier()
	var anchored *anchorState
	if head != nil {
		anchored = &anchorState{head: *head}
	}
	from := uint64(0)
	for {
		page, err := a.store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: from, Limit: pageSize})
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return v, notFound(stream)
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

// VerifyAll verifies every audited stream (customers', goals', the
// routing rules') by reading the global log once, keeping one small chain
// state per stream. It calls report for each stream, in order of first
// appearance.
func (a *Auditor) VerifyAll(ctx context.Context, progress func(events int), report func(Verification) error) error {
	return a.verifyLog(ctx, nil, progress, report, nil)
}

// verifyLog is VerifyAll, against anchored heads when heads is not nil
// (then a stream without a head must be keyed throughout); it leaves the
// last event of the log in logHead.
func (a *Auditor) verifyLog(ctx context.Context, heads map[string]StreamHead, progress func(events int), report func(Verification) error, logHead *LogHead) error {
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
			if !Audited(rec.Stream) {
				continue
			}
			st := states[rec.Stream]
			if st == nil {
				st = &streamState{chain: a.codec.NewVerifier(), v: newVerification(rec.Stream)}
				if head, known := heads[rec.Stream]; known {
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
