// Package postgrestest loads generated histories into a Postgres event
// store for tests and benchmarks: straight into its table, far faster than
// appending a million events one command at a time.
package postgrestest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
	"github.com/rapport-crm/rapport/projections/projectiontest"
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
	appends := projectiontest.NewGenerator(42).Plan(n)
	if err := projectiontest.Encode(ctx, eventcodec.New(domain.NewRegistry(), keys), appends, 8); err != nil {
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

// BulkLoad writes the appends straight into the Postgres store's table with
// COPY, at sparse positions below the store's horizon, much faster than
// Append for a million events. The table must be empty. Later appends
// through the store get larger positions, so the log stays ordered.
func BulkLoad(ctx context.Context, pool *pgxpool.Pool, appends []projectiontest.Append) (eventstore.Position, error) {
	var horizon int64
	if err := pool.QueryRow(ctx, `SELECT eventstore.horizon()`).Scan(&horizon); err != nil {
		return 0, err
	}
	n := 0
	for _, a := range appends {
		n += len(a.Events)
	}
	const stride = 8
	if int64(n+1)*stride >= horizon {
		return 0, fmt.Errorf("postgrestest: %d events do not fit below the horizon %d", n, horizon)
	}
	pos := int64(0)
	recorded := time.Now().UTC().Add(-time.Hour)
	rows := make([][]any, 0, n)
	for _, a := range appends {
		for k, e := range a.Events {
			pos += stride
			var meta any
			if len(e.Metadata) > 0 {
				meta = string(e.Metadata)
			}
			rows = append(rows, []any{pos, a.Stream, int64(a.FirstRevision) + int64(k), e.ID, e.Type, string(e.Data), meta, recorded})
		}
	}
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"eventstore", "events"},
		[]string{"position", "stream", "revision", "event_id", "event_type", "data", "metadata", "recorded_at"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return 0, fmt.Errorf("postgrestest: copy events: %w", err)
	}
	return eventstore.Position(pos), nil
}
