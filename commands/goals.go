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

// GoalRequest is one goal command with who sent it and how: the goal
// counterpart of Request, with the same idempotency, correlation and
// If-Match semantics.
type GoalRequest struct {
	// GoalID addresses the goal; ignored for SetGoal, whose goal id
	// derives from CommandID.
	GoalID    uuid.UUID
	Command   domain.GoalCommand
	CommandID uuid.UUID
	// RequestHash fingerprints the request (see Request.RequestHash).
	RequestHash   string
	Actor         string
	CorrelationID string
	// ExpectedRevisions, when not nil, makes the command conditional on
	// one of these revisions of the goal (If-Match).
	ExpectedRevisions []uint64
	// At, when set, is the time the command is decided at (tests, imports).
	At time.Time
}

// GoalResult says where a goal command's events are.
type GoalResult struct {
	GoalID uuid.UUID
	// Revision is the goal's revision after the command (its ETag).
	Revision uint64
	// Position is the log position of the command's last event, or of the
	// goal's last event when the command changed nothing.
	Position eventstore.Position
	// Created says the command set a new goal.
	Created bool
	// Appended counts the events appended: 0 for a no-op or a replay.
	Appended int
	// Replayed says the command had already been handled: this is its
	// first result and nothing was appended.
	Replayed bool
}

// GoalConfig wires the goal command handler.
type GoalConfig struct {
	Store eventstore.Store
	Codec *eventcodec.Codec
	// Metrics records appends; optional.
	Metrics Metrics
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Timeout bounds a command's whole run. Default 10 s.
	Timeout time.Duration
	// MaxConflictRetries bounds how often an unconditional command is
	// decided again after losing a race. Default 5.
	MaxConflictRetries int
	Logger             *slog.Logger
}

// Goals handles the goal commands: load the goal's stream, decide, append
// with the expected revision. A goal's stream is short (a handful of
// revisions), so it is read whole each time instead of cached.
type Goals struct{ cfg GoalConfig }

// NewGoals returns the goal command handler.
func NewGoals(cfg GoalConfig) (*Goals, error) {
	if cfg.Store == nil || cfg.Codec == nil {
		return nil, errors.New("commands: goals need a Store and a Codec")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxConflictRetries == 0 {
		cfg.MaxConflictRetries = 5
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Goals{cfg: cfg}, nil
}

// GoalRevisionMismatchError refuses a conditional goal command (412).
type GoalRevisionMismatchError struct {
	Expected []uint64
	// Current is the goal's revision, -1 if it has no events.
	Current int64
}

func (e *GoalRevisionMismatchError) Error() string {
	return fmt.Sprintf("commands: goal is at revision %d, not one of %v", e.Current, e.Expected)
}

// Handle decides and appends one goal command. An unconditional command
// that loses a race is decided again on the new state, a bounded number of
// times; a conditional one fails with *GoalRevisionMismatchError.
func (h *Goals) Handle(ctx context.Context, req GoalRequest) (GoalResult, error) {
	if req.CommandID == uuid.Nil {
		return GoalResult{}, errors.New("commands: goal request without command id")
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	cmd := req.Command
	goalID := req.GoalID
	if set, ok := cmd.(domain.SetGoal); ok {
		set.GoalID = createdID(req.CommandID, "goal")
		cmd, goalID = set, set.GoalID
	}
	for attempt := 0; ; attempt++ {
		res, err := h.handleOnce(ctx, goalID, cmd, req)
		var wrong *eventstore.WrongExpectedRevisionError
		if !errors.As(err, &wrong) {
			return res, err
		}
		if req.ExpectedRevisions != nil {
			return GoalResult{}, &GoalRevisionMismatchError{Expected: req.ExpectedRevisions, Current: wrong.Current}
		}
		if attempt >= h.cfg.MaxConflictRetries {
			return GoalResult{}, fmt.Errorf("%w (%d attempts)", ErrTooManyConflicts, attempt+1)
		}
	}
}

// loadedGoal is a goal's stream folded, with what a retry needs.
type loadedGoal struct {
	state    domain.Goal
	revision int64 // -1: no stream
	position eventstore.Position
	lastHash string
	// first is the last event the command id appended before, if any: the
	// command is then a retry.
	first *eventstore.RecordedEvent
	// firstHash is that command's request fingerprint.
	firstHash string
}

func (h *Goals) load(ctx context.Context, goalID uuid.UUID, commandID uuid.UUID) (loadedGoal, error) {
	const page = 500
	l := loadedGoal{revision: -1}
	stream := domain.GoalStreamName(goalID)
	for {
		events, err := h.cfg.Store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: uint64(l.revision + 1), Limit: page})
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return l, nil
		}
		if err != nil {
			return l, fmt.Errorf("commands: load goal: %w", err)
		}
		for i := range events {
			rec := events[i]
			d, err := h.cfg.Codec.Decode(ctx, rec)
			if err != nil {
				return l, fmt.Errorf("commands: load goal: %w", err)
			}
			l.state = domain.EvolveGoal(l.state, d.Event)
			l.revision, l.position, l.lastHash = int64(rec.Revision), rec.Position, d.Metadata.Hash
			if d.Metadata.CausationID == commandID {
				l.first, l.firstHash = &rec, d.Metadata.RequestHash
			}
		}
		if len(events) < page {
			return l, nil
		}
	}
}

