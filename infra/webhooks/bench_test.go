package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/webhooks"
)

// TestWebhookDeliveryFigures measures, in one run, the deliverer's
// throughput to a local receiver against a baseline of plain signed POSTs
// of the same events with the same concurrency (16), and the latency from
// a command's answer to its webhook's arrival (p50, p99). Run with
// RAPPORT_WEBHOOK_BENCH=1 (and -v); the figures are logged.
func TestWebhookDeliveryFigures(t *testing.T) {
	if os.Getenv("RAPPORT_WEBHOOK_BENCH") == "" {
		t.Skip("set RAPPORT_WEBHOOK_BENCH=1 to measure")
	}
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("RAPPORT_WEBHOOK_BENCH_EVENTS")); err == nil {
		n = v
	}
	uptime := func() string { b, _ := os.ReadFile("/proc/loadavg"); return string(bytes.TrimSpace(b)) }

	// Throughput.
	m := openService(t)
	r := newReceiver(t, nil)
	for i := 0; i < n; i += 250 { // Generate waits 30 s at most for the projectors
		m.Generate(t, uint64(21+i), min(250, n-i))
	}
	events := feedEvents(t, m)
	secret, _ := webhooks.NewSecret()
	r.secret.Store(secret)
	bodies := make([][]byte, len(events))
	for i, e := range events {
		bodies[i], _ = json.Marshal(e)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ts := time.Now()
				sig, _ := webhooks.Sign(secret, events[i].ID.String(), ts, bodies[i])
				req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/hook", bytes.NewReader(bodies[i]))
				req.Header.Set("webhook-id", events[i].ID.String())
				req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
				req.Header.Set("webhook-signature", sig)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					continue
				}
				resp.Body.Close()
			}
		}()
	}
	for i := range events {
		next <- i
	}
	close(next)
	wg.Wait()
	baseline := time.Since(start)
	baseLoad := uptime()
	if got := len(r.received()); got != len(events) {
		t.Fatalf("baseline: %d of %d received", got, len(events))
	}
	r.mu.Lock()
	r.got = nil
	r.mu.Unlock()
	sub := subscribe(t, m, r)
	_ = sub
	start = time.Now()
	runDeliverer(t, m, nil)
	waitFor(t, 10*time.Minute, "every event delivered", func() bool { return settled(t, m) })
	delivered := time.Since(start)
	checkDelivered(t, events, r.received())
	t.Logf("throughput, %d events, 16 at once: plain signed POSTs %.0f events/s (%s, load %s); deliverer %.0f events/s (%s, load %s); deliverer/baseline %.2f",
		len(events), float64(len(events))/baseline.Seconds(), baseline.Round(time.Millisecond), baseLoad,
		float64(len(events))/delivered.Seconds(), delivered.Round(time.Millisecond), uptime(), baseline.Seconds()/delivered.Seconds())

	// Latency, command to webhook, through the service's own deliverer.
	lm := apptest.MustOpen(t, func(c *app.Config) {
		c.Webhooks.AllowTargets = loopback
		c.Webhooks.BaseDelay = 50 * time.Millisecond
	})
	lr := newReceiver(t, nil)
	c, err := lm.Webhooks.Create(context.Background(), webhooks.NewSubscription{URL: lr.srv.URL + "/hook", EventTypes: []string{"contact.logged.v1"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	lr.secret.Store(c.Secret)
	resp := lm.Post(t, "/v1/customers", map[string]any{"name": "Ada", "email": "lat@example.com", "segment": "smb", "tier": "B"})
	id := resp.Map(t)["customer_id"].(string)
	const commands = 200
	var latencies, answered []time.Duration
	for i := range commands {
		sent := time.Now()
		resp := lm.Post(t, "/v1/customers/"+id+"/contacts", map[string]any{"channel": "email", "direction": "outbound", "summary": "hello", "by": "bob"})
		answer := time.Now()
		if resp.Status != http.StatusCreated {
			t.Fatalf("command: %d %s", resp.Status, resp.Body)
		}
		position := uint64(resp.Map(t)["position"].(float64))
		var arrived time.Time
		waitFor(t, 30*time.Second, fmt.Sprintf("webhook %d", i), func() bool {
			for _, g := range lr.received() {
				if g.event.Position == position {
					arrived = g.at
					return true
				}
			}
			return false
		})
		latencies = append(latencies, arrived.Sub(sent))
		answered = append(answered, arrived.Sub(answer))
	}
	slices.Sort(latencies)
	slices.Sort(answered)
	t.Logf("command's answer → webhook: p50 %s, p99 %s", answered[commands/2].Round(100*time.Microsecond), answered[commands*99/100].Round(100*time.Microsecond))
	t.Logf("command → webhook, %d commands one at a time: p50 %s, p99 %s, max %s (load %s)",
		commands, latencies[commands/2].Round(100*time.Microsecond), latencies[commands*99/100].Round(100*time.Microsecond), latencies[commands-1].Round(100*time.Microsecond), uptime())
}
