package esdbtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rapport-crm/rapport/infra/esdb/esdbtest"
)

func TestInjectedFaults(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	c := newClient(t, srv)
	stream := streamName(t)

	srv.FailNext(esdbtest.MethodAppend, 2)
	e := event("F")
	for range 2 {
		if _, err := c.AppendToStream(ctxT(t), stream, esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, e); code(err) != esdb.ErrorUnavailable {
			t.Fatalf("err = %v, want Unavailable", err)
		}
	}
	appendOK(t, c, stream, esdb.NoStream{}, e)

	// A lost acknowledgement: written, reported as failed, retried safely.
	srv.InjectFault(esdbtest.MethodAppend, esdbtest.Fault{AfterCommit: true})
	lost := event("Lost")
	if _, err := c.AppendToStream(ctxT(t), stream, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(0)}, lost); code(err) != esdb.ErrorUnavailable {
		t.Fatalf("err = %v, want Unavailable", err)
	}
	if res := appendOK(t, c, stream, esdb.Revision(0), lost); res.NextExpectedVersion != 1 {
		t.Fatalf("retry after a lost ack = %+v, want revision 1", res)
	}

	srv.InjectFault(esdbtest.MethodRead, esdbtest.Fault{Code: codes.PermissionDenied})
	if _, err := collect(c.ReadStream(ctxT(t), stream, esdb.ReadStreamOptions{}, 10)); code(err) != esdb.ErrorCodeAccessDenied {
		t.Fatalf("read err = %v, want AccessDenied", err)
	}
	srv.FailNext(esdbtest.MethodSubscribe, 1)
	if _, err := c.SubscribeToAll(context.Background(), esdb.SubscribeToAllOptions{}); code(err) != esdb.ErrorUnavailable {
		t.Fatalf("subscribe err = %v, want Unavailable", err)
	}
	if n := srv.Calls(esdbtest.MethodSubscribe); n != 1 {
		t.Fatalf("Calls(Subscribe) = %d, want 1", n)
	}

	srv.SetDelay(esdbtest.MethodAppend, 150*time.Millisecond)
	start := time.Now()
	appendOK(t, c, stream, esdb.Any{}, event("Slow"))
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("delayed append took %v", d)
	}
	srv.SetDelay(esdbtest.MethodAppend, 0)
}

func TestRestartKeepsDataAndPort(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t)
	c := newClient(t, srv)
	stream := streamName(t)
	first := appendOK(t, c, stream, esdb.NoStream{}, event("Before"))
	sub := subscribeStream(t, c, stream, esdb.Start{})
	untilCaughtUp(t, sub)
	addr := srv.Addr()

	if err := srv.RestartAfter(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", srv.Addr(), addr)
	}
	if m := recv(t, sub, 5*time.Second); m.kind != "dropped" || status.Code(m.err) != codes.Unavailable {
		t.Fatalf("subscription across a restart: %s (%v), want a drop with Unavailable", m.kind, m.err)
	}
	// The client notices the broken connection on its next call at the
	// latest, then rediscovers; the data is still there.
	var second *esdb.WriteResult
	for i := 0; ; i++ {
		res, err := c.AppendToStream(ctxT(t), stream, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(0)}, event("After"))
		if err == nil {
			second = res
			break
		}
		if code(err) != esdb.ErrorUnavailable || i > 5 {
			t.Fatalf("append after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if second.NextExpectedVersion != 1 || second.CommitPosition <= first.CommitPosition {
		t.Fatalf("after restart: %+v, want revision 1 after position %d", second, first.CommitPosition)
	}
}

// TestKeepaliveIdleSubscription checks the keepalive policy: the client
// pings every 10 s even when idle, and a server with grpc-go's default
// policy answers GOAWAY too_many_pings after about 30 s, killing every
// subscription on the connection.
func TestKeepaliveIdleSubscription(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 35 s")
	}
	t.Parallel()
	srv := esdbtest.Start(t)
	c := newClient(t, srv)
	stream := streamName(t)
	sub := subscribeStream(t, c, stream, esdb.Start{})
	untilCaughtUp(t, sub)

	time.Sleep(35 * time.Second)
	e := event("StillThere")
	appendOK(t, c, stream, esdb.NoStream{}, e)
	if m := recv(t, sub, 5*time.Second); m.kind != "event" || m.event.EventID != e.EventID {
		t.Fatalf("after 35 s idle: %s (%v), want the event", m.kind, m.err)
	}
}
