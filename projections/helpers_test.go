package projections_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/projections/projectiontest"
	"github.com/rapport-crm/rapport/readmodels/customers"
)

// masterKey is the keyring's master key in these tests.
var masterKey = bytes.Repeat([]byte{7}, 32)

// env is a migrated database with the Postgres event store, keyring and
// codec the command side would use.
type env struct {
	url   string
	pool  *pgxpool.Pool
	store *postgres.EventStore
	keys  *postgres.Keyring
	codec *eventcodec.Codec
}

func newEnvAt(tb testing.TB, url string, migrate bool) *env {
	tb.Helper()
	// A short key cache, so that erasure shows at once across processes.
	return newEnvWithKeys(tb, url, migrate, postgres.KeyringConfig{CacheTTL: time.Second})
}

func newEnvWithKeys(tb testing.TB, url string, migrate bool, keyCfg postgres.KeyringConfig) *env {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = 12
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	if migrate {
		if err := postgres.Migrate(context.Background(), pool, nil); err != nil {
			tb.Fatal(err)
		}
	}
	store, err := postgres.NewEventStore(pool, postgres.EventStoreConfig{CheckpointInterval: 100 * time.Millisecond, PollInterval: 200 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(store.Close)
	keys, err := postgres.NewKeyring(pool, masterKey, keyCfg)
	if err != nil {
		tb.Fatal(err)
	}
	return &env{url: url, pool: pool, store: store, keys: keys, codec: eventcodec.New(domain.NewRegistry(), keys)}
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	return newEnvAt(tb, pgtest.NewDatabase(tb), true)
}

// testLogger logs through t until the test ends.
func testLogger(tb testing.TB) *slog.Logger {
	w := &testWriter{tb: tb}
	tb.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	if os.Getenv("PROJECTIONS_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	tb   testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Logf("%s", bytes.TrimRight(p, "\n"))
	}
	return len(p), nil
}

// engineConfig is a quick-reacting configuration for tests.
func (e *env) engineConfig(tb testing.TB, ps ...projections.Projector) projections.Config {
	if len(ps) == 0 {
		ps = []projections.Projector{newCustomers(tb)}
	}
	return projections.Config{
		Pool: e.pool, Store: e.store, Codec: e.codec, Projectors: ps,
		LockRetryInterval: 100 * time.Millisecond, PollInterval: 100 * time.Millisecond,
		MetricsInterval: 200 * time.Millisecond, NackResendSleep: 20 * time.Millisecond,
		Retry:  projections.RetryConfig{InitialInterval: 20 * time.Millisecond, MaxInterval: 200 * time.Millisecond},
		Logger: testLogger(tb),
	}
}

func (e *env) newEngine(tb testing.TB, cfg projections.Config) *projections.Engine {
	tb.Helper()
	eng, err := projections.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return eng
}

// run runs eng until the test ends.
func run(tb testing.TB, eng *projections.Engine) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := eng.Run(ctx); err != nil {
			tb.Errorf("engine: %v", err)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	tb.Cleanup(stop)
	return stop
}

// load appends a generated history of n events through the store.
func (e *env) load(tb testing.TB, seed uint64, n int) ([]projectiontest.Append, eventstore.Position) {
	tb.Helper()
	appends := projectiontest.NewGenerator(seed).Plan(n)
	ctx := context.Background()
	if err := projectiontest.Encode(ctx, e.codec, appends, 4); err != nil {
		tb.Fatal(err)
	}
	last, err := projectiontest.AppendAll(ctx, e.store, appends)
	if err != nil {
		tb.Fatal(err)
	}
	return appends, last
}

func waitFor(tb testing.TB, eng *projections.Engine, pos eventstore.Position, d time.Duration, names ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := eng.WaitForPosition(ctx, pos, names...); err != nil {
		tb.Fatalf("wait for position %d: %v", pos, err)
	}
}

// expected folds every customer's events from the log with domain.Fold,
// as decoded now: the reference the read model must equal.
func (e *env) expected(tb testing.TB) map[uuid.UUID]domain.Customer {
	tb.Helper()
	ctx := context.Background()
	out := map[uuid.UUID]domain.Customer{}
	from := eventstore.Start
	for {
		page, err := e.store.ReadAll(ctx, eventstore.ReadAllOptions{From: from, Limit: 1000})
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		for _, rec := range page {
			from = rec.Position
			id, ok := domain.CustomerIDFromStream(rec.Stream)
			if !ok {
				continue
			}
			d, err := e.codec.Decode(ctx, rec)
			if err != nil {
				tb.Fatal(err)
			}
			out[id] = domain.Evolve(out[id], d.Event)
		}
	}
}

// snapshot reads the whole directory through the view, in a stable
// textual form, to compare two read models.
func snapshot(tb testing.TB, pool *pgxpool.Pool) []string {
	tb.Helper()
	rows, err := pool.Query(context.Background(), `SELECT to_jsonb(c) - 'updated_at' FROM readmodels.customers c ORDER BY id`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// compareModel checks every customer of the read model against the fold
// of its events.
func compareModel(tb testing.TB, e *env, q *customers.Queries) {
	tb.Helper()
	want := e.expected(tb)
	ctx := context.Background()
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM readmodels.customers`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	if n != len(want) {
		tb.Fatalf("read model has %d customers, log has %d", n, len(want))
	}
	ids := make([]uuid.UUID, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	for _, id := range ids {
		w := want[id]
		got, err := q.Get(ctx, id)
		if err != nil {
			tb.Fatalf("get %s: %v", id, err)
		}
		if diff := diffCustomer(w, got); diff != "" {
			tb.Fatalf("customer %s: %s", id, diff)
		}
	}
}

func diffCustomer(w domain.Customer, got customers.Customer) string {
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	var diffs []string
	check := func(field string, want, have any) {
		if fmt.Sprint(want) != fmt.Sprint(have) {
			diffs = append(diffs, fmt.Sprintf("%s: want %v, got %v", field, want, have))
		}
	}
	if w.Status == domain.StatusErased {
		check("name", "<nil>", str(got.Name))
		check("email", "<nil>", str(got.Email))
	} else {
		check("name", w.Name, str(got.Name))
		check("email", w.Email, str(got.Email))
		check("phone", w.Phone, str(got.Phone))
		check("company", w.Company, str(got.Company))
		check("tags", fmt.Sprint(w.Tags), fmt.Sprint(got.Tags))
	}
	check("segment", w.Segment, got.Segment)
	check("tier", w.Tier, got.Tier)
	check("region", w.Region, got.Region)
	check("status", string(w.Status), got.Status)
	for _, role := range domain.Roles() {
		check("team "+string(role), w.Team[role], got.Team[string(role)])
	}
	check("registered_at", w.RegisteredAt.UTC().Format(time.RFC3339Nano), got.RegisteredAt.UTC().Format(time.RFC3339Nano))
	lc := ""
	if got.LastContactAt != nil {
		lc = got.LastContactAt.UTC().Format(time.RFC3339Nano)
	}
	wlc := ""
	if !w.LastContactAt.IsZero() {
		wlc = w.LastContactAt.UTC().Format(time.RFC3339Nano)
	}
	check("last_contact_at", wlc, lc)
	check("open_complaints", w.OpenComplaints(), got.OpenComplaints)
	ip := func(p *int) string {
		if p == nil {
			return "<nil>"
		}
		return fmt.Sprint(*p)
	}
	check("last_csat", ip(w.Surveys.LastCSAT), ip(got.LastCSAT))
	check("last_nps", ip(w.Surveys.LastNPS), ip(got.LastNPS))
	check("prev_csat", ip(w.Surveys.PrevCSAT), ip(got.Risk.PrevCSAT))
	check("complaints", len(w.Complaints), len(got.Risk.Complaints))
	pending := 0
	for _, f := range w.FollowUps {
		if !f.Done {
			pending++
		}
	}
	check("follow-ups pending", pending, len(got.Risk.FollowUpsPending))
	if len(diffs) == 0 {
		return ""
	}
	return fmt.Sprint(diffs)
}

func newCustomers(tb testing.TB) *customers.Projector {
	tb.Helper()
	cfg := customers.Config{}
	if s := os.Getenv("RAPPORT_BENCH_CACHE"); s != "" {
		cfg.CacheSize, _ = strconv.Atoi(s)
	}
	p, err := customers.NewProjector(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// readLog reads the first events of the log once the event at last is
// visible: the store only shows events below its horizon, which other
// transactions of the server (other tests) can hold back for a moment.
func (e *env) readLog(tb testing.TB, last eventstore.Position) []eventstore.RecordedEvent {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		page, err := e.store.ReadAll(context.Background(), eventstore.ReadAllOptions{Limit: 1000})
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) == 1000 || (len(page) > 0 && page[len(page)-1].Position >= last) {
			return page
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the log does not show position %d", last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitVisible waits until the store shows the event at pos (see readLog).
func (e *env) waitVisible(tb testing.TB, pos eventstore.Position) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		page, err := e.store.ReadAll(context.Background(), eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) == 1 && page[0].Position >= pos {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the log does not show position %d", pos)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
