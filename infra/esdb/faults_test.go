package esdb_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/domain/eventstore/eventstoretest"
	"github.com/rapport-crm/rapport/infra/esdb/esdbtest"
)

// Fault injection needs the test server; these tests have no real-server
// variant.

// appendRetrying appends like a careful command handler: on ErrUnavailable
// the outcome is unknown, so it retries the same events with the same
// expectation until the store answers.
func appendRetrying(s eventstore.Store, stream string, exp eventstore.ExpectedRevision, e eventstore.EventData) (eventstore.AppendResult, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := s.Append(ctx, stream, exp, []eventstore.EventData{e})
		cancel()
		if err == nil || !errors.Is(err, eventstore.ErrUnavailable) || time.Now().After(deadline) {
			return res, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSubscriptionDropResumesWithoutLossOrDuplicate(t *testing.T) {
	srv := esdbtest.Start(t)
	s := newStore(t, srv.ConnectionString())
	prefix := unique("drop")
	start := headBefore(t, s)
	c := eventstoretest.Collect(t, s, eventstore.SubscribeOptions{From: start, StreamPrefixes: []string{prefix}})
	var want []uuid.UUID
	write := func(n int) {
		for range n {
			e := newEvent("e")
			mustAppend(t, s, prefix+"s", eventstore.Any, e)
			want = append(want, e.ID)
		}
	}
	write(40)
	c.WaitFor("some events", func(msgs []eventstore.Message) bool { return len(eventstoretest.EventsOf(msgs, prefix)) >= 20 })
	srv.DropSubscriptions()
	write(20)
	srv.FailNext(esdbtest.MethodSubscribe, 3) // the resubscription fails a few times too
	srv.DropSubscriptions()
	write(20)

	c.WaitFor("every event", func(msgs []eventstore.Message) bool { return len(eventstoretest.EventsOf(msgs, prefix)) >= len(want) })
	time.Sleep(100 * time.Millisecond)
	msgs := c.WaitFor("nothing more", func([]eventstore.Message) bool { return true })
	checkOrder(t, msgs, start)
	got := eventstoretest.EventsOf(msgs, prefix)
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i] {
			t.Fatalf("event %d differs", i)
		}
	}
	if n := srv.Calls(esdbtest.MethodSubscribe); n < 5 {
		t.Fatalf("%d subscribe calls, want the first, the 3 refused and at least one more", n)
	}
}

