package esdbtest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rapport-crm/rapport/infra/esdb/esdbtest"
)

// newClient connects the real client to srv, logging through t.
func newClient(t testing.TB, srv *esdbtest.Server) *esdb.Client {
	t.Helper()
	return newClientFor(t, srv.ConnectionString())
}

func newClientFor(t testing.TB, conn string) *esdb.Client {
	t.Helper()
	conf, err := esdb.ParseConnectionString(conn)
	if err != nil {
		t.Fatal(err)
	}
	conf.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawConn is a plain gRPC connection, for requests the client cannot make.
func rawConn(t *testing.T, srv *esdbtest.Server) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func streamName(t testing.TB) string {
	return fmt.Sprintf("test-%s", uuid.NewString()[:8])
}

func event(eventType string) esdb.EventData {
	return esdb.EventData{
		EventID:     uuid.New(),
		EventType:   eventType,
		ContentType: esdb.ContentTypeJson,
		Data:        []byte(`{"n":1}`),
		Metadata:    []byte(`{"m":true}`),
	}
}

func events(n int, eventType string) []esdb.EventData {
	out := make([]esdb.EventData, n)
	for i := range out {
		out[i] = event(eventType)
	}
	return out
}

func appendOK(t testing.TB, c *esdb.Client, stream string, exp esdb.ExpectedRevision, evs ...esdb.EventData) *esdb.WriteResult {
	t.Helper()
	res, err := c.AppendToStream(ctxT(t), stream, esdb.AppendToStreamOptions{ExpectedRevision: exp}, evs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

// collect drains a read.
func collect(rs *esdb.ReadStream, err error) ([]*esdb.ResolvedEvent, error) {
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*esdb.ResolvedEvent
	for {
		e, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

func code(err error) esdb.ErrorCode {
	var e *esdb.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return -1
}

// recvKind is one subscription message reduced to what tests compare.
type recvKind struct {
	kind   string // event, checkpoint, caughtup, dropped
	event  *esdb.RecordedEvent
	commit uint64
	err    error
}

// recv waits for the next subscription message, failing the test after d.
func recv(t testing.TB, sub *esdb.Subscription, d time.Duration) recvKind {
	t.Helper()
	ch := make(chan *esdb.SubscriptionEvent, 1)
	go func() { ch <- sub.Recv() }()
	select {
	case ev := <-ch:
		switch {
		case ev.EventAppeared != nil:
			e := ev.EventAppeared.OriginalEvent()
			return recvKind{kind: "event", event: e, commit: e.Position.Commit}
		case ev.CheckPointReached != nil:
			return recvKind{kind: "checkpoint", commit: ev.CheckPointReached.Commit}
		case ev.CaughtUp != nil:
			return recvKind{kind: "caughtup"}
		case ev.SubscriptionDropped != nil:
			return recvKind{kind: "dropped", err: ev.SubscriptionDropped.Error}
		}
		return recvKind{kind: "other"}
	case <-time.After(d):
		t.Fatalf("no subscription message within %v", d)
		return recvKind{}
	}
}

// untilCaughtUp returns the events and checkpoints received before caught_up.
func untilCaughtUp(t testing.TB, sub *esdb.Subscription) (evs []*esdb.RecordedEvent, checkpoints []uint64) {
	t.Helper()
	for {
		m := recv(t, sub, 10*time.Second)
		switch m.kind {
		case "event":
			evs = append(evs, m.event)
		case "checkpoint":
			checkpoints = append(checkpoints, m.commit)
		case "caughtup":
			return evs, checkpoints
		default:
			t.Fatalf("unexpected %s: %v", m.kind, m.err)
		}
	}
}

func ids(evs []esdb.EventData) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.EventID
	}
	return out
}

func recordedIDs(evs []*esdb.RecordedEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.EventID
	}
	return out
}

func resolvedIDs(evs []*esdb.ResolvedEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.OriginalEvent().EventID
	}
	return out
}

func equalIDs(a, b []uuid.UUID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
