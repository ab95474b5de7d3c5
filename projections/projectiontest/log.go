package projectiontest

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/eventcodec"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// Log is a generated history loaded into a fresh Postgres event store, for
// rebuild benchmarks.
type Log struct {
	Pool  *pgxpool.Pool
	Store *postgres.EventStore
	// Events is how many events the log holds.
	Events int
	// Codec decodes the log with a cold key cache, as a process starting a
	// rebuild has.
	Codec *eventcodec.Codec
}

// EventsFromEnv is RAPPORT_BENCH_EVENTS, or fallback when it is not set.
func EventsFromEnv(tb testing.TB, fallback int) int {
	s := os.Getenv("RAPPORT_BENCH_EVENTS")
	if s == "" {
		return fallback
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		tb.Fatalf("RAPPORT_BENCH_EVENTS: %v", err)
	}
	return n
}

// LoadLog generates n events (seed 42), encodes them as the command side
// does and loads them in bulk into a fresh, migrated database.
func LoadLog(tb testing.TB, n int) Log {
	tb.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(tb))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = 16 // key creation and loading in parallel
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	if err := postgres.Migrate(ctx, pool, nil); err != nil {
		tb.Fatal(err)
	}
	store, err := postgres.NewEventStore(pool, postgres.EventStoreConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(store.Close)
	master := bytes.Repeat([]byte{9}, 32)
	keys, err := postgres.NewKeyring(pool, master, postgres.KeyringConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	appends := NewGenerator(42).Plan(n)
	if err := Encode(ctx, eventcodec.New(domain.NewRegistry(), keys), appends, 8); err != nil {
		tb.Fatal(err)
	}
	if _, err := BulkLoad(ctx, pool, appends); err != nil {
		tb.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE eventstore.events`); err != nil {
		tb.Fatal(err)
	}
	cold, err := postgres.NewKeyring(pool, master, postgres.KeyringConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	return Log{Pool: pool, Store: store, Events: n, Codec: eventcodec.New(domain.NewRegistry(), cold)}
}
