package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/domain/eventstore/memstore"
)

func ptrTo[T any](v T) *T { return &v }

// TestGoalCommands sets, revises and closes a goal through the command
// layer: the events land in goal-<uuid> with the customers' metadata
// (actor, correlation, causation, recorded time, chained hashes), a retry
// replays the first answer, a reused key with another body is refused, and
// If-Match is honoured.
func TestGoalCommands(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	key, err := eventcodec.DeriveChainKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	codec := eventcodec.New(domain.NewRegistry(), newMemKeys(), eventcodec.WithChainKey(key))
	goals, err := commands.NewGoals(commands.GoalConfig{Store: store, Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	set := domain.SetGoal{Name: "churn under 5 %", Figure: "churn_rate", Comparator: domain.AtMost, Target: ptrTo(5.0), From: ptrTo(from), To: ptrTo(from.AddDate(0, 3, 0))}
	setReq := commands.GoalRequest{Command: set, CommandID: uuid.New(), RequestHash: "h1", Actor: "ana", CorrelationID: "c-1"}
	first, err := goals.Handle(ctx, setReq)
	if err != nil || !first.Created || first.Revision != 0 || first.Appended != 1 {
		t.Fatalf("set: %+v %v", first, err)
	}
	again, err := goals.Handle(ctx, setReq)
	if err != nil || !again.Replayed || again.GoalID != first.GoalID || again.Position != first.Position {
		t.Fatalf("retry: %+v %v", again, err)
	}
	reused := setReq
	reused.RequestHash = "other"
	if _, err := goals.Handle(ctx, reused); !errors.Is(err, commands.ErrIdempotencyKeyReused) {
		t.Fatalf("reused key: %v", err)
	}

	revise := commands.GoalRequest{GoalID: first.GoalID, Command: domain.ReviseGoal{Target: ptrTo(4.0)}, CommandID: uuid.New(), Actor: "ana", ExpectedRevisions: []uint64{7}}
	var mismatch *commands.GoalRevisionMismatchError
	if _, err := goals.Handle(ctx, revise); !errors.As(err, &mismatch) || mismatch.Current != 0 {
		t.Fatalf("If-Match 7: %v", err)
	}
	revise.ExpectedRevisions = []uint64{0}
	if res, err := goals.Handle(ctx, revise); err != nil || res.Revision != 1 {
		t.Fatalf("revise: %+v %v", res, err)
	}
	closeReq := commands.GoalRequest{GoalID: first.GoalID, Command: domain.CloseGoal{Reason: "done"}, CommandID: uuid.New(), Actor: "admin"}
	if res, err := goals.Handle(ctx, closeReq); err != nil || res.Revision != 2 {
		t.Fatalf("close: %+v %v", res, err)
	}
	closeReq.CommandID = uuid.New()
	var de *domain.Error
	if _, err := goals.Handle(ctx, closeReq); !errors.As(err, &de) || de.Reason != domain.ReasonGoalClosed {
		t.Fatalf("close again: %v", err)
	}
	unknown := commands.GoalRequest{GoalID: uuid.New(), Command: domain.CloseGoal{}, CommandID: uuid.New()}
	if _, err := goals.Handle(ctx, unknown); !errors.As(err, &de) || de.Reason != domain.ReasonGoalNotFound {
		t.Fatalf("unknown goal: %v", err)
	}

	recs, err := store.ReadStream(ctx, domain.GoalStreamName(first.GoalID), eventstore.ReadStreamOptions{Direction: eventstore.Forwards, Limit: 10})
	if err != nil || len(recs) != 3 {
		t.Fatalf("stream: %d events, %v", len(recs), err)
	}
	verifier := codec.NewVerifier()
	wantTypes := []string{domain.TypeGoalSet, domain.TypeGoalRevised, domain.TypeGoalClosed}
	for i, rec := range recs {
		if rec.Type != wantTypes[i] {
			t.Errorf("event %d is %s", i, rec.Type)
		}
		if err := verifier.Verify(rec); err != nil {
			t.Errorf("chain at %d: %v", i, err)
		}
		var meta eventcodec.Metadata
		if err := json.Unmarshal(rec.Metadata, &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Actor == "" || meta.CausationID == uuid.Nil || meta.RecordedAt.IsZero() || meta.Hash == "" || meta.SchemaVersion != 1 {
			t.Errorf("event %d metadata %+v", i, meta)
		}
	}
}
