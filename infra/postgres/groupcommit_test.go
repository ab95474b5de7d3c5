package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/pgtest"
)

// These tests form groups deterministically: the store has one committer,
// which a first append keeps busy by waiting for a stream lock that the
// test holds; the appends made meanwhile queue, and form one group when
// the test lets the first one go.

func openGroupStore(t *testing.T, committers int, ignoreHorizon bool) (*EventStore, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewPool(t)
	if err := Migrate(context.Background(), pool, nil); err != nil {
		t.Fatal(err)
	}
	store, err := NewEventStore(pool, EventStoreConfig{PollInterval: 20 * time.Millisecond, Committers: committers})
	if err != nil {
		t.Fatal(err)
	}
	store.ignoreHorizon = ignoreHorizon
	t.Cleanup(store.Close)
	return store, pool
}

// holdStreamLock takes stream's append lock in a transaction of its own
// and returns the function that releases it.
func holdStreamLock(t *testing.T, pool *pgxpool.Pool, stream string) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, stream); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if err := tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
				t.Error(err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

type appendCall struct {
	stream   string
	expected eventstore.ExpectedRevision
	events   []eventstore.EventData
	res      eventstore.AppendResult
	err      error
}

func oneEvent(label string) []eventstore.EventData {
	return []eventstore.EventData{{ID: uuid.New(), Type: "GroupTested", Data: fmt.Appendf(nil, `{"label":%q}`, label)}}
}

func (s *EventStore) queued() int {
	s.groups.mu.Lock()
	defer s.groups.mu.Unlock()
	return len(s.groups.queue)
}

// inOneGroup keeps the store's only committer busy, queues the calls one
// after the other (so the group has their order), then lets the
// committer go and waits for every call's outcome. It returns the first
// append's result.
func inOneGroup(t *testing.T, store *EventStore, pool *pgxpool.Pool, calls []*appendCall) eventstore.AppendResult {
	t.Helper()
	ctx := context.Background()
	blocker := fmt.Sprintf("group-blocker-%s", uuid.NewString())
	release := holdStreamLock(t, pool, blocker)
	var (
		wg      sync.WaitGroup
		first   eventstore.AppendResult
		errBusy error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		first, errBusy = store.Append(ctx, blocker, eventstore.NoStream, oneEvent("blocker"))
	}()
	if !waitUntil(5*time.Second, func() bool {
		store.groups.mu.Lock()
		defer store.groups.mu.Unlock()
		return store.groups.busy == store.groups.committers
	}) {
		t.Fatal("the first append never kept the committer busy")
	}
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.res, c.err = store.Append(ctx, c.stream, c.expected, c.events)
		}()
		if !waitUntil(5*time.Second, func() bool { return store.queued() == i+1 }) {
			release()
			wg.Wait()
			t.Fatalf("append %d did not wait for a group (%d queued): the store does not group appends", i+1, store.queued())
		}
	}
	release()
	wg.Wait()
	if errBusy != nil {
		t.Fatalf("the append that kept the committer busy: %v", errBusy)
	}
	return first
}

func xidOf(p eventstore.Position) uint64 { return uint64(p) >> 20 }

