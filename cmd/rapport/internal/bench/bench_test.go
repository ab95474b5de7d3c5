package bench_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/cmd/rapport/internal/bench"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestSmoke runs the whole bench for a few seconds against the service in
// process and asserts what must hold on any machine: every accepted
// command is in the event store and in every read model, the workload's
// model of the rules made no command the rules refuse, and the baseline's
// scratch table is gone. It never asserts a timing.
// It runs on each event store; the baseline and the rebuild, which do not
// depend on the store, only on the first.
func TestSmoke(t *testing.T) {
	apptest.ForEachStore(t, smoke)
}

func smoke(t *testing.T, m *apptest.Main) {
	ctx := context.Background()
	store := path.Base(t.Name())
	full := store == apptest.Stores[0].Name
	baseline := 300 * time.Millisecond
	if !full {
		baseline = -1
	}
	var log strings.Builder
	res, err := bench.Run(ctx, bench.Config{
		URL:              m.URL,
		Key:              m.Keys["writer"],
		AuditKey:         m.Keys["auditor"],
		Clients:          4,
		Duration:         2 * time.Second,
		Seed:             1,
		LagSampleEvery:   5,
		Engine:           m.Engine,
		Store:            m.Store,
		Pool:             m.Pool,
		EventStore:       store,
		BaselineDuration: baseline,
		SkipRebuild:      !full,
		RebuildOnly:      []string{"customers", "history"}, // the others take a second each however small the log
		Log:              &log,
	})
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, log.String())
	}
	var md strings.Builder
	if err := res.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + md.String())

	v := res.Verification
	if !res.Pass || v.Lost != 0 || v.WrongEvents != 0 || v.Unexpected != 0 {
		t.Fatalf("verification failed: %v", v.Failures)
	}
	if res.Load.Accepted == 0 || v.CommandsChecked == 0 || v.EventsRead < v.CommandsChecked {
		t.Fatalf("nothing verified: %d accepted, %d checked, %d events read", res.Load.Accepted, v.CommandsChecked, v.EventsRead)
	}
	// The only refusals are the redemptions above the balance the workload
	// provokes on purpose.
	insufficient := res.Load.Refusals["redeemPoints: 409 insufficient_points"]
	if res.Load.Refused != insufficient || res.Load.Unconfirmed != 0 || res.Load.ServerErrors != 0 {
		t.Fatalf("the workload's commands should all be accepted but redemptions above the balance: %d refused, %d unconfirmed, %d server errors: %v",
			res.Load.Refused, res.Load.Unconfirmed, res.Load.ServerErrors, res.Load.Refusals)
	}
	// The value read model was checked for the customers with purchases
	// or points, and the events of the purchases' points were read.
	if !v.Value.Served || v.Value.Customers == 0 || v.Value.Missing != 0 || v.Value.Behind != 0 {
		t.Fatalf("the value read model was not checked: %+v", v.Value)
	}
	if res.Load.Events <= res.Load.Accepted || v.EventsRead < res.Load.Events {
		t.Fatalf("purchases append their points too: %d events for %d accepted commands, %d read", res.Load.Events, res.Load.Accepted, v.EventsRead)
	}
	if len(v.Reconciliation) == 0 {
		t.Fatal("no reconciliation")
	}
	if !v.History.Served || v.History.Customers != v.Customers {
		t.Fatalf("the audit history was not checked for every customer: %+v", v.History)
	}
	if res.Lag.Samples == 0 {
		t.Fatalf("no lag sample: %+v", res.Lag)
	}
	if res.Audit == nil || res.Audit.Events == 0 {
		t.Fatalf("audit replay %+v", res.Audit)
	}
	if full {
		if len(v.ReconciliationAfterRebuild) != len(v.Reconciliation) {
			t.Fatalf("reconciliation: %d projectors after the load, %d after the rebuilds", len(v.Reconciliation), len(v.ReconciliationAfterRebuild))
		}
		if res.Baseline == nil || res.Baseline.Transactions == 0 {
			t.Fatalf("no baseline: %+v", res.Baseline)
		}
		var exists bool
		if err := m.Pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, res.Baseline.Table).Scan(&exists); err != nil || exists {
			t.Fatalf("the baseline's scratch table %s is still there (%v)", res.Baseline.Table, err)
		}
		if res.Rebuild == nil || len(res.Rebuild.Projectors) != 2 || res.Rebuild.Events == 0 {
			t.Fatalf("rebuild %+v", res.Rebuild)
		}
	}
	// Every command type of the mix was exercised.
	seen := map[string]bool{}
	for _, c := range res.Load.Commands {
		seen[c.Command] = c.Accepted > 0
	}
	for _, want := range []string{"registerCustomer", "logContact", "fileComplaint", "assignComplaint", "acknowledgeComplaint", "resolveComplaint", "recordSurvey",
		"recordPurchase"} { // the rarer value commands: TestValueCommandsVerified
		if !seen[want] {
			t.Errorf("no %s accepted in the mix", want)
		}
	}
}

