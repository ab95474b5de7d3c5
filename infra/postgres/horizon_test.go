package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/projections"
)

// TestOtherDatabasesDoNotHoldTheReadersBack keeps a writing transaction
// open in another database of the same server (another application, or a
// parallel test package): xids are the cluster's, so a horizon built from
// the snapshot's xmin alone would hold every subscriber back until it ended,
// although no transaction of another database can ever append here.
func TestOtherDatabasesDoNotHoldTheReadersBack(t *testing.T) {
	store, _ := openStore(t, false)
	delivered := collect(t, store, "other-")
	ctx := context.Background()

	other := pgtest.NewPool(t)
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE held (x int); INSERT INTO held VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	var xid int64
	if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&xid); err != nil {
		t.Fatal(err)
	}

	id := uuid.New()
	res, err := store.Append(ctx, "other-1", eventstore.NoStream, []eventstore.EventData{{ID: id, Type: "After", Data: []byte(`{}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Position <= eventstore.Position(xid<<20) {
		t.Fatalf("the append (position %d) is not after the other database's transaction (xid %d)", res.Position, xid)
	}
	if !waitUntil(3*time.Second, func() bool { return len(delivered()) == 1 }) {
		t.Fatalf("an append committed behind another database's open transaction was not delivered in 3 s (delivered %v)", delivered())
	}
	head, err := store.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
	if err != nil || len(head) != 1 || head[0].ID != id {
		t.Fatalf("ReadAll backwards from the end: %v %v, want the append", head, err)
	}
}

// TestSameDatabaseWritersStillHoldTheReadersBack: a transaction of this
// database may append late, so it still holds the readers back (the
// late-commit guarantee), whatever it has written so far.
func TestSameDatabaseWritersStillHoldTheReadersBack(t *testing.T) {
	store, pool := openStore(t, false)
	delivered := collect(t, store, "same-")
	ctx := context.Background()
	commit, _ := appendInOpenTransaction(t, pool, "same-slow", uuid.New())
	if _, err := store.Append(ctx, "same-fast", eventstore.NoStream, []eventstore.EventData{{ID: uuid.New(), Type: "Fast", Data: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := delivered(); len(got) != 0 {
		t.Fatalf("delivered %d events past an open append of this database", len(got))
	}
	commit()
	if !waitUntil(3*time.Second, func() bool { return len(delivered()) == 2 }) {
		t.Fatalf("after the commit: delivered %d of 2", len(delivered()))
	}
}

// markedReadModelTx opens a transaction of this database marked as a
// projector's (projections.ReadModelApplicationName) that has written.
func markedReadModelTx(t *testing.T, pool *pgxpool.Pool) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `SET LOCAL application_name TO '`+projections.ReadModelApplicationName+`'`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE rows_of_a_read_model (x int); INSERT INTO rows_of_a_read_model VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	return tx
}

// TestReadModelTransactionsDoNotHoldTheReadersBack: a projector's long
// batch (a rebuild) in the same database writes read models only, so the
// live subscribers do not wait for it.
func TestReadModelTransactionsDoNotHoldTheReadersBack(t *testing.T) {
	store, pool := openStore(t, false)
	delivered := collect(t, store, "marked-")
	ctx := context.Background()
	markedReadModelTx(t, pool)
	if _, err := store.Append(ctx, "marked-1", eventstore.NoStream, []eventstore.EventData{{ID: uuid.New(), Type: "After", Data: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(3*time.Second, func() bool { return len(delivered()) == 1 }) {
		t.Fatalf("an append behind an open read-model transaction was not delivered in 3 s")
	}
}

// TestAReadModelTransactionCannotAppend: the mark cannot lie, since the
// store refuses an append from a transaction that carries it.
func TestAReadModelTransactionCannotAppend(t *testing.T) {
	_, pool := openStore(t, false)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SET LOCAL application_name TO '`+projections.ReadModelApplicationName+`'`); err != nil {
		t.Fatal(err)
	}
	var outcome string
	err = tx.QueryRow(ctx, `SELECT outcome FROM eventstore.append($1, -2, $2, $3, $4::json[], $5::json[])`,
		"marked-append", []uuid.UUID{uuid.New()}, []string{"Nope"}, []string{`{}`}, []*string{nil}).Scan(&outcome)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("append from a read-model transaction: outcome %q, err %v; want SQLSTATE 25006", outcome, err)
	}
}

// TestTheTightHorizonReadsTheLogByItsIndex: appenders_horizon() first asks
// whether anything was written above the snapshot's xmin. Asked as "EXISTS a
// row with position ≥ x" on a log the planner has no statistics for (a bulk
// load, autovacuum off, as on these machines), PostgreSQL chose a sequential
// scan that read the whole log: 0.5–1 s per call at 1.9M events, paid by
// every poll of a held-back subscriber, ReadAll and the head (GET
// /v1/projections took 0.5 s). The question must be answered from the
// primary key whatever the statistics say.
func TestTheTightHorizonReadsTheLogByItsIndex(t *testing.T) {
	_, pool := openStore(t, false)
	ctx := context.Background()
	// Enough pages that a plan's choice is a real one, loaded without ANALYZE.
	if _, err := pool.Exec(ctx, `INSERT INTO eventstore.events (position, stream, revision, event_id, event_type, data)
		SELECT g, 'bulk-' || g, 0, gen_random_uuid(), 'Bulk', '{}' FROM generate_series(1, 50000) g`); err != nil {
		t.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// The backend's pending counters (not this transaction's alone: they
	// are flushed now and then), read before and after the call.
	scans := func() (n, read int64) {
		t.Helper()
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(seq_scan), 0), coalesce(sum(seq_tup_read), 0) FROM pg_stat_xact_user_tables
			WHERE schemaname = 'eventstore' AND relname = 'events'`).Scan(&n, &read); err != nil {
			t.Fatal(err)
		}
		return n, read
	}
	scansBefore, readBefore := scans()
	if err := tx.QueryRow(ctx, `SELECT eventstore.appenders_horizon()`).Scan(new(int64)); err != nil {
		t.Fatal(err)
	}
	scansAfter, readAfter := scans()
	seqScans, seqRead := scansAfter-scansBefore, readAfter-readBefore
	if seqScans != 0 {
		t.Fatalf("appenders_horizon() scanned the log sequentially (%d scans, %d rows read); it must use the primary key", seqScans, seqRead)
	}
}

// TestAFreshReaderSeesWhatCommittedBeforeItAsked: a reader that starts
// after an event committed (a new process: `rapport audit verify`, a
// rebuild's first page) must see it. Transaction ids are the server's, so
// the snapshot's in-flight ids include other databases' transactions; one
// that ends between the snapshot and the read of pg_stat_activity can no
// longer be told apart from this database's, and taken as an appender it
// put the horizon below events long committed: the audit of a CI run
// (parallel test databases) read an empty log and called every anchored
// stream deleted. Short write transactions in another database, each begun
// before the event, race every read.
func TestAFreshReaderSeesWhatCommittedBeforeItAsked(t *testing.T) {
	_, pool := openStore(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	other := pgtest.NewPool(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				// An id assigned, held a while, then ended: some of them
				// began before an event and end while a read runs.
				_, _ = other.Exec(ctx, `SELECT pg_current_xact_id(), pg_sleep(random() * 0.02)`)
			}
		}()
	}
	for i := range 400 {
		// Appended and committed by hand: the store's own append would
		// also notify, in a transaction of this database that may hold
		// the reader back for its few microseconds, as it should.
		commit, position := appendInOpenTransaction(t, pool, fmt.Sprintf("fresh-%d", i), uuid.New())
		commit()
		reader, err := NewEventStore(pool, EventStoreConfig{})
		if err != nil {
			t.Fatal(err)
		}
		head, err := reader.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
		reader.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(head) != 1 || head[0].Position < position {
			t.Fatalf("read %d: a fresh reader's log ends at %v, before the event committed at %d", i, head, position)
		}
	}
}
