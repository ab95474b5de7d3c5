// Package commands is the application layer of the write side: it loads a
// customer, asks the domain to decide, and appends the events with
// optimistic concurrency. It knows nothing of HTTP; the transport builds a
// Request and renders the Result or error.
package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// Handler handles a command: the unit that decorators (logging, metrics)
// wrap.
type Handler interface {
	Handle(ctx context.Context, req Request) (Result, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req Request) (Result, error)

// Handle implements Handler.
func (f HandlerFunc) Handle(ctx context.Context, req Request) (Result, error) { return f(ctx, req) }

// Request is one command with who sent it and how.
type Request struct {
	// CustomerID addresses the customer; ignored for RegisterCustomer,
	// whose customer id derives from CommandID.
	CustomerID uuid.UUID
	Command    domain.Command
	// CommandID identifies the command. The transport derives it from the
	// client's idempotency key, so a retry carries the same id, or makes a
	// random one. Every id the command creates derives from it.
	CommandID uuid.UUID
	// RequestHash fingerprints the request; a command id seen again with
	// another fingerprint is a reused idempotency key, not a retry.
	RequestHash string
	// Actor is who issued the command (the API key's name).
	Actor         string
	CorrelationID string
	// ExpectedRevision, when set, makes the command conditional: it is
	// refused with *RevisionMismatchError unless the customer is at that
	// revision (HTTP If-Match).
	ExpectedRevision *uint64
	// ExpectedRevisions, when not nil, makes the command conditional on
	// any of several revisions (If-Match with a list of tags). An empty,
	// non-nil list matches no revision: If-Match naming only weak tags,
	// which the strong comparison If-Match uses never matches.
	ExpectedRevisions []uint64
	// At, when set, is the time the command is decided at instead of the
	// clock: imports and the seed generator replay history with it. The
	// HTTP API never sets it.
	At time.Time
}

// Result says where the command's events are.
type Result struct {
	CustomerID uuid.UUID
	// Revision is the customer's revision after the command (its ETag).
	Revision uint64
	// Position is the global log position of the command's last event, or
	// of the customer's last event when the command changed nothing.
	Position eventstore.Position
	// CreatedID is the id of what the command created (complaint, contact,
	// survey, follow-up, customer), if anything.
	CreatedID uuid.UUID
	// Appended counts the events the command appended: 0 for a no-op or a
	// replayed retry.
	Appended int
	// Replayed says the command had already been handled: this is its
	// original result and nothing was appended.
	Replayed bool
}

// conditional says whether the command holds an If-Match condition.
func (r Request) conditional() bool {
	return r.ExpectedRevision != nil || r.ExpectedRevisions != nil
}

// expects says whether the condition holds at the current revision (-1:
// no events).
func (r Request) expects(current int64) bool {
	if current < 0 {
		return false
	}
	if r.ExpectedRevision != nil && *r.ExpectedRevision == uint64(current) {
		return true
	}
	return slices.Contains(r.ExpectedRevisions, uint64(current))
}

func (r Request) mismatch(current int64) *RevisionMismatchError {
	e := &RevisionMismatchError{Current: current}
	if r.ExpectedRevision != nil {
		e.Expected = *r.ExpectedRevision
		e.ExpectedAny = append(e.ExpectedAny, *r.ExpectedRevision)
	}
	e.ExpectedAny = append(e.ExpectedAny, r.ExpectedRevisions...)
	if r.ExpectedRevision == nil && len(r.ExpectedRevisions) > 0 {
		e.Expected = r.ExpectedRevisions[0]
	}
	return e
}

// RevisionMismatchError refuses a conditional command (412).
type RevisionMismatchError struct {
	// Expected is the (first) revision the condition named; ExpectedAny
	// all of them, empty when it named none that can match.
	Expected    uint64
	ExpectedAny []uint64
	// Current is the customer's revision, -1 if it has no events.
	Current int64
}

func (e *RevisionMismatchError) Error() string {
	return "commands: " + e.Describe()
}

// Describe says what did not match, for an answer's detail.
func (e *RevisionMismatchError) Describe() string {
	switch len(e.ExpectedAny) {
	case 0:
		return fmt.Sprintf("customer is at revision %d; the condition names no revision that can match", e.Current)
	case 1:
		return fmt.Sprintf("customer is at revision %d, not %d", e.Current, e.ExpectedAny[0])
	}
	return fmt.Sprintf("customer is at revision %d, none of %v", e.Current, e.ExpectedAny)
}

// ErrIdempotencyKeyReused says that a command id (idempotency key) came
// back with a different request.
var ErrIdempotencyKeyReused = errors.New("commands: idempotency key reused with a different request")

// ErrTooManyConflicts says that concurrent writers kept winning the race
// for the customer; the client may retry.
var ErrTooManyConflicts = errors.New("commands: too many concurrent changes to the customer")

// EmailRegistry keeps emails unique across customers at command time
// (infra/postgres implements it).
type EmailRegistry interface {
	// Reserve claims email for customerID and reports who holds it now.
	Reserve(ctx context.Context, email string, customerID uuid.UUID) (holder uuid.UUID, confirmed bool, age time.Duration, err error)
	// TakeOver moves an unconfirmed reservation whose append never
	// happened; it reports whether it did.
	TakeOver(ctx context.Context, email string, from, to uuid.UUID) (bool, error)
	Confirm(ctx context.Context, email string, customerID uuid.UUID) error
	Release(ctx context.Context, email string, customerID uuid.UUID) error
	ReleaseAll(ctx context.Context, customerID uuid.UUID) error
}

// KeyShredder destroys customers' data keys (infra/postgres's Keyring).
// An erasure is begun before its event is appended and ended once the key
// is destroyed and the emails released, so that a crash in between leaves
// a trace that CompleteErasures finds: an erasure completes or is
// completed.
type KeyShredder interface {
	BeginErasure(ctx context.Context, customerID uuid.UUID) error
	// Destroy erases the key for good; it is idempotent.
	Destroy(ctx context.Context, customerID uuid.UUID) error
	EndErasure(ctx context.Context, customerID uuid.UUID) error
	// PendingErasures lists the erasures begun and not ended, with their
	// age.
	PendingErasures(ctx context.Context) (map[uuid.UUID]time.Duration, error)
}

// ErrErasureIncomplete says that an erasure's event is stored but the
// customer's data key could not be destroyed yet: the erasure is not done
// (HTTP 503). A retry, any later command on the customer and the sweep at
// start complete it.
var ErrErasureIncomplete = errors.New("commands: the erasure is recorded but its data key is not destroyed yet")

// Config wires the command handler.
type Config struct {
	Store  eventstore.Store
	Codec  *eventcodec.Codec
	Emails EmailRegistry
	Keys   KeyShredder
	// Metrics records appends; optional.
	Metrics Metrics
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Timeout bounds a command's whole run, store calls included, so that
	// an unreachable store answers "unavailable" instead of holding the
	// caller. Default 10 s.
	Timeout time.Duration
	// MaxConflictRetries bounds how often an unconditional command is
	// decided again after losing a race with another writer. Default 5.
	MaxConflictRetries int
	// CacheSize bounds how many customers' states are cached. Default
	// 10,000.
	CacheSize int
	// StaleReservation is how old an unconfirmed email reservation must be
	// before a registration may take it over from a registration that
	// never appended. It must exceed the longest append. Default 30 s.
	StaleReservation time.Duration
	// StaleErasure is how old a pending erasure without its event must be
	// before CompleteErasures forgets it as never appended. It must exceed
	// the longest command. Default twice Timeout.
	StaleErasure time.Duration
	Logger       *slog.Logger
	// Loyalty is the points policy (rate and validity); zero fields take
	// the product's defaults (1 point per whole currency unit, 12 months).
	Loyalty domain.LoyaltyPolicy
}

func (c *Config) setDefaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxConflictRetries == 0 {
		c.MaxConflictRetries = 5
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.CacheSize == 0 {
		c.CacheSize = 10_000
	}
	if c.StaleReservation == 0 {
		c.StaleReservation = 30 * time.Second
	}
	if c.StaleErasure == 0 {
		c.StaleErasure = 2 * c.Timeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("commands: Store is required")
	case c.Codec == nil:
		return errors.New("commands: Codec is required")
	case c.Emails == nil:
		return errors.New("commands: Emails is required")
	case c.Keys == nil:
		return errors.New("commands: Keys is required")
	case c.MaxConflictRetries < 0 || c.CacheSize < 1:
		return errors.New("commands: MaxConflictRetries and CacheSize must be positive")
	}
	return nil
}

// Customers handles every customer command: load, decide, append.
type Customers struct {
	cfg   Config
	cache *stateCache
}

var _ Handler = (*Customers)(nil)

// NewCustomers returns the command handler.
func NewCustomers(cfg Config) (*Customers, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Emails = emailKeys{cfg.Emails}
	return &Customers{cfg: cfg, cache: newStateCache(cfg.CacheSize)}, nil
}

// Handle implements Handler. An unconditional command that loses a race
// with another writer is decided again on the new state, a bounded number
// of times; a conditional one fails with *RevisionMismatchError.
func (h *Customers) Handle(ctx context.Context, req Request) (Result, error) {
	if req.CommandID == uuid.Nil {
		return Result{}, errors.New("commands: request without command id")
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	cmd, created := WithDerivedIDs(req.Command, req.CommandID)
	cmd = withLoyalty(cmd, h.cfg.Loyalty)
	customerID := req.CustomerID
	if _, ok := cmd.(domain.RegisterCustomer); ok {
		customerID = created
	}
	for attempt := 0; ; attempt++ {
		res, err := h.handleOnce(ctx, customerID, cmd, created, req)
		var wrong *eventstore.WrongExpectedRevisionError
		if !errors.As(err, &wrong) {
			return res, err
		}
		if req.conditional() {
			return Result{}, req.mismatch(wrong.Current)
		}
		if attempt >= h.cfg.MaxConflictRetries {
			return Result{}, fmt.Errorf("%w (%d attempts)", ErrTooManyConflicts, attempt+1)
		}
		h.cfg.Logger.DebugContext(ctx, "commands: concurrent write, deciding again", "customer_id", customerID, "attempt", attempt+1)
	}
}

// handleOnce decides the command on the cached state and appends. A
// state cached by this process is trusted optimistically: the append
// expects its revision, so if another process wrote meanwhile the store
// refuses it, the entry is marked stale and the next attempt reads the
// missing events first. Every answer that does not end in an append (a
// refusal, a no-op, a replay, a 412) is only given on a state just read,
// since a stale state could make it wrong.
func (h *Customers) handleOnce(ctx context.Context, customerID uuid.UUID, cmd domain.Command, created uuid.UUID, req Request) (Result, error) {
	entry := h.cache.entry(customerID)
	entry.mu.Lock()
	defer entry.mu.Unlock()
	fresh := false
	if !entry.loaded || entry.stale {
		if err := h.refresh(ctx, entry); err != nil {
			return Result{}, err
		}
		fresh = true
	}
	recordedAt := h.cfg.Now()
	now := recordedAt
	if !req.At.IsZero() {
		now = req.At
	}
	var events []domain.Event
	for {
		res, done, err := h.decide(ctx, entry, customerID, cmd, created, req, now, &events)
		if done && !fresh {
			// Not an append: make sure of it on the latest state.
			if err := h.refresh(ctx, entry); err != nil {
				return Result{}, err
			}
			fresh = true
			continue
		}
		if done {
			return res, err
		}
		break
	}

	undo, err := h.beforeAppend(ctx, customerID, entry.state, events)
	if err != nil {
		return Result{}, err
	}
	ids := make([]uuid.UUID, len(events))
	for i := range events {
		ids[i] = eventID(req.CommandID, i)
	}
	batch := eventcodec.Batch{
		Stream:        domain.StreamName(customerID),
		FirstRevision: uint64(entry.revision + 1),
		PrevHash:      entry.lastHash,
		Metadata: eventcodec.Metadata{
			CustomerID:    customerID,
			RecordedAt:    recordedAt.UTC(),
			Actor:         req.Actor,
			CorrelationID: req.CorrelationID,
			CausationID:   req.CommandID,
			RequestHash:   req.RequestHash,
		},
		Events: events,
		IDs:    ids,
	}
	data, lastHash, err := h.cfg.Codec.Encode(ctx, batch)
	if err != nil {
		undo(ctx)
		return Result{}, err
	}
	expected := eventstore.NoStream
	if entry.revision >= 0 {
		expected = eventstore.Exact(uint64(entry.revision))
	}
	appendStart := time.Now()
	appended, err := h.cfg.Store.Append(ctx, batch.Stream, expected, data)
	if h.cfg.Metrics != nil {
		h.cfg.Metrics.Appended(len(data), time.Since(appendStart), err)
	}
	if err != nil {
		var wrong *eventstore.WrongExpectedRevisionError
		if errors.As(err, &wrong) || errors.Is(err, eventstore.ErrUnavailable) {
			entry.stale = true // someone else wrote, or we cannot know
		}
		if !errors.Is(err, eventstore.ErrUnavailable) {
			// The append certainly did not happen. When the store was
			// unreachable it may have: keep the reservation, a retry
			// confirms it and a stale one is taken over.
			undo(ctx)
		}
		return Result{}, fmt.Errorf("commands: append: %w", err)
	}

	before := entry.state
	for _, e := range events {
		entry.state = domain.Evolve(entry.state, e)
	}
	entry.revision = int64(appended.Revision)
	entry.position = appended.Position
	entry.lastHash = lastHash
	entry.recent.add(recentCommand{id: req.CommandID, requestHash: req.RequestHash, revision: appended.Revision, position: appended.Position})
	if err := h.afterAppend(ctx, entry, before, events); err != nil {
		if errors.Is(err, ErrErasureIncomplete) {
			// The erasure is recorded but not true yet: never report it
			// done while the key exists. A retry completes it.
			return Result{}, err
		}
		// The events are stored: the command happened. What failed is
		// bookkeeping that a retry of the same command completes.
		h.cfg.Logger.WarnContext(ctx, "commands: after-append step failed", "customer_id", customerID, "err", err)
	}
	return Result{CustomerID: customerID, Revision: appended.Revision, Position: appended.Position, CreatedID: created, Appended: len(events)}, nil
}

// decide answers the command on the entry's state: done is true with the
// answer when there is nothing to append; otherwise events holds what to
// append.
func (h *Customers) decide(ctx context.Context, entry *cacheEntry, customerID uuid.UUID, cmd domain.Command, created uuid.UUID, req Request, now time.Time, events *[]domain.Event) (res Result, done bool, err error) {
	if entry.state.IsErased() && !entry.shredded {
		// An erasure whose shredding did not finish (a crash, an outage)
		// finishes with the next command: its own retry, which then
		// answers the erasure's result, or another, refused (410). Before
		// anything else, so that no answer says "erased" while the key
		// exists.
		if err := h.shred(ctx, customerID); err != nil {
			return Result{}, true, err
		}
		entry.shredded = true
	}
	if seen, ok := entry.recent.find(req.CommandID); ok {
		if req.RequestHash != "" && seen.requestHash != req.RequestHash {
			return Result{}, true, ErrIdempotencyKeyReused
		}
		return Result{CustomerID: customerID, Revision: seen.revision, Position: seen.position, CreatedID: created, Replayed: true}, true, nil
	}
	if req.conditional() && !req.expects(entry.revision) {
		return Result{}, true, req.mismatch(entry.revision)
	}
	decided, err := domain.Decide(entry.state, cmd, now)
	var already *domain.AlreadyRecordedError
	if errors.As(err, &already) && already.Kind == "purchase" {
		res, err := h.firstPurchase(ctx, entry, already.ID)
		return res, true, err
	}
	if errors.As(err, &already) {
		res, err := h.firstResult(ctx, entry, created, req)
		return res, true, err
	}
	if err != nil {
		return Result{}, true, err
	}
	if len(decided) == 0 {
		return Result{CustomerID: customerID, Revision: uint64(max(entry.revision, 0)), Position: entry.position, CreatedID: created}, true, nil
	}
	*events = decided
	return Result{}, false, nil
}

// refresh brings a cached state up to date by reading only the events
// after its revision: one round trip when nothing changed, however long
// the customer's history.
func (h *Customers) refresh(ctx context.Context, entry *cacheEntry) error {
	const page = 500
	stream := domain.StreamName(entry.customerID)
	for {
		events, err := h.cfg.Store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: uint64(entry.revision + 1), Limit: page})
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			entry.loaded, entry.stale = true, false
			return nil
		}
		if err != nil {
			return fmt.Errorf("commands: load customer: %w", err)
		}
		for _, rec := range events {
			d, err := h.cfg.Codec.Decode(ctx, rec)
			if err != nil {
				return fmt.Errorf("commands: load customer: %w", err)
			}
			entry.state = domain.Evolve(entry.state, d.Event)
			entry.revision = int64(rec.Revision)
			entry.position = rec.Position
			entry.lastHash = d.Metadata.Hash
			entry.recent.observe(d.Metadata.CausationID, d.Metadata.RequestHash, rec.Revision, rec.Position)
		}
		if len(events) < page {
			entry.loaded, entry.stale = true, false
			return nil
		}
	}
}