// TestRestartUnderLoad restarts the server while writers append and a
// subscriber reads, once briefly and once for longer than the client's
// discovery window (after which the client has closed itself and the store
// must replace it). A lost acknowledgement is thrown in. Every event must be
// stored once, in order, and delivered once.
func TestRestartUnderLoad(t *testing.T) {
	srv := esdbtest.Start(t)
	s := newStore(t, srv.ConnectionString())
	prefix := unique("restart")
	start := headBefore(t, s)
	c := eventstoretest.Collect(t, s, eventstore.SubscribeOptions{From: start, StreamPrefixes: []string{prefix}})

	const writers, perWriter = 4, 60
	written := make([][]uuid.UUID, writers)
	var wg sync.WaitGroup
	var progress sync.WaitGroup
	progress.Add(writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("%s%d", prefix, w)
			for i := range perWriter {
				if i == perWriter/3 {
					progress.Done()
				}
				exp := eventstore.NoStream
				if i > 0 {
					exp = eventstore.Exact(uint64(i - 1))
				}
				e := newEvent(fmt.Sprint(i))
				res, err := appendRetrying(s, stream, exp, e)
				if err != nil {
					t.Errorf("writer %d append %d: %v", w, i, err)
					return
				}
				if res.Revision != uint64(i) {
					t.Errorf("writer %d append %d: revision %d", w, i, res.Revision)
					return
				}
				written[w] = append(written[w], e.ID)
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	progress.Wait()
	srv.InjectFault(esdbtest.MethodAppend, esdbtest.Fault{AfterCommit: true})
	if err := srv.RestartAfter(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := srv.RestartAfter(3 * time.Second); err != nil { // longer than the ~2 s discovery window
		t.Fatal(err)
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	total := writers * perWriter
	msgs := c.WaitFor("every event", func(msgs []eventstore.Message) bool { return len(eventstoretest.EventsOf(msgs, prefix)) >= total })
	checkOrder(t, msgs, start)
	seen := map[uuid.UUID]bool{}
	for _, e := range eventstoretest.EventsOf(msgs, prefix) {
		if seen[e.ID] {
			t.Fatalf("event %s delivered twice", e.ID)
		}
		seen[e.ID] = true
	}
	for w, ids := range written {
		stored, err := s.ReadStream(ctxT(t), fmt.Sprintf("%s%d", prefix, w), eventstore.ReadStreamOptions{Limit: 1000})
		if err != nil || len(stored) != perWriter {
			t.Fatalf("writer %d: %d events stored (%v), want %d", w, len(stored), err, perWriter)
		}
		for i, e := range stored {
			if e.ID != ids[i] || !seen[e.ID] {
				t.Fatalf("writer %d event %d: stored %s, written %s, delivered %v", w, i, e.ID, ids[i], seen[e.ID])
			}
		}
	}
}

// TestFellBehindSubscriberLosesNothing makes the server's live buffer tiny,
// so a burst throws the subscription back to catch-up, server-side.
func TestFellBehindSubscriberLosesNothing(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.WithLiveBuffer(2))
	s := newStore(t, srv.ConnectionString())
	prefix := unique("behind")
	c := eventstoretest.Collect(t, s, eventstore.SubscribeOptions{From: eventstore.End, StreamPrefixes: []string{prefix}})
	c.WaitFor("caught up", func(msgs []eventstore.Message) bool { return len(msgs) > 0 })
	var evs []eventstore.EventData
	for i := range 50 {
		evs = append(evs, newEvent(fmt.Sprint(i)))
	}
	mustAppend(t, s, prefix+"s", eventstore.NoStream, evs...)
	msgs := c.WaitFor("the burst", func(msgs []eventstore.Message) bool { return len(eventstoretest.EventsOf(msgs, prefix)) >= 50 })
	checkOrder(t, msgs, 0)
	for i, e := range eventstoretest.EventsOf(msgs, prefix) {
		if e.ID != evs[i].ID {
			t.Fatalf("event %d differs", i)
		}
	}
}

func TestAppendFaultsSurfaceAsUnavailable(t *testing.T) {
	srv := esdbtest.Start(t)
	s := newStore(t, srv.ConnectionString())
	stream := unique("unavail") + "s"
	srv.FailNext(esdbtest.MethodAppend, 1)
	e := newEvent("x")
	if _, err := s.Append(ctxT(t), stream, eventstore.NoStream, []eventstore.EventData{e}); !errors.Is(err, eventstore.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	srv.SetDelay(esdbtest.MethodRead, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Limit: 1}); err == nil || errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("read past the caller's deadline: %v", err)
	}
	srv.SetDelay(esdbtest.MethodRead, 0)
	mustAppend(t, s, stream, eventstore.NoStream, e)
}

// TestOutageIsBoundedByContext checks the work-arounds for the client's
// connection handling: during an outage its calls wait for rediscovery
// whatever their context says, and closing it under a waiting call panics.
func TestOutageIsBoundedByContext(t *testing.T) {
	srv := esdbtest.Start(t)
	s := newStore(t, srv.ConnectionString())
	stream := unique("outage") + "s"
	mustAppend(t, s, stream, eventstore.NoStream, newEvent("before"))
	restarted := make(chan error, 1)
	go func() { restarted <- srv.RestartAfter(1500 * time.Millisecond) }()
	time.Sleep(100 * time.Millisecond)

	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := s.Append(ctx, stream, eventstore.Any, []eventstore.EventData{newEvent(fmt.Sprint(i))})
			if !errors.Is(err, eventstore.ErrUnavailable) || time.Since(start) > time.Second {
				t.Errorf("append during the outage: %v after %v, want ErrUnavailable within the deadline", err, time.Since(start))
			}
		}()
	}
	wg.Wait()

	// A call stuck in rediscovery, then Close: nothing may panic, and the
	// call completes once the node is back.
	stuck := make(chan error, 1)
	go func() {
		_, err := s.Append(context.Background(), stream, eventstore.Any, []eventstore.EventData{newEvent("stuck")})
		stuck <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	select {
	case <-stuck:
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck call did not complete after the node came back")
	}
	if _, err := s.ReadStream(ctxT(t), stream, eventstore.ReadStreamOptions{Limit: 1}); err == nil {
		t.Fatal("read after Close succeeded")
	}
}
