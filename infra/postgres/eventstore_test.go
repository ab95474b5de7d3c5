package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/domain/eventstore/eventstoretest"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// MustOpenEventStore returns an event store on a fresh, migrated database.
func MustOpenEventStore(tb testing.TB) (*postgres.EventStore, *pgxpool.Pool) {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(tb))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = 70 // enough for the 64 clients of the benchmarks
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	if err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		tb.Fatal(err)
	}
	store, err := postgres.NewEventStore(pool, postgres.EventStoreConfig{CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(store.Close)
	return store, pool
}

func TestConformance(t *testing.T) {
	store, _ := MustOpenEventStore(t)
	eventstoretest.Run(t, func(*testing.T) eventstore.Store { return store })
}

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	pool := pgtest.NewPool(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- postgres.Migrate(context.Background(), pool, nil)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func newEvents(n int) []eventstore.EventData {
	events := make([]eventstore.EventData, n)
	for i := range events {
		data, _ := json.Marshal(map[string]any{"n": i, "text": "a contact was logged with a short summary"})
		events[i] = eventstore.EventData{ID: uuid.New(), Type: "rapport.ContactLogged.v1", Data: data, Metadata: []byte(`{"actor":"bench"}`)}
	}
	return events
}

// BenchmarkAppend measures the store's append throughput beside a raw
// single-statement INSERT of the same rows into a plain table, at the same
// concurrency, in the same run: the ratio is the cost of the store's
// guarantees (stream lock, revision check, idempotency, ordering).
func BenchmarkAppend(b *testing.B) {
	store, pool := MustOpenEventStore(b)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE raw_events (id bigserial PRIMARY KEY, stream text NOT NULL, event_id uuid NOT NULL, event_type text NOT NULL, data json NOT NULL, metadata json)`); err != nil {
		b.Fatal(err)
	}
	for _, concurrency := range []int{1, 16, 64} {
		for _, batch := range []int{1, 10} {
			b.Run(fmt.Sprintf("store/clients=%d/events=%d", concurrency, batch), func(b *testing.B) {
				runConcurrently(b, concurrency, batch, func(client, i int) error {
					// Each client appends to its own streams, a new one every
					// 50 appends, as commands do to customers.
					stream := fmt.Sprintf("bench-%d-%d-%d", b.N, client, i/50)
					_, err := store.Append(ctx, stream, eventstore.Any, newEvents(batch))
					return err
				})
			})
			b.Run(fmt.Sprintf("raw-insert/clients=%d/events=%d", concurrency, batch), func(b *testing.B) {
				runConcurrently(b, concurrency, batch, func(client, i int) error {
					events := newEvents(batch)
					query := `INSERT INTO raw_events (stream, event_id, event_type, data, metadata) VALUES `
					args := make([]any, 0, 5*batch)
					for j, e := range events {
						if j > 0 {
							query += ","
						}
						query += fmt.Sprintf("($%d, $%d, $%d, $%d, $%d)", 5*j+1, 5*j+2, 5*j+3, 5*j+4, 5*j+5)
						args = append(args, fmt.Sprintf("bench-%d", client), e.ID, e.Type, string(e.Data), string(e.Metadata))
					}
					_, err := pool.Exec(ctx, query, args...)
					return err
				})
			})
		}
	}
}

// runConcurrently runs b.N operations spread over exactly `clients`
// goroutines and reports events per second.
func runConcurrently(b *testing.B, clients, eventsPerOp int, op func(client, i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < b.N; i = int(next.Add(1)) - 1 {
				if err := op(c, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*eventsPerOp)/elapsed.Seconds(), "events/s")
}
