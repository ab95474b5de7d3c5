package feed_test

import (
	"context"
	"errors"
	"testing"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/feed"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// The queries before the projector set up its table answer ErrNotReady
// (503 not_caught_up), never a bare database error.
func TestFeedQueriesBeforeSetup(t *testing.T) {
	q := feed.NewQueries(apptest.ReadModels(t))
	if _, err := q.After(context.Background(), 0, nil, 10); !errors.Is(err, readmodel.ErrNotReady) {
		t.Fatalf("After before setup: %v", err)
	}
	if _, err := q.Head(context.Background()); !errors.Is(err, readmodel.ErrNotReady) {
		t.Fatalf("Head before setup: %v", err)
	}
}

// The feed holds one integration event per event of a generated history,
// in log order, each customer's revisions consecutive; its Reads is itself.
func TestFeedHoldsEveryEventInLogOrder(t *testing.T) {
	m := apptest.MustOpen(t)
	h := m.Generate(t, 31, 200)
	q := feed.NewQueries(m.Pool)
	if r := q.Reads(); len(r) != 1 || r[0] != feed.Name {
		t.Fatalf("Reads %v", r)
	}
	events, err := q.After(context.Background(), 0, nil, 1000)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, evs := range h.Events {
		total += len(evs)
	}
	if len(events) != total {
		t.Fatalf("%d feed events, the history has %d", len(events), total)
	}
	next := map[string]uint64{}
	for i, e := range events {
		if i > 0 && e.Position <= events[i-1].Position {
			t.Fatalf("out of order at %d", i)
		}
		c := e.CustomerID.String()
		if e.Revision != next[c] {
			t.Fatalf("customer %s: revision %d, want %d", c, e.Revision, next[c])
		}
		next[c]++
	}
	head, err := q.Head(context.Background())
	if err != nil || head != events[len(events)-1].Position {
		t.Fatalf("head %d (%v), last %d", head, err, events[len(events)-1].Position)
	}
	m.CheckReconciles(t, "after the history", feed.Name)
}
