package esdbtest_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rapport-crm/rapport/infra/esdb/esdbtest"
)

func subscribeStream(t *testing.T, c *esdb.Client, stream string, from esdb.StreamPosition) *esdb.Subscription {
	t.Helper()
	sub, err := c.SubscribeToStream(context.Background(), stream, esdb.SubscribeToStreamOptions{From: from})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func subscribeAll(t *testing.T, c *esdb.Client, opts esdb.SubscribeToAllOptions) *esdb.Subscription {
	t.Helper()
	sub, err := c.SubscribeToAll(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// expectEvents receives exactly want as events, ignoring checkpoints.
func expectEvents(t *testing.T, sub *esdb.Subscription, want []uuid.UUID) {
	t.Helper()
	var got []uuid.UUID
	for len(got) < len(want) {
		m := recv(t, sub, 10*time.Second)
		switch m.kind {
		case "event":
			got = append(got, m.event.EventID)
		case "checkpoint":
		default:
			t.Fatalf("got %s (%v) after %d of %d events", m.kind, m.err, len(got), len(want))
		}
	}
	if !equalIDs(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestSubscribeToStream(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	c := newClient(t, srv)
	stream := streamName(t)
	written := events(5, "Sub")
	appendOK(t, c, stream, esdb.NoStream{}, written[:3]...)

	fromStart := subscribeStream(t, c, stream, esdb.Start{})
	fromOne := subscribeStream(t, c, stream, esdb.Revision(1))
	fromEnd := subscribeStream(t, c, stream, esdb.End{})
	missing := streamName(t)
	notYet := subscribeStream(t, c, missing, esdb.Start{})

	if evs, _ := untilCaughtUp(t, fromStart); !equalIDs(recordedIDs(evs), ids(written[:3])) {
		t.Fatal("catch-up from Start must deliver revisions 0..2")
	}
	if evs, _ := untilCaughtUp(t, fromOne); !equalIDs(recordedIDs(evs), ids(written[2:3])) {
		t.Fatal("catch-up from revision 1 must start after it")
	}
	if evs, _ := untilCaughtUp(t, fromEnd); len(evs) != 0 {
		t.Fatal("End must not catch up")
	}
	if evs, _ := untilCaughtUp(t, notYet); len(evs) != 0 {
		t.Fatal("a missing stream catches up empty")
	}

	appendOK(t, c, stream, esdb.Revision(2), written[3:]...)
	other := event("Other")
	appendOK(t, c, missing, esdb.NoStream{}, other)
	for _, sub := range []*esdb.Subscription{fromStart, fromOne, fromEnd} {
		expectEvents(t, sub, ids(written[3:]))
	}
	expectEvents(t, notYet, []uuid.UUID{other.EventID})
}

func TestSubscribeToAllFilters(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	c := newClient(t, srv)
	prefix := streamName(t)
	var alphas, betas []esdb.EventData
	for i := range 6 {
		a, b := event("Alpha"), event("Beta")
		appendOK(t, c, prefix+"-a", esdb.Any{}, a)
		appendOK(t, c, prefix+"-b", esdb.Any{}, b)
		appendOK(t, c, fmt.Sprintf("unrelated-%d", i), esdb.Any{}, event("Gamma"))
		alphas, betas = append(alphas, a), append(betas, b)
	}
	total, err := collect(c.ReadAll(ctxT(t), esdb.ReadAllOptions{}, math.MaxUint64))
	if err != nil {
		t.Fatal(err)
	}
	head := total[len(total)-1].Event.Position.Commit

	for name, tc := range map[string]struct {
		filter *esdb.SubscriptionFilter
		want   []esdb.EventData
	}{
		"stream prefix":   {&esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{prefix + "-a"}}, alphas},
		"stream regex":    {&esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Regex: strings.TrimPrefix(prefix, "test") + "-b$"}, betas},
		"type prefixes":   {&esdb.SubscriptionFilter{Type: esdb.EventFilterType, Prefixes: []string{"Alp", "Nope"}}, alphas},
		"type regex":      {&esdb.SubscriptionFilter{Type: esdb.EventFilterType, Regex: "^Be"}, betas},
		"unanchored":      {&esdb.SubscriptionFilter{Type: esdb.EventFilterType, Regex: "lph"}, alphas},
		"exclude systems": {esdb.ExcludeSystemEventsFilter(), nil},
	} {
		sub := subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.Start{}, Filter: tc.filter, MaxSearchWindow: 2, CheckpointInterval: 2})
		evs, checkpoints := untilCaughtUp(t, sub)
		if tc.want != nil {
			if !equalIDs(recordedIDs(evs), ids(tc.want)) {
				t.Errorf("%s: got %d events, want %d", name, len(evs), len(tc.want))
			}
		} else {
			for _, e := range evs {
				if strings.HasPrefix(e.EventType, "$") {
					t.Errorf("%s: system event %s delivered", name, e.EventType)
				}
			}
			if len(evs) < 18 {
				t.Errorf("%s: %d events, want at least the 18 written", name, len(evs))
			}
		}
		// One checkpoint per 4 (2 × 2) considered events, one at the end.
		if want := len(total)/4 + 1; len(checkpoints) != want || checkpoints[len(checkpoints)-1] != head {
			t.Errorf("%s: checkpoints %v, want %d ending at the head %d", name, checkpoints, want, head)
		}
		for i := 1; i < len(checkpoints); i++ {
			if checkpoints[i] < checkpoints[i-1] {
				t.Errorf("%s: checkpoints go back: %v", name, checkpoints)
			}
		}
	}

	// Unfiltered $all sends no checkpoints and includes system events, but
	// never what the default $all filter hides.
	sub := subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.Start{}})
	evs, checkpoints := untilCaughtUp(t, sub)
	if len(checkpoints) != 0 || len(evs) != len(total) || !strings.HasPrefix(evs[0].StreamID, "$") {
		t.Fatalf("unfiltered: %d events (want %d), %d checkpoints", len(evs), len(total), len(checkpoints))
	}
}

