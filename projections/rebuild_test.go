package projections_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/esdb"
	"github.com/rapport-crm/rapport/infra/esdb/esdbtest"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/projections/projectiontest"
	"github.com/rapport-crm/rapport/readmodels/customers"
)

// TestRebuildUnderLoad rebuilds while commands append and readers poll the
// view: readers never see the directory shrink or go back in time, and the
// rebuilt generation equals the fold of the log.
func TestRebuildUnderLoad(t *testing.T) {
	e := newEnv(t)
	_, last := e.load(t, 51, 8000)
	reg := prometheus.NewRegistry()
	cfg := e.engineConfig(t)
	cfg.Registerer = reg
	eng := e.newEngine(t, cfg)
	run(t, eng)
	waitFor(t, eng, last, time.Minute)
	ctx := context.Background()

	// Writers: new customers and their events keep arriving.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lastPos atomic.Uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		gen := projectiontest.NewGenerator(52)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			appends := gen.Plan(20)
			if err := projectiontest.Encode(ctx, e.codec, appends, 1); err != nil {
				t.Error(err)
				return
			}
			p, err := projectiontest.AppendAll(ctx, e.store, appends)
			if err != nil {
				t.Error(err)
				return
			}
			lastPos.Store(uint64(p))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	// Readers: the directory never shrinks and never goes back.
	var reads atomic.Int64
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var prevCount int
			var prevMax int64
			for {
				select {
				case <-stop:
					return
				default:
				}
				var count int
				var maxPos int64
				err := e.pool.QueryRow(ctx, `SELECT count(*), coalesce(max(last_position), 0) FROM readmodels.customers`).Scan(&count, &maxPos)
				if err != nil {
					t.Errorf("reader %d: %v", r, err)
					return
				}
				if count < prevCount || maxPos < prevMax {
					t.Errorf("reader %d saw the directory go back: %d customers up to %d after %d up to %d", r, count, maxPos, prevCount, prevMax)
					return
				}
				prevCount, prevMax = count, maxPos
				reads.Add(1)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	var progressCalls atomic.Int64
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := eng.Rebuild(rctx, customers.Name, func(done, total int64) {
		progressCalls.Add(1)
		if done > total {
			t.Errorf("progress %d of %d", done, total)
		}
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	waitFor(t, eng, eventstore.Position(lastPos.Load()), time.Minute)
	st := statusOf(t, eng, customers.Name)
	if st.Generation != 2 || st.State != projections.StateRunning || st.Rebuild != nil {
		t.Fatalf("after the rebuild: %+v", st)
	}
	compareModel(t, e, customers.NewQueries(e.pool))
	rep, err := eng.Verify(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	// The old generation's schema is gone.
	var schemas int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rm_customers_g%'`).Scan(&schemas); err != nil || schemas != 1 {
		t.Fatalf("%d generation schemas left (%v)", schemas, err)
	}
	if reads.Load() < 10 || progressCalls.Load() == 0 {
		t.Fatalf("%d reads, %d progress calls", reads.Load(), progressCalls.Load())
	}
	// Metrics: checkpoint, applied events, state.
	if v := metricValue(t, reg, "rapport_projection_state", "customers", projections.StateRunning); v != 1 {
		t.Fatalf("state metric running = %v", v)
	}
	if v := metricValue(t, reg, "rapport_projection_checkpoint", "customers"); v < float64(lastPos.Load()) {
		t.Fatalf("checkpoint metric %v, want at least %d", v, lastPos.Load())
	}
	if v := metricValue(t, reg, "rapport_projection_events_applied_total", "customers"); v < 3000*2 {
		t.Fatalf("events applied metric %v", v)
	}
}

// metricValue reads a gauge or counter series from reg by label values.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := true
			for i, l := range m.GetLabel() {
				if i < len(labels) && l.GetValue() != labels[i] {
					match = false
				}
			}
			if !match {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

// versioned is the customer projector under another version number, as
// after a deployment that changed it.
type versioned struct {
	*customers.Projector
	v int
}

func (p versioned) Version() int { return p.v }

// TestVersionChangeRebuildsAtStartup: a process whose projector has a new
// version rebuilds at startup, while the old generation keeps serving.
func TestVersionChangeRebuildsAtStartup(t *testing.T) {
	e := newEnv(t)
	_, last := e.load(t, 61, 500)
	eng := e.newEngine(t, e.engineConfig(t))
	stop := run(t, eng)
	waitFor(t, eng, last, time.Minute)
	stop()

	next := newCustomers(t).Version() + 1
	eng2 := e.newEngine(t, e.engineConfig(t, versioned{Projector: newCustomers(t), v: next}))
	run(t, eng2)
	eventually(t, time.Minute, "the new version to serve", func() bool {
		st := statusOf(t, eng2, customers.Name)
		return st.Version == next && st.Generation == 2 && st.State == projections.StateRunning
	})
	_, last = e.load(t, 62, 50)
	waitFor(t, eng2, last, time.Minute)
	compareModel(t, e, customers.NewQueries(e.pool))
}

// TestEngineOnEventStoreDB runs the customer directory from EventStoreDB
// (the test server speaking its gRPC protocol) into Postgres.
func TestEngineOnEventStoreDB(t *testing.T) {
	e := newEnv(t)
	srv := esdbtest.Start(t)
	store, err := esdb.New(esdb.Config{ConnectionString: srv.ConnectionString(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ctx := context.Background()
	appends := projectiontest.NewGenerator(71).Plan(300)
	if err := projectiontest.Encode(ctx, e.codec, appends, 2); err != nil {
		t.Fatal(err)
	}
	last, err := projectiontest.AppendAll(ctx, store, appends)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.engineConfig(t)
	cfg.Store = store
	eng := e.newEngine(t, cfg)
	run(t, eng)
	waitFor(t, eng, last, time.Minute)
	// The same events in Postgres give the reference fold.
	pgLast, err := projectiontest.AppendAll(ctx, e.store, appends)
	if err != nil {
		t.Fatal(err)
	}
	e.waitVisible(t, pgLast)
	compareModel(t, e, customers.NewQueries(e.pool))
	rep, err := eng.Verify(ctx)
	if err != nil || !rep.OK() || rep.Projectors[0].Streams == 0 {
		t.Fatalf("verify on EventStoreDB: %+v %v", rep, err)
	}
	st := statusOf(t, eng, customers.Name)
	if st.State != projections.StateRunning || st.LagEvents != 0 {
		t.Fatalf("status on EventStoreDB: %+v", st)
	}
}