func (h *Goals) handleOnce(ctx context.Context, goalID uuid.UUID, cmd domain.GoalCommand, req GoalRequest) (GoalResult, error) {
	l, err := h.load(ctx, goalID, req.CommandID)
	if err != nil {
		return GoalResult{}, err
	}
	_, creates := cmd.(domain.SetGoal)
	if l.first != nil {
		if req.RequestHash != "" && l.firstHash != "" && l.firstHash != req.RequestHash {
			return GoalResult{}, ErrIdempotencyKeyReused
		}
		return GoalResult{GoalID: goalID, Revision: l.first.Revision, Position: l.first.Position, Created: creates, Replayed: true}, nil
	}
	if req.ExpectedRevisions != nil && (l.revision < 0 || !slices.Contains(req.ExpectedRevisions, uint64(l.revision))) {
		if l.revision < 0 && !creates {
			return GoalResult{}, &domain.Error{Code: domain.CodeNotFound, Reason: domain.ReasonGoalNotFound, Message: "goal not found"}
		}
		return GoalResult{}, &GoalRevisionMismatchError{Expected: req.ExpectedRevisions, Current: l.revision}
	}
	recordedAt := h.cfg.Now()
	now := recordedAt
	if !req.At.IsZero() {
		now = req.At
	}
	events, err := domain.DecideGoal(l.state, cmd, now)
	if err != nil {
		return GoalResult{}, err
	}
	if len(events) == 0 {
		return GoalResult{GoalID: goalID, Revision: uint64(max(l.revision, 0)), Position: l.position}, nil
	}
	ids := make([]uuid.UUID, len(events))
	for i := range events {
		ids[i] = eventID(req.CommandID, i)
	}
	batch := eventcodec.Batch{
		Stream:        domain.GoalStreamName(goalID),
		FirstRevision: uint64(l.revision + 1),
		PrevHash:      l.lastHash,
		Metadata: eventcodec.Metadata{
			RecordedAt:    recordedAt.UTC(),
			Actor:         req.Actor,
			CorrelationID: req.CorrelationID,
			CausationID:   req.CommandID,
			RequestHash:   req.RequestHash,
		},
		Events: events,
		IDs:    ids,
	}
	data, _, err := h.cfg.Codec.Encode(ctx, batch)
	if err != nil {
		return GoalResult{}, err
	}
	expected := eventstore.NoStream
	if l.revision >= 0 {
		expected = eventstore.Exact(uint64(l.revision))
	}
	start := time.Now()
	appended, err := h.cfg.Store.Append(ctx, batch.Stream, expected, data)
	if h.cfg.Metrics != nil {
		h.cfg.Metrics.Appended(len(data), time.Since(start), err)
	}
	if err != nil {
		return GoalResult{}, fmt.Errorf("commands: append goal: %w", err)
	}
	h.cfg.Logger.DebugContext(ctx, "goal command handled", "goal_id", goalID, "command", fmt.Sprintf("%T", cmd), "actor", req.Actor, "revision", appended.Revision)
	return GoalResult{GoalID: goalID, Revision: appended.Revision, Position: appended.Position, Created: creates, Appended: len(events)}, nil
}
