package bench_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/cmd/rapport/internal/bench"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestOpenLoopOffersTheRate offers commands at a constant rate: every
// command that fell due is sent and answered, and the run verifies.
func TestOpenLoopOffersTheRate(t *testing.T) {
	m := apptest.MustOpen(t)
	res, err := bench.Run(context.Background(), bench.Config{
		URL:              m.URL,
		Key:              m.Keys["admin"],
		Clients:          8,
		Duration:         2 * time.Second,
		Rate:             100,
		Engine:           m.Engine,
		BaselineDuration: -1,
		SkipRebuild:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Pass {
		t.Fatalf("verification failed: %v", res.Verification.Failures)
	}
	o := res.Load.OpenLoop
	if o == nil || o.OfferedPerSecond != 100 {
		t.Fatalf("open loop %+v", o)
	}
	// 2 s at 100/s: 200 due, give or take the last instant.
	if o.Due < 190 || o.Due > 201 {
		t.Fatalf("%d commands due in 2 s at 100/s", o.Due)
	}
	if got := res.Load.Accepted + res.Load.Refused + res.Load.RateLimited + res.Load.Unconfirmed; got != o.Due {
		t.Fatalf("%d commands answered of %d due", got, o.Due)
	}
}

// TestOpenLoopCountsTheWait has a service that answers in 50 ms and one
// client offered 100 commands/s: the commands queue behind each other.
// Measured from the instant each was due (not from when the busy client
// could send it), the latency grows with the queue, far beyond the 50 ms
// that a closed loop would report, and the late sends are counted.
func TestOpenLoopCountsTheWait(t *testing.T) {
	m := apptest.MustOpen(t)
	target, err := url.Parse(m.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			time.Sleep(50 * time.Millisecond)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	res, err := bench.Run(context.Background(), bench.Config{
		URL:              slow.URL,
		Key:              m.Keys["admin"],
		Clients:          1,
		Duration:         time.Second,
		Rate:             100,
		LagSampleEvery:   -1,
		Engine:           m.Engine,
		BaselineDuration: -1,
		SkipRebuild:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	o := res.Load.OpenLoop
	if o == nil || o.NoClientFree == 0 || o.Late == 0 {
		t.Fatalf("no late send counted: %+v", o)
	}
	// About 100 commands due, about 20 answered per second: the last
	// waits for most of the others: seconds.
	if res.Load.All.MaxMs < 1000 {
		t.Fatalf("max latency %.1f ms: measured from the send, not from the due instant", res.Load.All.MaxMs)
	}
	if res.Load.All.P50Ms < 200 {
		t.Fatalf("p50 %.1f ms: measured from the send, not from the due instant", res.Load.All.P50Ms)
	}
}
