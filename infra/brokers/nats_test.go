package brokers_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/brokers"
)

// runNATS starts a NATS server with JetStream inside the test process.
func runNATS(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// TestFeedPublishedToNATSJetStream publishes a generated history through
// the relay, kills the relay halfway and starts another: the stream holds
// every event exactly once (JetStream drops the republished copies by
// Nats-Msg-Id), keyed by customer in the subject, in order per customer.
func TestFeedPublishedToNATSJetStream(t *testing.T) {
	url := runNATS(t)
	m := apptest.MustOpen(t, func(c *app.Config) { c.Webhooks.Off = true })
	ctx := context.Background()
	newPub := func() *brokers.JetStreamPublisher {
		p, err := brokers.NewJetStreamPublisher(ctx, brokers.JetStreamConfig{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		return p
	}
	m.Generate(t, 11, 300)
	want := feedEvents(t, m)

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	first := runRelay(t, m, "nats", newPub())
	waitFor(t, 20*time.Second, "some published", func() bool {
		cp, _ := brokers.Checkpoint(ctx, m.Pool, "nats")
		return cp > 0
	})
	first()
	runRelay(t, m, "nats", newPub())
	waitFor(t, 30*time.Second, "everything published", func() bool {
		cp, _ := brokers.Checkpoint(ctx, m.Pool, "nats")
		return cp >= want[len(want)-1].Position
	})
	stream, err := js.Stream(ctx, "RAPPORT")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := stream.Info(ctx)
	if int(info.State.Msgs) != len(want) {
		t.Fatalf("the stream holds %d messages, want %d (exactly once after dedup)", info.State.Msgs, len(want))
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		got []consumed
	)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		key := msg.Subject()[strings.LastIndex(msg.Subject(), ".")+1:]
		got = append(got, consumed{key: key, msgID: msg.Headers().Get(jetstream.MsgIDHeader), payload: msg.Data()})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	waitFor(t, 20*time.Second, "every message consumed", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= len(want) })
	mu.Lock()
	defer mu.Unlock()
	checkPublished(t, want, got)
	t.Logf("%d events published to NATS JetStream across a killed relay", len(want))
}

// TestTheServicePublishesToTheConfiguredBroker: with RAPPORT_BROKERS
// naming a NATS server, the service runs the relay itself.
func TestTheServicePublishesToTheConfiguredBroker(t *testing.T) {
	url := runNATS(t)
	m := apptest.MustOpen(t, func(c *app.Config) {
		c.Webhooks.Off = true
		c.Brokers = []string{url + "?stream=APP&subject=app.events&name=nats-app"}
	})
	h := m.Generate(t, 13, 30)
	ctx := context.Background()
	waitFor(t, 20*time.Second, "published", func() bool {
		cp, _ := brokers.Checkpoint(ctx, m.Pool, "nats-app")
		return cp >= uint64(h.Last)
	})
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(ctx, "APP")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := stream.Info(ctx)
	if want := len(feedEvents(t, m)); int(info.State.Msgs) != want {
		t.Fatalf("stream APP holds %d messages, want %d", info.State.Msgs, want)
	}
}
