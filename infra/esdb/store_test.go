package esdb_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/domain/eventstore/eventstoretest"
	"github.com/rapport-crm/rapport/infra/esdb"
)

func TestConfigValidate(t *testing.T) {
	if _, err := esdb.New(esdb.Config{}); err == nil || !strings.HasPrefix(err.Error(), "esdb: ") {
		t.Fatalf("empty config: %v", err)
	}
	if _, err := esdb.New(esdb.Config{ConnectionString: "esdb://localhost:2113", ReconnectMinBackoff: time.Second, ReconnectMaxBackoff: time.Millisecond}); err == nil {
		t.Fatal("inverted backoff accepted")
	}
	s, err := esdb.New(esdb.Config{ConnectionString: "esdb://localhost:2113?tls=false"})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if _, err := s.ReadAll(context.Background(), eventstore.ReadAllOptions{Limit: 1}); err == nil {
		t.Fatal("read after Close succeeded")
	}
}

func TestWrongExpectedRevisionIsTyped(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		s := newStore(t, tg.url)
		stream := unique("wev") + "s"
		cases := []struct {
			setup   int // events in the stream before
			exp     eventstore.ExpectedRevision
			current int64
		}{
			{0, eventstore.StreamExists, eventstore.NoRevision},
			{0, eventstore.Exact(3), eventstore.NoRevision},
			{3, eventstore.NoStream, 2},
			{3, eventstore.Exact(7), 2},
			{3, eventstore.Exact(0), 2},
		}
		for i, c := range cases {
			name := stream + string(rune('a'+i))
			for j := range c.setup {
				mustAppend(t, s, name, eventstore.Any, newEvent(string(rune('0'+j))))
			}
			_, err := s.Append(ctxT(t), name, c.exp, []eventstore.EventData{newEvent("x")})
			var wrong *eventstore.WrongExpectedRevisionError
			if !errors.As(err, &wrong) || wrong.Stream != name || wrong.Current != c.current || wrong.Expected != c.exp {
				t.Errorf("case %d: err = %#v, want current %d", i, err, c.current)
			}
		}
	})
}

func TestAppendTooLarge(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		s := newStore(t, tg.url)
		big := []byte(`"` + strings.Repeat("x", eventstore.MaxAppendSize) + `"`)
		_, err := s.Append(ctxT(t), unique("big")+"s", eventstore.Any, []eventstore.EventData{{ID: uuid.New(), Type: "Big", Data: big}})
		if !errors.Is(err, eventstore.ErrAppendTooLarge) || !strings.HasPrefix(err.Error(), "esdb: ") {
			t.Fatalf("err = %v, want ErrAppendTooLarge", err)
		}
	})
}

// TestSystemEventsNeverReachConsumers writes system events next to ours,
// including one in a $-stream with an ordinary type, which only the
// adapter's own check (not the server's type filter) can stop.
func TestSystemEventsNeverReachConsumers(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		s := newStore(t, tg.url)
		raw := rawClient(t, tg.url)
		prefix := unique("sys")
		start := headBefore(t, s)
		writeSystem := func() {
			t.Helper()
			for _, e := range []esdbclient.EventData{
				{EventID: uuid.New(), EventType: "Ordinary", ContentType: esdbclient.ContentTypeJson, Data: []byte(`{}`)},
				{EventID: uuid.New(), EventType: "$internal", ContentType: esdbclient.ContentTypeJson, Data: []byte(`{}`)},
			} {
				if _, err := raw.AppendToStream(ctxT(t), "$"+prefix+"sys", esdbclient.AppendToStreamOptions{}, e); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := raw.AppendToStream(ctxT(t), prefix+"typed", esdbclient.AppendToStreamOptions{}, esdbclient.EventData{
				EventID: uuid.New(), EventType: "$typed", ContentType: esdbclient.ContentTypeJson, Data: []byte(`{}`),
			}); err != nil {
				t.Fatal(err)
			}
		}
		all := eventstoretest.Collect(t, s, eventstore.SubscribeOptions{From: start})
		mine := eventstoretest.Collect(t, s, eventstore.SubscribeOptions{From: start, StreamPrefixes: []string{prefix, "$" + prefix}})

		writeSystem()
		var want []uuid.UUID
		for i := range 3 {
			e := newEvent(string(rune('a' + i)))
			mustAppend(t, s, prefix+"user", eventstore.Any, e)
			want = append(want, e.ID)
		}
		writeSystem()

		// HeadPosition skips the system events written last.
		tail, err := s.ReadAll(ctxT(t), eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
		if err != nil || len(tail) != 1 || tail[0].ID != want[2] {
			t.Fatalf("ReadAll backwards from End: %v %v, want our last event", tail, err)
		}
		if head := headBefore(t, s); head != tail[0].Position {
			t.Fatalf("HeadPosition = %d, want %d", head, tail[0].Position)
		}

		own, err := s.ReadAll(ctxT(t), eventstore.ReadAllOptions{From: start, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []*eventstoretest.Collector{all, mine} {
			msgs := c.WaitFor("our events", func(msgs []eventstore.Message) bool { return len(eventstoretest.EventsOf(msgs, prefix)) >= 3 })
			checkOrder(t, msgs, start)
			own = append(own, eventstoretest.EventsOf(msgs, "")...)
		}
		var got []uuid.UUID
		for _, e := range own {
			if strings.HasPrefix(e.Stream, "$") || strings.HasPrefix(e.Type, "$") {
				t.Fatalf("system event %s/%s reached a consumer", e.Stream, e.Type)
			}
			if strings.HasPrefix(e.Stream, prefix) {
				got = append(got, e.ID)
			}
		}
		if len(got) != 9 || got[0] != want[0] || got[8] != want[2] {
			t.Fatalf("got %d of our events, want 3 from each of ReadAll and two subscriptions", len(got))
		}

		if tg.srv != nil { // the test server seeds system events: $all from Start has some
			raws, err := s.ReadAll(ctxT(t), eventstore.ReadAllOptions{From: eventstore.Start, Limit: math.MaxInt32})
			if err != nil || len(raws) == 0 {
				t.Fatalf("ReadAll from Start: %d events, %v", len(raws), err)
			}
			if strings.HasPrefix(raws[0].Stream, "$") {
				t.Fatal("ReadAll from Start returned a seeded system event")
			}
		}
	})
}

func TestSubscribeFromEndIsLiveOnly(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		s := newStore(t, tg.url)
		prefix := unique("end")
		mustAppend(t, s, prefix+"s", eventstore.NoStream, newEvent("before"))
		c := eventstoretest.Collect(t, s, eventstore.SubscribeOptions{From: eventstore.End, StreamPrefixes: []string{prefix}})
		c.WaitFor("caught up", func(msgs []eventstore.Message) bool {
			for _, m := range msgs {
				if m.Kind == eventstore.CaughtUp {
					return true
				}
			}
			return false
		})
		after := newEvent("after")
		mustAppend(t, s, prefix+"s", eventstore.Exact(0), after)
		msgs := c.WaitFor("the live event", func(msgs []eventstore.Message) bool { return len(eventstoretest.EventsOf(msgs, prefix)) >= 1 })
		if got := eventstoretest.EventsOf(msgs, prefix); len(got) != 1 || got[0].ID != after.ID {
			t.Fatalf("from End got %d events, want only the later one", len(got))
		}
	})
}

