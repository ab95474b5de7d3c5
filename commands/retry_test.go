package commands_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// TestLateRetryAppendsNothing retries creating commands after more other
// commands than the state cache remembers: each retry answers its first
// result and appends nothing, through this process and through another
// whose cache never saw the command. The domain recognises the ids the
// command created; the handler finds the first result in the stream.
func TestLateRetryAppendsNothing(t *testing.T) {
	e := mustOpen(t)
	ctx := context.Background()
	id := e.register(t, "late@example.com")
	five := 5
	first := map[string]commands.Request{
		"contact":   request(id, logContact("first try")),
		"survey":    request(id, domain.RecordSurvey{CSAT: &five}),
		"complaint": request(id, domain.FileComplaint{Category: "billing", Severity: domain.SeverityLow, Description: "late invoice"}),
		"follow-up": request(id, domain.ScheduleFollowUp{DueAt: time.Now().AddDate(0, 0, 7), By: "agent"}),
	}
	results := map[string]commands.Result{}
	for name, req := range first {
		req.RequestHash = "hash-" + name
		first[name] = req
		res, err := e.handler.Handle(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		results[name] = res
	}
	for i := range 130 {
		if _, err := e.handler.Handle(ctx, request(id, logContact(fmt.Sprint("other ", i)))); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []*commands.Customers{e.handler, e.newHandler(t, nil)} {
		for name, req := range first {
			again, err := h.Handle(ctx, req)
			if err != nil {
				t.Fatalf("late retry of the %s: %v", name, err)
			}
			want := results[name]
			if !again.Replayed || again.Appended != 0 || again.Revision != want.Revision || again.Position != want.Position || again.CreatedID != want.CreatedID {
				t.Fatalf("late retry of the %s gave %+v, first was %+v", name, again, want)
			}
			other := req
			other.RequestHash = "another request"
			if _, err := h.Handle(ctx, other); !errors.Is(err, commands.ErrIdempotencyKeyReused) {
				t.Fatalf("late reuse of the %s's key with another request: %v", name, err)
			}
		}
	}
	events, err := e.store.ReadStream(ctx, domain.StreamName(id), eventstore.ReadStreamOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uuid.UUID]bool{}
	for _, rec := range events {
		if seen[rec.ID] {
			t.Fatalf("event id %s is in the stream twice", rec.ID)
		}
		seen[rec.ID] = true
	}
	if want := 1 + len(first) + 130; len(events) != want {
		t.Fatalf("stream holds %d events, want %d", len(events), want)
	}
}
