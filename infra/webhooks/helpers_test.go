package webhooks_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/integration"
	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/webhooks"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// openService runs the service without its own deliverer: each test runs
// (and kills) deliverers itself.
func openService(t *testing.T) *apptest.Main {
	t.Helper()
	return apptest.MustOpen(t, func(c *app.Config) {
		c.Webhooks.Off = true
		c.Webhooks.AllowTargets = loopback
	})
}

// received is one delivery a receiver accepted.
type received struct {
	webhookID string
	event     integration.Event
	at        time.Time
}

// receiver is a real HTTP endpoint that verifies every signature and
// behaves as behave says for the n-th request (from 1): answer status
// after delay.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret atomic.Value // string
	behave func(n int64) (status int, delay time.Duration)

	requests   atomic.Int64
	inFlight   atomic.Int64
	maxInFight atomic.Int64
	badSigs    atomic.Int64

	mu  sync.Mutex
	got []received
}

func newReceiver(t *testing.T, behave func(n int64) (int, time.Duration)) *receiver {
	r := &receiver{t: t, behave: behave}
	r.secret.Store("")
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	n := r.requests.Add(1)
	cur := r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	for {
		m := r.maxInFight.Load()
		if cur <= m || r.maxInFight.CompareAndSwap(m, cur) {
			break
		}
	}
	body, _ := io.ReadAll(req.Body)
	status, delay := http.StatusOK, time.Duration(0)
	if r.behave != nil {
		status, delay = r.behave(n)
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
			return
		}
	}
	err := webhooks.Verify(r.secret.Load().(string), req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"),
		req.Header.Get("webhook-signature"), body, time.Now(), 5*time.Minute)
	if err != nil {
		r.badSigs.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if status >= 200 && status < 300 {
		var e integration.Event
		if err := json.Unmarshal(body, &e); err != nil {
			r.t.Errorf("receiver: %v: %s", err, body)
		}
		r.mu.Lock()
		r.got = append(r.got, received{webhookID: req.Header.Get("webhook-id"), event: e, at: time.Now()})
		r.mu.Unlock()
	}
	w.WriteHeader(status)
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// subscribe creates a subscription to the receiver from the feed's start.
func subscribe(t *testing.T, m *apptest.Main, r *receiver, types ...string) webhooks.Created {
	t.Helper()
	c, err := m.Webhooks.Create(context.Background(), webhooks.NewSubscription{URL: r.srv.URL + "/hook", EventTypes: types}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.secret.Store(c.Secret)
	return c
}

// runDeliverer runs a deliverer with its own pool; kill stops it as a
// crash would: its connections closed under it, nothing flushed.
func runDeliverer(t *testing.T, m *apptest.Main, tweak func(*webhooks.Config)) (kill func()) {
	t.Helper()
	pcfg, err := pgxpool.ParseConfig(m.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.MaxConns = 4 // the machine's PostgreSQL is shared
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := webhooks.NewSealer(m.Keyring.IndexSecret())
	if err != nil {
		t.Fatal(err)
	}
	cfg := webhooks.Config{Pool: pool, Sealer: sealer, Targets: webhooks.Targets{Allow: loopback},
		Timeout: 2 * time.Second, BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, Poll: 50 * time.Millisecond}
	if tweak != nil {
		tweak(&cfg)
	}
	d, err := webhooks.NewDeliverer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Run(ctx)
	}()
	var once sync.Once
	kill = func() {
		once.Do(func() {
			pool.Reset() // every connection closed at once, the lock's too
			cancel()
			<-done
			pool.Close()
		})
	}
	t.Cleanup(kill)
	return kill
}

// waitFor polls cond until it holds or the timeout passes.
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

// feedEvents reads the whole feed.
func feedEvents(t *testing.T, m *apptest.Main) []integration.Event {
	t.Helper()
	var all []integration.Event
	after := uint64(0)
	for {
		page, err := feedQueries(m).After(context.Background(), after, nil, 1000)
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

// checkOrderPerCustomer requires that each customer's first receipts of
// its events came in log order and that every event of want arrived.
func checkDelivered(t *testing.T, want []integration.Event, got []received) {
	t.Helper()
	first := map[string]bool{}
	last := map[string]uint64{}
	for _, g := range got {
		if first[g.webhookID] {
			continue // a redelivery (at least once)
		}
		first[g.webhookID] = true
		c := g.event.CustomerID.String()
		if p, ok := last[c]; ok && g.event.Position < p {
			t.Fatalf("customer %s: position %d delivered after %d", c, g.event.Position, p)
		}
		last[c] = g.event.Position
		if g.webhookID != g.event.ID.String() {
			t.Fatalf("webhook-id %s for event %s", g.webhookID, g.event.ID)
		}
	}
	for _, e := range want {
		if !first[e.ID.String()] {
			t.Fatalf("event %s (%s at %d) was never delivered; %d of %d were", e.ID, e.Type, e.Position, len(first), len(want))
		}
	}
	if len(first) != len(want) {
		t.Fatalf("%d distinct events delivered, want %d", len(first), len(want))
	}
}

func pendingCount(t *testing.T, m *apptest.Main) int {
	t.Helper()
	var n int
	if err := m.Pool.QueryRow(context.Background(), `SELECT count(*) FROM rapport.webhook_deliveries WHERE NOT delivered`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// settled says every subscription has queued the whole feed and nothing
// is pending: a pending count alone is 0 before the queueing catches up.
func settled(t *testing.T, m *apptest.Main) bool {
	t.Helper()
	var behind bool
	if err := m.Pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM rapport.webhook_subscriptions
		WHERE checkpoint < (SELECT coalesce(max(position), 0) FROM readmodels.feed))`).Scan(&behind); err != nil {
		t.Fatal(err)
	}
	return !behind && pendingCount(t, m) == 0
}

// queuedAll says every subscription has queued the whole feed.
func queuedAll(t *testing.T, m *apptest.Main) bool {
	t.Helper()
	var behind bool
	if err := m.Pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM rapport.webhook_subscriptions
		WHERE checkpoint < (SELECT coalesce(max(position), 0) FROM readmodels.feed))`).Scan(&behind); err != nil {
		t.Fatal(err)
	}
	return !behind
}

// checkDeliveredIn is checkDelivered that, on failure, says what the
// database holds of the events not received.
func checkDeliveredIn(t *testing.T, m *apptest.Main, want []integration.Event, got []received) {
	t.Helper()
	seen := map[string]bool{}
	for _, g := range got {
		seen[g.webhookID] = true
	}
	for _, e := range want {
		if seen[e.ID.String()] {
			continue
		}
		rows, _ := m.Pool.Query(context.Background(), `SELECT d.id, d.delivered, d.attempts, d.last_status, coalesce(d.last_error, ''), s.checkpoint FROM rapport.webhook_deliveries d JOIN rapport.webhook_subscriptions s ON s.id = d.subscription_id WHERE event_id = $1`, e.ID)
		n := 0
		for rows.Next() {
			var (
				id, attempts int
				delivered    bool
				status       *int
				errText      string
				cp           int64
			)
			_ = rows.Scan(&id, &delivered, &attempts, &status, &errText, &cp)
			t.Logf("missing %s at %d: delivery %d delivered %v attempts %d status %v error %q checkpoint %d", e.ID, e.Position, id, delivered, attempts, status, errText, cp)
			n++
		}
		rows.Close()
		if n == 0 {
			t.Logf("missing %s at %d: never queued", e.ID, e.Position)
		}
	}
	checkDelivered(t, want, got)
}
