package esdb_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/esdb"
	"github.com/rapport-crm/rapport/infra/esdb/esdbtest"
)

// target is a server the tests run against: the in-repository test server,
// or a real EventStoreDB when ESDB_URL is set.
type target struct {
	url string
	srv *esdbtest.Server // nil for a real EventStoreDB
}

const realSkip = "set ESDB_URL to run against a real EventStoreDB; see README"

// forEachTarget runs fn against a fresh test server and, when ESDB_URL is
// set, against a real EventStoreDB, so that the test server stays honest.
func forEachTarget(t *testing.T, fn func(t *testing.T, tg target)) {
	t.Run("testserver", func(t *testing.T) {
		srv := esdbtest.Start(t)
		fn(t, target{url: srv.ConnectionString(), srv: srv})
	})
	t.Run("real", func(t *testing.T) {
		url := os.Getenv("ESDB_URL")
		if url == "" {
			t.Skip(realSkip)
		}
		fn(t, target{url: url})
	})
}

func newStore(t testing.TB, url string) *esdb.Store {
	t.Helper()
	s, err := esdb.New(esdb.Config{
		ConnectionString:    url,
		ReconnectMinBackoff: 20 * time.Millisecond,
		ReconnectMaxBackoff: 500 * time.Millisecond,
		Logger:              testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testLogger logs through t until the test ends; goroutines that outlive
// it (a subscription pump finishing) must not log through a finished test.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// rawClient is the official client without the adapter, to write what the
// adapter refuses to (system events) and to look at $all as it is.
func rawClient(t testing.TB, url string) *esdbclient.Client {
	t.Helper()
	conf, err := esdbclient.ParseConnectionString(url)
	if err != nil {
		t.Fatal(err)
	}
	conf.Logger = esdbclient.NoopLogging()
	c, err := esdbclient.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func unique(prefix string) string {
	return fmt.Sprintf("%s%s-", prefix, strings.ReplaceAll(uuid.NewString()[:13], "-", ""))
}

func newEvent(label string) eventstore.EventData {
	return eventstore.EventData{ID: uuid.New(), Type: "AdapterTested", Data: fmt.Appendf(nil, `{"label":%q}`, label)}
}

func mustAppend(t testing.TB, s eventstore.Store, stream string, exp eventstore.ExpectedRevision, evs ...eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(ctxT(t), stream, exp, evs)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

// checkOrder fails on a message whose position goes back, or an event
// delivered twice.
func checkOrder(t testing.TB, msgs []eventstore.Message, after eventstore.Position) {
	t.Helper()
	last := after
	for i, m := range msgs {
		switch m.Kind {
		case eventstore.EventAppeared:
			if m.Position <= last || m.Position != m.Event.Position {
				t.Fatalf("message %d: event at %d after %d: duplicate or out of order", i, m.Position, last)
			}
			last = m.Position
		case eventstore.CheckpointReached:
			if m.Position < last {
				t.Fatalf("message %d: checkpoint %d before %d", i, m.Position, last)
			}
			last = m.Position
		}
	}
}

func headBefore(t testing.TB, s *esdb.Store) eventstore.Position {
	t.Helper()
	p, err := s.HeadPosition(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
