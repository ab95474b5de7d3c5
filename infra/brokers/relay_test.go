package brokers_test

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/integration"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/brokers"
	"github.com/rapport-crm/rapport/readmodels/feed"
)

// consumed is one message a test consumer took from a broker.
type consumed struct {
	key     string // the routing key or subject's customer token
	msgID   string
	payload []byte
}

// runRelay runs a relay with its own pool; stop ends it as a crash would.
func runRelay(t *testing.T, m *apptest.Main, name string, pub message.Publisher) (stop func()) {
	t.Helper()
	pcfg, err := pgxpool.ParseConfig(m.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := brokers.NewRelay(brokers.RelayConfig{Name: name, Pool: pool, Publisher: pub, Batch: 50, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			pool.Reset()
			cancel()
			<-done
			pool.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

func feedEvents(t *testing.T, m *apptest.Main) []integration.Event {
	t.Helper()
	var all []integration.Event
	after := uint64(0)
	for {
		page, err := feed.NewQueries(m.Pool).After(context.Background(), after, nil, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		after = page[len(page)-1].Position
	}
}

// checkPublished requires every feed event among the messages, keyed by
// its customer, with its id, and each customer's first copies in order.
func checkPublished(t *testing.T, want []integration.Event, got []consumed) {
	t.Helper()
	seen := map[string]bool{}
	last := map[string]uint64{}
	for _, c := range got {
		var e integration.Event
		if err := json.Unmarshal(c.payload, &e); err != nil {
			t.Fatalf("payload %s: %v", c.payload, err)
		}
		if c.key != e.CustomerID.String() || c.msgID != e.ID.String() {
			t.Fatalf("message keyed %q with id %q carries event %s of customer %s", c.key, c.msgID, e.ID, e.CustomerID)
		}
		if seen[c.msgID] {
			continue
		}
		seen[c.msgID] = true
		if p, ok := last[c.key]; ok && e.Position < p {
			t.Fatalf("customer %s: %d after %d", c.key, e.Position, p)
		}
		last[c.key] = e.Position
	}
	for _, e := range want {
		if !seen[e.ID.String()] {
			t.Fatalf("event %s at %d was not published (%d of %d were)", e.ID, e.Position, len(seen), len(want))
		}
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func required(name string) bool { return os.Getenv(name) == "required" }