func TestSubscribeToAllExclusiveStartAndLiveCheckpoints(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.WithoutSystemEvents())
	c := newClient(t, srv)
	stream := streamName(t)
	written := events(4, "X")
	appendOK(t, c, stream, esdb.NoStream{}, written...)
	all, _ := collect(c.ReadAll(ctxT(t), esdb.ReadAllOptions{}, 10))

	sub := subscribeAll(t, c, esdb.SubscribeToAllOptions{From: all[1].Event.Position})
	if evs, _ := untilCaughtUp(t, sub); !equalIDs(recordedIDs(evs), ids(written[2:])) {
		t.Fatal("a subscription from P must start after P")
	}

	// A filter that matches nothing still checkpoints every considered
	// event in live mode (window 1 × multiplier 3).
	quiet := subscribeAll(t, c, esdb.SubscribeToAllOptions{
		From:   esdb.End{},
		Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"nothing-"}}, MaxSearchWindow: 1, CheckpointInterval: 3,
	})
	if m := recv(t, quiet, 5*time.Second); m.kind != "caughtup" {
		t.Fatalf("from End: first message %s, want caught-up", m.kind)
	}
	live := events(7, "Y")
	for _, e := range live {
		appendOK(t, c, stream, esdb.Any{}, e)
	}
	tail, _ := collect(c.ReadAll(ctxT(t), esdb.ReadAllOptions{From: esdb.End{}, Direction: esdb.Backwards}, 7))
	for _, want := range []uint64{tail[4].Event.Position.Commit, tail[1].Event.Position.Commit} {
		if m := recv(t, quiet, 5*time.Second); m.kind != "checkpoint" || m.commit != want {
			t.Fatalf("live: got %s at %d, want checkpoint at %d", m.kind, m.commit, want)
		}
	}
}

// TestSubscriptionHandOver subscribes while writers append, so events land
// during the catch-up read and the switch to live; each must arrive once.
func TestSubscriptionHandOver(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	c := newClient(t, srv)
	prefix := streamName(t)
	const writers, perWriter = 4, 150

	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				var exp esdb.ExpectedRevision = esdb.NoStream{}
				if i > 0 {
					exp = esdb.Revision(uint64(i - 1))
				}
				_, err := c.AppendToStream(context.Background(), fmt.Sprintf("%s-%d", prefix, w), esdb.AppendToStreamOptions{ExpectedRevision: exp}, event("H"))
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	sub := subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.Start{}, Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{prefix}}})
	seen := map[uuid.UUID]bool{}
	next := map[string]uint64{}
	var last uint64
	for len(seen) < writers*perWriter {
		m := recv(t, sub, 10*time.Second)
		if m.kind != "event" {
			continue
		}
		e := m.event
		if seen[e.EventID] || e.Position.Commit <= last || e.EventNumber != next[e.StreamID] {
			t.Fatalf("duplicate or out of order: %s@%d pos %d after %d", e.StreamID, e.EventNumber, e.Position.Commit, last)
		}
		seen[e.EventID], last, next[e.StreamID] = true, e.Position.Commit, e.EventNumber+1
	}
	wg.Wait()
}

func TestLiveBufferOverflowFallsBackToCatchUp(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.WithLiveBuffer(3))
	c := newClient(t, srv)
	stream := streamName(t)
	sub := subscribeStream(t, c, stream, esdb.End{})
	if m := recv(t, sub, 5*time.Second); m.kind != "caughtup" {
		t.Fatalf("first message %s", m.kind)
	}
	burst := events(10, "Burst")
	appendOK(t, c, stream, esdb.NoStream{}, burst...)
	evs, _ := untilCaughtUp(t, sub) // the overflow makes it catch up, then say so again
	if !equalIDs(recordedIDs(evs), ids(burst)) {
		t.Fatalf("after overflow got %d events, want the 10 in order", len(evs))
	}
}

func TestDropAndStop(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	c := newClient(t, srv)
	subs := []*esdb.Subscription{
		subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.End{}}),
		subscribeStream(t, c, streamName(t), esdb.Start{}),
	}
	for _, sub := range subs {
		untilCaughtUp(t, sub)
	}
	if n := srv.DropSubscriptions(); n != 2 {
		t.Fatalf("dropped %d subscriptions, want 2", n)
	}
	for _, sub := range subs {
		if m := recv(t, sub, 5*time.Second); m.kind != "dropped" || status.Code(m.err) != codes.Unavailable {
			t.Fatalf("got %s (%v), want a drop with Unavailable", m.kind, m.err)
		}
	}

	live := subscribeAll(t, c, esdb.SubscribeToAllOptions{From: esdb.End{}})
	untilCaughtUp(t, live)
	done := make(chan struct{})
	go func() { srv.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop hangs on a live subscription")
	}
	if m := recv(t, live, 5*time.Second); m.kind != "dropped" || status.Code(m.err) != codes.Unavailable {
		t.Fatalf("after Stop got %s (%v), want a drop with Unavailable", m.kind, m.err)
	}
}