// eventID derives the i-th event id of a command, so that a retried
// command appends the same ids and the store recognises the retry.
func eventID(commandID uuid.UUID, i int) uuid.UUID {
	return uuid.NewSHA1(commandID, fmt.Appendf(nil, "event/%d", i))
}

// CommandID derives a command id from a client's idempotency key, scoped to
// the actor so that two clients cannot collide.
func CommandID(actor, idempotencyKey string) uuid.UUID {
	return uuid.NewSHA1(commandNamespace, []byte(actor+"\x00"+idempotencyKey))
}

var commandNamespace = uuid.MustParse("6f1c3d0e-5a7b-4c1e-9a53-2b0f7e4d8c61")

// createdID derives the id of the thing a command creates.
func createdID(commandID uuid.UUID, kind string) uuid.UUID {
	return uuid.NewSHA1(commandID, []byte(kind))
}

// WithDerivedIDs fills the ids of what the command creates, derived from
// the command id, and returns the id created (uuid.Nil if none).
func WithDerivedIDs(cmd domain.Command, commandID uuid.UUID) (domain.Command, uuid.UUID) {
	switch c := cmd.(type) {
	case domain.RegisterCustomer:
		c.CustomerID = createdID(commandID, "customer")
		return c, c.CustomerID
	case domain.LogContact:
		c.ContactID = createdID(commandID, "contact")
		return c, c.ContactID
	case domain.ScheduleFollowUp:
		c.FollowUpID = createdID(commandID, "follow-up")
		return c, c.FollowUpID
	case domain.FileComplaint:
		c.ComplaintID = createdID(commandID, "complaint")
		return c, c.ComplaintID
	case domain.RecordSurvey:
		c.SurveyID = createdID(commandID, "survey")
		return c, c.SurveyID
	}
	return withValueIDs(cmd, commandID)
}
