package app_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/postgres/postgrestest"
	"github.com/rapport-crm/rapport/projections"
)

// TestRebuildAllAtOnceEqualsLive builds every read model of the service
// the old way (each projector reading the log on its own, in small
// batches, live), then rebuilds them all at once through one shared reader
// (a window smaller than the log, so that the rebuilds' stream must merge
// into the live one) while the live generations keep running, and requires every
// readmodels view to hold the same rows, table by table, and the
// reconciliation to pass.
func TestRebuildAllAtOnceEqualsLive(t *testing.T) {
	log := postgrestest.LoadLog(t, 3000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Live, one projector per reader, batches of 7.
	live := newTestEngine(t, log, projections.Config{PrivateReaders: true, BatchSize: 7, DecodeCacheSize: -1})
	stop := runEngine(t, live)
	head, err := log.Store.HeadPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := live.WaitForPosition(ctx, head); err != nil {
		t.Fatal(err)
	}
	stop()
	want := snapshotViews(t, log.Pool)
	if len(want) < 6 {
		t.Fatalf("only %d read-model views: %v", len(want), want)
	}

	// All at once, through the shared reader, while live generations run.
	shared := newTestEngine(t, log, projections.Config{SharedWindow: 1024})
	stop = runEngine(t, shared)
	defer stop()
	if err := shared.WaitForPosition(ctx, head); err != nil {
		t.Fatal(err)
	}
	statuses, err := shared.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(statuses))
	for _, st := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := shared.Rebuild(ctx, st.Name, nil); err != nil {
				errs <- fmt.Errorf("rebuild %s: %w", st.Name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	stats, ok := shared.SharedReaderStats()
	if !ok {
		t.Fatal("the engine has no shared reader")
	}
	t.Logf("shared reader: %+v", stats)
	if stats.Streams >= 2*len(statuses) {
		t.Errorf("shared reader opened %d store subscriptions for %d live and %d rebuilt generations: nothing was shared", stats.Streams, len(statuses), len(statuses))
	}

	got := snapshotViews(t, log.Pool)
	for view, w := range want {
		if g := got[view]; g != w {
			t.Errorf("readmodels.%s rebuilt all at once: %s; built live: %s", view, g, w)
		}
	}
	report, err := shared.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() {
		t.Errorf("reconciliation after the rebuild: %+v", report)
	}
}

func newTestEngine(t *testing.T, log postgrestest.Log, cfg projections.Config) *projections.Engine {
	t.Helper()
	ps, err := app.Projectors()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Pool, cfg.Store, cfg.Codec, cfg.Projectors = log.Pool, log.Store, log.Codec, ps
	cfg.PollInterval, cfg.LockRetryInterval = 50*time.Millisecond, 50*time.Millisecond
	e, err := projections.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// runEngine runs e until the returned function is called (once or more).
func runEngine(t *testing.T, e *projections.Engine) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

// snapshotViews is, for each view in schema readmodels, its row count and
// a digest of its rows in a canonical order.
func snapshotViews(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT table_name FROM information_schema.views WHERE table_schema = 'readmodels' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	views, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, v := range views {
		var (
			n      int64
			digest string
		)
		q := fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(r::text, E'\n' ORDER BY r::text)), '') FROM readmodels.%s r`, pgx.Identifier{v}.Sanitize())
		if err := pool.QueryRow(ctx, q).Scan(&n, &digest); err != nil {
			t.Fatal(err)
		}
		out[v] = fmt.Sprintf("%d rows, md5 %s", n, digest)
	}
	return out
}