// TestCommandCount bounds the load by a number of commands.
func TestCommandCount(t *testing.T) {
	m := apptest.MustOpen(t)
	res, err := bench.Run(context.Background(), bench.Config{
		URL:              m.URL,
		Key:              m.Keys["admin"],
		Clients:          2,
		Commands:         150,
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
	if got := res.Load.Accepted + res.Load.Refused + res.Load.RateLimited; got != 150 {
		t.Fatalf("%d commands answered, want 150", got)
	}
}

// TestRetriesAreIdempotent puts a faulty proxy between the bench and the
// service: it loses the answers of some commands the service handled
// (the client sees the connection drop) and answers 503 to others without
// passing them on. The bench sends those again with the same
// Idempotency-Key, and verification finds each command's event exactly
// once.
func TestRetriesAreIdempotent(t *testing.T) {
	m := apptest.MustOpen(t)
	target, err := url.Parse(m.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var n atomic.Int64
	faulty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			proxy.ServeHTTP(w, r)
			return
		}
		switch i := n.Add(1); {
		case i%11 == 0:
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"reason":"store_unavailable"}`, http.StatusServiceUnavailable)
		case i%7 == 0:
			// The service handles the command; its answer is lost.
			proxy.ServeHTTP(httptest.NewRecorder(), r)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(faulty.Close)
	res, err := bench.Run(context.Background(), bench.Config{
		URL:              faulty.URL,
		Key:              m.Keys["writer"],
		AuditKey:         m.Keys["auditor"],
		Clients:          4,
		Commands:         200,
		Engine:           m.Engine,
		BaselineDuration: -1,
		SkipRebuild:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	l, v := res.Load, res.Verification
	if !res.Pass || v.Unexpected != 0 || v.Lost != 0 {
		t.Fatalf("verification failed: %v %v", v.Failures, v.Problems)
	}
	// A lost answer is a transport error for the bench, or a retry that
	// net/http makes itself (it resends requests carrying an
	// Idempotency-Key when a reused connection drops): either way the
	// command is sent again with its key.
	if l.Retries == 0 || l.Accepted+l.Refused != 200 || l.Unconfirmed != 0 {
		t.Fatalf("%d retries, %d transport errors, %d accepted, %d refused, %d unconfirmed", l.Retries, l.TransportErrors, l.Accepted, l.Refused, l.Unconfirmed)
	}
}

// BenchmarkHTTPLoad drives b.N commands through the in-process service
// (HTTP, commands, event store, projections) with RAPPORT_BENCH_CLIENTS
// clients (default 16) and reports commands/s. With
// RAPPORT_BENCH_PROFILE=cpu.prof it writes a CPU profile of the load phase
// alone (client and service share the process, so the bench's own client
// shows in it too):
//
//	go test ./cmd/rapport/internal/bench -run '^$' -bench HTTPLoad -benchtime 20000x -timeout 30m
//	RAPPORT_BENCH_PROFILE=cpu.prof go test ./cmd/rapport/internal/bench -run '^$' -bench HTTPLoad -benchtime 20000x
//	go tool pprof -top -nodecount 40 cpu.prof
func BenchmarkHTTPLoad(b *testing.B) {
	m := apptest.MustOpen(b)
	clients := 16
	if s := os.Getenv("RAPPORT_BENCH_CLIENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		clients = n
	}
	var stop func()
	onPhase := func(phase string, begin bool) {
		if phase != "load" {
			return
		}
		if begin {
			b.ResetTimer()
			if path := os.Getenv("RAPPORT_BENCH_PROFILE"); path != "" {
				f, err := os.Create(path)
				if err != nil {
					b.Fatal(err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					b.Fatal(err)
				}
				stop = func() { pprof.StopCPUProfile(); _ = f.Close() }
			}
			return
		}
		b.StopTimer()
		if stop != nil {
			stop()
		}
	}
	res, err := bench.Run(context.Background(), bench.Config{
		URL:              m.URL,
		Key:              m.Keys["writer"],
		AuditKey:         m.Keys["auditor"],
		Clients:          clients,
		Commands:         int64(b.N),
		Engine:           m.Engine,
		Store:            m.Store,
		Pool:             m.Pool,
		BaselineDuration: -1,
		SkipRebuild:      true,
		OnPhase:          onPhase,
	})
	if err != nil {
		b.Fatal(err)
	}
	if !res.Pass {
		b.Fatalf("verification failed: %v", res.Verification.Failures)
	}
	b.ReportMetric(res.Load.CommandsPerSecond, "commands/s")
	b.ReportMetric(res.Load.All.P99Ms, "p99-ms")
	b.ReportMetric(res.Lag.P50Ms, "lag-p50-ms")
}