// TestCheckpointsAdvanceResumePosition follows a consumer whose filter
// matches nothing for a long stretch: its checkpoints must move its resume
// position past the unwanted events, and resuming there must lose nothing.
func TestCheckpointsAdvanceResumePosition(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		s := newStore(t, tg.url)
		prefix := unique("ckpt")
		start := headBefore(t, s)
		c := eventstoretest.Collect(t, s, eventstore.SubscribeOptions{From: start, StreamPrefixes: []string{prefix + "rare"}})
		var last eventstore.AppendResult
		for i := range 100 {
			last = mustAppend(t, s, prefix+"common", eventstore.Any, newEvent(string(rune('a'+i%26))))
		}
		// 100 considered events, a checkpoint every 32: at least 3.
		msgs := c.WaitFor("three checkpoints", func(msgs []eventstore.Message) bool {
			n := 0
			for _, m := range msgs {
				if m.Kind == eventstore.CheckpointReached && m.Position > start {
					n++
				}
			}
			return n >= 3
		})
		checkOrder(t, msgs, start)
		var resume eventstore.Position
		for _, m := range msgs {
			if m.Kind == eventstore.EventAppeared {
				t.Fatalf("unexpected event %s", m.Event.Stream)
			}
			if m.Kind == eventstore.CheckpointReached {
				resume = m.Position
			}
		}
		if resume <= start || (tg.srv != nil && resume > last.Position) {
			t.Fatalf("resume position %d, want within (%d, %d]", resume, start, last.Position)
		}
		c.Stop()

		rare := newEvent("rare")
		mustAppend(t, s, prefix+"rare", eventstore.NoStream, rare)
		resumed := eventstoretest.Collect(t, s, eventstore.SubscribeOptions{From: resume, StreamPrefixes: []string{prefix + "rare"}})
		msgs = resumed.WaitFor("the rare event", func(msgs []eventstore.Message) bool { return len(eventstoretest.EventsOf(msgs, prefix)) >= 1 })
		checkOrder(t, msgs, resume)
		if got := eventstoretest.EventsOf(msgs, prefix); len(got) != 1 || got[0].ID != rare.ID {
			t.Fatalf("resumed: %d events, want the rare one", len(got))
		}
	})
}

func TestReadStreamEdges(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		s := newStore(t, tg.url)
		stream := unique("edges") + "s"
		mustAppend(t, s, stream, eventstore.NoStream, newEvent("0"), newEvent("1"), newEvent("2"))
		last, err := s.ReadStream(ctxT(t), stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: eventstore.LastRevision, Limit: 5})
		if err != nil || len(last) != 1 || last[0].Revision != 2 {
			t.Fatalf("forwards from LastRevision: %v %v, want the last event only", last, err)
		}
		if _, err := s.ReadStream(ctxT(t), stream, eventstore.ReadStreamOptions{Limit: 0}); err == nil {
			t.Fatal("limit 0 accepted")
		}
		if _, err := s.ReadStream(ctxT(t), unique("none")+"s", eventstore.ReadStreamOptions{From: eventstore.LastRevision, Limit: 1}); !errors.Is(err, eventstore.ErrStreamNotFound) {
			t.Fatalf("missing stream from LastRevision: %v", err)
		}
	})
}
