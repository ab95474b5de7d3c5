package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/pgtest"
)

// These tests prove the ordering guarantee: a subscriber never skips an
// append that got a lower position but committed after a higher one. Each
// scenario also runs with the horizon switched off, where it must fail: a
// test that cannot fail would prove nothing.

func openStore(t *testing.T, ignoreHorizon bool) (*EventStore, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewPool(t)
	if err := Migrate(context.Background(), pool, nil); err != nil {
		t.Fatal(err)
	}
	store, err := NewEventStore(pool, EventStoreConfig{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	store.ignoreHorizon = ignoreHorizon
	t.Cleanup(store.Close)
	return store, pool
}

// appendInOpenTransaction runs the store's append function inside a
// transaction that it leaves open, as a slow appender would.
func appendInOpenTransaction(t *testing.T, pool *pgxpool.Pool, stream string, id uuid.UUID) (commit func(), position eventstore.Position) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var outcome string
	var pos int64
	err = tx.QueryRow(ctx, `SELECT outcome, position FROM eventstore.append($1, -2, $2, $3, $4::json[], $5::json[])`,
		stream, []uuid.UUID{id}, []string{"Late"}, []string{`{}`}, []*string{nil}).Scan(&outcome, &pos)
	if err != nil || outcome != "ok" {
		t.Fatalf("append in open transaction: %s %v", outcome, err)
	}
	return func() {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}, eventstore.Position(pos)
}

// collect runs a subscription in the background and returns a function
// that reports the event ids delivered so far.
func collect(t *testing.T, store *EventStore, prefix string) func() []uuid.UUID {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := store.SubscribeAll(ctx, eventstore.SubscribeOptions{From: eventstore.Start, StreamPrefixes: []string{prefix}})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		ids  []uuid.UUID
		last eventstore.Position
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			msg, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if msg.Kind != eventstore.EventAppeared {
				continue
			}
			mu.Lock()
			if msg.Position <= last {
				t.Errorf("delivered position %d after %d", msg.Position, last)
			}
			last = msg.Position
			ids = append(ids, msg.Event.ID)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return func() []uuid.UUID {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(ids)
	}
}

func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// lateCommit holds one append open while three later appends commit, then
// commits it, and returns what the subscriber delivered and the order the
// log holds.
func lateCommit(t *testing.T, ignoreHorizon bool) (delivered, want []uuid.UUID) {
	store, pool := openStore(t, ignoreHorizon)
	delivered1 := collect(t, store, "late-")
	ctx := context.Background()

	slow := uuid.New()
	commit, slowPosition := appendInOpenTransaction(t, pool, "late-slow", slow)
	want = []uuid.UUID{slow}
	for i := range 3 {
		id := uuid.New()
		res, err := store.Append(ctx, fmt.Sprintf("late-fast-%d", i), eventstore.NoStream,
			[]eventstore.EventData{{ID: id, Type: "Fast", Data: []byte(`{}`)}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Position <= slowPosition {
			t.Fatalf("later append got position %d, not above the open one's %d", res.Position, slowPosition)
		}
		want = append(want, id)
	}
	// Give the subscriber every chance to run ahead of the open append.
	time.Sleep(300 * time.Millisecond)
	commit()
	waitUntil(3*time.Second, func() bool { return len(delivered1()) >= len(want) })
	time.Sleep(100 * time.Millisecond)
	return delivered1(), want
}

func TestLateCommitIsDeliveredInOrder(t *testing.T) {
	delivered, want := lateCommit(t, false)
	if !slices.Equal(delivered, want) {
		t.Fatalf("delivered %v, want %v: the late commit was skipped or reordered", delivered, want)
	}
}

func TestLateCommitIsSkippedWithoutTheHorizon(t *testing.T) {
	delivered, want := lateCommit(t, true)
	if slices.Equal(delivered, want) {
		t.Fatal("without the horizon the late commit was still delivered in order: the late-commit test proves nothing")
	}
	if slices.Contains(delivered, want[0]) {
		t.Fatalf("without the horizon the late append was delivered (%v): the scenario no longer commits late", delivered)
	}
}

// slowAppenders has many writers hold their append transactions open for
// random times while a subscriber reads, so that commits constantly arrive
// out of position order; it returns what was delivered and what was
// committed.
func slowAppenders(t *testing.T) (delivered []uuid.UUID, committed map[uuid.UUID]bool) {
	const writers, perWriter = 8, 25
	store, pool := openStore(t, false)
	got := collect(t, store, "slow-")
	ctx := context.Background()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	committed = map[uuid.UUID]bool{}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				id := uuid.New()
				tx, err := pool.Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				var outcome string
				err = tx.QueryRow(ctx, `SELECT outcome FROM eventstore.append($1, -2, $2, $3, $4::json[], $5::json[])`,
					fmt.Sprintf("slow-%d-%d", w, i%3), []uuid.UUID{id}, []string{"Slow"}, []string{`{}`}, []*string{nil}).Scan(&outcome)
				if err != nil {
					t.Error(err)
					_ = tx.Rollback(ctx)
					return
				}
				time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond)
				if err := tx.Commit(ctx); err != nil {
					t.Error(err)
					return
				}
				store.appended.Broadcast()
				mu.Lock()
				committed[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	waitUntil(5*time.Second, func() bool { return len(got()) >= len(committed) })
	time.Sleep(100 * time.Millisecond)
	return got(), committed
}

func TestSlowAppendersAreAllDelivered(t *testing.T) {
	delivered, committed := slowAppenders(t)
	seen := map[uuid.UUID]bool{}
	for _, id := range delivered {
		if seen[id] || !committed[id] {
			t.Fatalf("event %s delivered twice or never committed", id)
		}
		seen[id] = true
	}
	if len(seen) != len(committed) {
		t.Fatalf("delivered %d of %d committed events", len(seen), len(committed))
	}
}

func TestAppendMustBeFirstWriteOfItsTransaction(t *testing.T) {
	_, pool := openStore(t, false)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, `SELECT eventstore.append('x', -2, ARRAY[gen_random_uuid()], ARRAY['T'], ARRAY['{}'::json], ARRAY[NULL::json])`)
	if err == nil {
		t.Fatal("append after another write in the same transaction succeeded; it could break stream order")
	}
}