func TestGroupSharesOneTransaction(t *testing.T) {
	store, _ := openGroupStore(t, 1, false)
	pool := store.pool
	prefix := "group-" + uuid.NewString()[:8] + "-"
	var calls []*appendCall
	for i := range 5 {
		events := oneEvent(fmt.Sprint(i))
		if i == 2 {
			events = append(events, oneEvent("second of 2")...)
		}
		calls = append(calls, &appendCall{stream: fmt.Sprintf("%s%d", prefix, i), expected: eventstore.NoStream, events: events})
	}
	blocker := inOneGroup(t, store, pool, calls)

	xid := xidOf(calls[0].res.Position)
	var positions []eventstore.Position
	for i, c := range calls {
		if c.err != nil {
			t.Fatalf("append %d: %v", i, c.err)
		}
		if got := xidOf(c.res.Position); got != xid {
			t.Errorf("append %d committed in transaction %d, append 0 in %d: not one group", i, got, xid)
		}
		if want := uint64(len(c.events) - 1); c.res.Revision != want {
			t.Errorf("append %d: revision %d, want %d", i, c.res.Revision, want)
		}
		events, err := store.ReadStream(context.Background(), c.stream, eventstore.ReadStreamOptions{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		for j, e := range events {
			if e.ID != c.events[j].ID || e.Revision != uint64(j) {
				t.Fatalf("append %d: stored %v at revision %d", i, e.ID, e.Revision)
			}
			positions = append(positions, e.Position)
		}
	}
	// Positions follow the group's order, contiguous within an append.
	if !slices.IsSorted(positions) || len(slices.Compact(slices.Clone(positions))) != len(positions) {
		t.Errorf("positions %v are not strictly increasing in the group's order", positions)
	}
	if xid <= xidOf(blocker.Position) {
		t.Errorf("the group's transaction %d is not after the blocking append's %d", xid, xidOf(blocker.Position))
	}
	if n := store.groups.grouped.Load(); n != 1 {
		t.Errorf("%d groups committed, want 1", n)
	}
}

func TestConflictInAGroupFailsOnlyItsAppend(t *testing.T) {
	store, pool := openGroupStore(t, 1, false)
	ctx := context.Background()
	prefix := "conflict-" + uuid.NewString()[:8] + "-"
	existing := prefix + "existing"
	if _, err := store.Append(ctx, existing, eventstore.NoStream, oneEvent("existing")); err != nil {
		t.Fatal(err)
	}
	twice := prefix + "twice"
	calls := []*appendCall{
		{stream: prefix + "a", expected: eventstore.NoStream, events: oneEvent("a")},
		{stream: existing, expected: eventstore.Exact(5), events: oneEvent("stale")},
		{stream: twice, expected: eventstore.NoStream, events: oneEvent("twice 0")},
		{stream: twice, expected: eventstore.Exact(0), events: oneEvent("twice 1")}, // sees the group's own write
		{stream: existing, expected: eventstore.NoStream, events: oneEvent("not new")},
		{stream: prefix + "b", expected: eventstore.StreamExists, events: oneEvent("no such stream")},
		{stream: prefix + "c", expected: eventstore.Any, events: oneEvent("c")},
	}
	inOneGroup(t, store, pool, calls)

	wantWrong := map[int]int64{1: 0, 4: 0, 5: -1}
	xid := xidOf(calls[0].res.Position)
	for i, c := range calls {
		if current, ok := wantWrong[i]; ok {
			var wrong *eventstore.WrongExpectedRevisionError
			if !errors.As(c.err, &wrong) || wrong.Stream != c.stream || wrong.Current != current {
				t.Errorf("append %d: %v, want a wrong expected revision with current %d", i, c.err, current)
			}
			continue
		}
		if c.err != nil {
			t.Fatalf("append %d failed beside the conflicts: %v", i, c.err)
		}
		if xidOf(c.res.Position) != xid {
			t.Errorf("append %d not in the group's transaction", i)
		}
	}
	if calls[3].res.Revision != 1 {
		t.Errorf("the second append to one stream in the group got revision %d, want 1", calls[3].res.Revision)
	}
	events, err := store.ReadStream(ctx, existing, eventstore.ReadStreamOptions{Limit: 10})
	if err != nil || len(events) != 1 {
		t.Fatalf("the conflicting appends wrote: %d events, %v", len(events), err)
	}
	if _, err := store.ReadStream(ctx, prefix+"b", eventstore.ReadStreamOptions{Limit: 10}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("the StreamExists append to a missing stream created it: %v", err)
	}
	if n := store.groups.grouped.Load(); n != 1 {
		t.Errorf("%d groups committed, want 1", n)
	}
}

func TestFailingAppendInAGroupFailsAlone(t *testing.T) {
	store, pool := openGroupStore(t, 1, false)
	prefix := "failing-" + uuid.NewString()[:8] + "-"
	calls := []*appendCall{
		{stream: prefix + "a", expected: eventstore.NoStream, events: oneEvent("a")},
		// PostgreSQL refuses a NUL in text: this append cannot be written.
		{stream: prefix + "bad\x00", expected: eventstore.NoStream, events: oneEvent("bad")},
		{stream: prefix + "c", expected: eventstore.NoStream, events: oneEvent("c")},
	}
	inOneGroup(t, store, pool, calls)

	if calls[1].err == nil {
		t.Fatal("the append PostgreSQL refuses succeeded")
	}
	var wrong *eventstore.WrongExpectedRevisionError
	if errors.As(calls[1].err, &wrong) || errors.Is(calls[1].err, eventstore.ErrUnavailable) {
		t.Errorf("the refused append failed with %v, want PostgreSQL's error", calls[1].err)
	}
	for _, i := range []int{0, 2} {
		c := calls[i]
		if c.err != nil {
			t.Fatalf("append %d failed with its group's refused append: %v", i, c.err)
		}
		events, err := store.ReadStream(context.Background(), c.stream, eventstore.ReadStreamOptions{Limit: 10})
		if err != nil || len(events) != 1 || events[0].ID != c.events[0].ID {
			t.Fatalf("append %d: stream holds %v, %v", i, events, err)
		}
	}
}

// TestGroupsNeverDeadlock runs groups over the same few streams in random
// orders at once: the stream locks are taken in one order, so PostgreSQL
// never has to break a deadlock.
func TestGroupsNeverDeadlock(t *testing.T) {
	_, pool := openGroupStore(t, 1, false)
	ctx := context.Background()
	streams := []string{"dl-a", "dl-b", "dl-c", "dl-d", "dl-e"}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 1))
			for range 40 {
				order := slices.Clone(streams)
				rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				n := 2 + rnd.IntN(len(order)-1)
				g := make([]*appendRequest, n)
				for i := range g {
					g[i] = &appendRequest{stream: order[i], expected: eventstore.Any, events: oneEvent("x")}
				}
				// Hold the locks a moment, as a slow commit would.
				tx, err := pool.Begin(ctx)
				if err != nil {
					errs <- err
					return
				}
				ids, types, data, metadata := flatten(g, n)
				streamsOf := make([]string, n)
				expected := make([]int64, n)
				counts := make([]int32, n)
				for i, r := range g {
					streamsOf[i], expected[i], counts[i] = r.stream, -2, 1
				}
				_, err = tx.Exec(ctx, `SELECT count(*) FROM eventstore.append_group($1, $2, $3, $4, $5, $6::json[], $7::json[])`,
					streamsOf, expected, counts, ids, types, data, metadata)
				if err == nil {
					time.Sleep(time.Millisecond)
					err = tx.Commit(ctx)
				} else {
					_ = tx.Rollback(ctx)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// lateGroup is lateCommit (ordering_test.go) with the slow append being a
// group: a group of two appends is held open while three later appends
// commit; the subscriber must deliver the group's events first.
func lateGroup(t *testing.T, ignoreHorizon bool) (delivered, want []uuid.UUID) {
	store, pool := openGroupStore(t, 2, ignoreHorizon)
	delivered1 := collect(t, store, "lategroup-")
	ctx := context.Background()

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slow := []uuid.UUID{uuid.New(), uuid.New()}
	var slowPosition int64
	err = tx.QueryRow(ctx, `SELECT max(position) FROM eventstore.append_group($1, $2, $3, $4, $5, $6::json[], $7::json[])`,
		[]string{"lategroup-slow-0", "lategroup-slow-1"}, []int64{-1, -1}, []int32{1, 1}, slow,
		[]string{"Late", "Late"}, []string{`{}`, `{}`}, []*string{nil, nil}).Scan(&slowPosition)
	if err != nil {
		t.Fatal(err)
	}
	want = slow
	for i := range 3 {
		id := uuid.New()
		res, err := store.Append(ctx, fmt.Sprintf("lategroup-fast-%d", i), eventstore.NoStream,
			[]eventstore.EventData{{ID: id, Type: "Fast", Data: []byte(`{}`)}})
		if err != nil {
			t.Fatal(err)
		}
		if int64(res.Position) <= slowPosition {
			t.Fatalf("later append got position %d, not above the open group's %d", res.Position, slowPosition)
		}
		want = append(want, id)
	}
	time.Sleep(300 * time.Millisecond)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Other databases of the cluster hold the horizon back too (it is the
	// cluster's oldest running transaction): a busy machine needs time.
	// The fast appends come last in the log, so once they are delivered
	// the group's events were delivered too, or skipped.
	waitUntil(15*time.Second, func() bool {
		got := delivered1()
		return slices.Contains(got, want[2]) && slices.Contains(got, want[3]) && slices.Contains(got, want[4])
	})
	time.Sleep(100 * time.Millisecond)
	return delivered1(), want
}

func TestLateGroupCommitIsDeliveredInOrder(t *testing.T) {
	delivered, want := lateGroup(t, false)
	if !slices.Equal(delivered, want) {
		t.Fatalf("delivered %v, want %v: the late group was skipped or reordered", delivered, want)
	}
}

func TestLateGroupCommitIsSkippedWithoutTheHorizon(t *testing.T) {
	delivered, want := lateGroup(t, true)
	if slices.Contains(delivered, want[0]) || slices.Contains(delivered, want[1]) {
		t.Fatalf("without the horizon the late group was delivered (%v): the scenario no longer commits late", delivered)
	}
}

func TestAppendGroupMustBeFirstWriteOfItsTransaction(t *testing.T) {
	_, pool := openGroupStore(t, 1, false)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, `SELECT * FROM eventstore.append_group($1, $2, $3, $4, $5, $6::json[], $7::json[])`,
		[]string{"first-write"}, []int64{-2}, []int32{1}, []uuid.UUID{uuid.New()}, []string{"X"}, []string{`{}`}, []*string{nil})
	if err == nil {
		t.Fatal("append_group ran in a transaction that already had an id")
	}
}

// BenchmarkGroupCommit appends one event per operation from 16 clients to
// streams of their own, with grouping off (-1) and with 1, 2, 4 and 8
// committers (off and 2 again, to see the machine's drift): what group
// commit buys at a command-like concurrency.
func BenchmarkGroupCommit(b *testing.B) {
	for _, committers := range []int{-1, 1, 2, 4, 8, -1, 2} {
		b.Run(fmt.Sprintf("committers=%d", committers), func(b *testing.B) {
			// The service's pool size, so that no client waits for a
			// connection without grouping.
			pcfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(b))
			if err != nil {
				b.Fatal(err)
			}
			pcfg.MaxConns = DefaultMaxConns
			pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			if err := Migrate(context.Background(), pool, nil); err != nil {
				b.Fatal(err)
			}
			store, err := NewEventStore(pool, EventStoreConfig{Committers: committers})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			const clients = 16
			var next sync.WaitGroup
			work := make(chan int, b.N)
			for i := range b.N {
				work <- i
			}
			close(work)
			b.ResetTimer()
			start := time.Now()
			for c := range clients {
				next.Add(1)
				go func() {
					defer next.Done()
					for i := range work {
						stream := fmt.Sprintf("bench-%d-%d", c, i/50)
						if _, err := store.Append(context.Background(), stream, eventstore.Any, oneEvent("x")); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			next.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
			b.ReportMetric(float64(store.groups.grouped.Load()), "groups")
		})
	}
}

// TestCallerGivingUpInTheQueue: an append whose caller gives up while it
// waits for a group is never written, and says so with the context's
// error; one that a group has already taken may still be written, so its
// caller is told the outcome is unknown (ErrUnavailable), not that it
// failed.
func TestCallerGivingUpInTheQueue(t *testing.T) {
	store, pool := openGroupStore(t, 1, false)
	ctx := context.Background()
	prefix := "giveup-" + uuid.NewString()[:8] + "-"
	releaseFirst := holdStreamLock(t, pool, prefix+"first")
	releaseTaken := holdStreamLock(t, pool, prefix+"taken")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := store.Append(ctx, prefix+"first", eventstore.NoStream, oneEvent("first")); err != nil {
			t.Error(err)
		}
	}()
	if !waitUntil(5*time.Second, func() bool {
		store.groups.mu.Lock()
		defer store.groups.mu.Unlock()
		return store.groups.busy == 1
	}) {
		t.Fatal("the committer never got busy")
	}

	// Queued, and its caller gives up before any group takes it.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err := store.Append(short, prefix+"queued", eventstore.NoStream, oneEvent("queued"))
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, eventstore.ErrUnavailable) {
		t.Fatalf("a queued append whose caller gave up: %v, want the context's error alone", err)
	}
	if store.queued() != 0 {
		t.Fatalf("%d appends still queued after their caller gave up", store.queued())
	}

	// Taken by a group that then waits for a lock.
	var errTaken error
	takenCtx, cancelTaken := context.WithCancel(ctx)
	defer cancelTaken()
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, errTaken = store.Append(takenCtx, prefix+"taken", eventstore.NoStream, oneEvent("taken"))
	}()
	if !waitUntil(5*time.Second, func() bool { return store.queued() == 1 }) {
		t.Fatal("the append did not queue")
	}
	releaseFirst()
	if !waitUntil(5*time.Second, func() bool { return store.queued() == 0 }) {
		t.Fatal("no group took the append")
	}
	cancelTaken()
	time.Sleep(50 * time.Millisecond)
	releaseTaken()
	wg.Wait()
	if !errors.Is(errTaken, eventstore.ErrUnavailable) {
		t.Fatalf("the caller of a taken append gave up: %v, want ErrUnavailable (outcome unknown)", errTaken)
	}
	if !waitUntil(5*time.Second, func() bool {
		_, err := store.ReadStream(ctx, prefix+"taken", eventstore.ReadStreamOptions{Limit: 1})
		return err == nil
	}) {
		t.Fatal("the taken append was not written: then its caller could have been told so")
	}
	if _, err := store.ReadStream(ctx, prefix+"queued", eventstore.ReadStreamOptions{Limit: 1}); !errors.Is(err, eventstore.ErrStreamNotFound) {
		t.Fatalf("the append whose caller gave up in the queue was written: %v", err)
	}
}
