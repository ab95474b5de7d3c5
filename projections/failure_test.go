package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/customers"
)

// ledger is a small projector for these tests: one row per event it
// handles. It fails permanently on the event poison names.
type ledger struct {
	name    string
	poison  atomic.Value // uuid.UUID
	applied atomic.Int64
}

func newLedger(name string) *ledger {
	l := &ledger{name: name}
	l.poison.Store(uuid.Nil)
	return l
}

func (l *ledger) Name() string { return l.name }
func (l *ledger) Version() int { return 1 }
func (l *ledger) Handles() []string {
	return []string{domain.TypeContactLogged, domain.TypeCustomerRegistered}
}
func (l *ledger) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `CREATE TABLE `+l.name+` (position bigint PRIMARY KEY, stream text NOT NULL, revision bigint NOT NULL)`)
	return err
}

func (l *ledger) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	for _, d := range batch {
		if d.Record.ID == l.poison.Load().(uuid.UUID) {
			// A data error, as a bug in a projector would make.
			_, err := tx.Exec(ctx, `SELECT 1/0`)
			return err
		}
	}
	pos := make([]int64, len(batch))
	streams := make([]string, len(batch))
	revs := make([]int64, len(batch))
	for i, d := range batch {
		pos[i], streams[i], revs[i] = int64(d.Record.Position), d.Record.Stream, int64(d.Record.Revision)
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+l.name+` SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])`, pos, streams, revs)
	if err == nil {
		l.applied.Add(int64(len(batch)))
	}
	return err
}

func statusOf(t *testing.T, eng *projections.Engine, name string) projections.Status {
	t.Helper()
	sts, err := eng.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no status for %s", name)
	return projections.Status{}
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPoisonEventStopsOnlyItsProjector: a permanent error stops the
// projector at the poison event, with the event in its status, the
// checkpoint before it and everything before it applied; the other
// projector goes on.
func TestPoisonEventStopsOnlyItsProjector(t *testing.T) {
	e := newEnv(t)
	appends, loaded := e.load(t, 11, 300)
	// The poison: a contact in the middle of the log.
	var poison eventstore.RecordedEvent
	page := e.readLog(t, loaded)
	for _, rec := range page[150:] {
		if rec.Type == domain.TypeContactLogged {
			poison = rec
			break
		}
	}
	l := newLedger("ledger")
	l.poison.Store(poison.ID)
	eng := e.newEngine(t, e.engineConfig(t, newCustomers(t), l))
	run(t, eng)
	_, last := e.load(t, 12, 20) // live events after the poison
	waitFor(t, eng, last, time.Minute, "customers")
	_ = appends
	ctx := context.Background()
	eventually(t, 10*time.Second, "ledger stopped", func() bool { return statusOf(t, eng, "ledger").State == projections.StateStopped })
	st := statusOf(t, eng, "ledger")
	if st.Poison == nil || st.Poison.EventID != poison.ID || st.Poison.Position != poison.Position || st.Poison.EventType != domain.TypeContactLogged ||
		st.Poison.Stream != poison.Stream || !strings.Contains(st.Poison.Err, "division by zero") {
		t.Fatalf("poison %+v, want event %s at %d", st.Poison, poison.ID, poison.Position)
	}
	if st.Checkpoint >= poison.Position {
		t.Fatalf("checkpoint %d passed the poison at %d", st.Checkpoint, poison.Position)
	}
	// Everything handled before the poison is applied, nothing after.
	var before, after int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE position < $1), count(*) FILTER (WHERE position >= $1) FROM readmodels.ledger`, int64(poison.Position)).Scan(&before, &after); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, rec := range page {
		if rec.Position < poison.Position && (rec.Type == domain.TypeContactLogged || rec.Type == domain.TypeCustomerRegistered) {
			want++
		}
	}
	if before != want || after != 0 {
		t.Fatalf("ledger has %d rows before the poison (want %d) and %d after", before, want, after)
	}
	// WaitForPosition reports the stopped projector as not caught up.
	c, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err := eng.WaitForPosition(c, last)
	var nc *projections.NotCaughtUpError
	if !errors.Is(err, projections.ErrNotCaughtUp) || !errors.As(err, &nc) || nc.Lagging["ledger"] != st.Checkpoint || len(nc.Lagging) != 1 {
		t.Fatalf("wait: %v", err)
	}

	// Once the projector is fixed, a rebuild gets past the event.
	l.poison.Store(uuid.Nil)
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	defer rcancel()
	if err := eng.Rebuild(rctx, "ledger", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, eng, last, 30*time.Second)
	if st := statusOf(t, eng, "ledger"); st.State != projections.StateRunning || st.Poison != nil || st.Generation != 2 {
		t.Fatalf("after the rebuild: %+v", st)
	}
}

// TestUndecodableEventStopsProjector: an event the codec cannot read is a
// poison event too.
func TestUndecodableEventStopsProjector(t *testing.T) {
	e := newEnv(t)
	_, _ = e.load(t, 21, 50)
	id := uuid.New()
	bad := eventstore.EventData{ID: uuid.New(), Type: domain.TypeCustomerRegistered, Data: []byte(`{"customer_id": 42}`)}
	res, err := e.store.Append(context.Background(), domain.StreamName(id), eventstore.NoStream, []eventstore.EventData{bad})
	if err != nil {
		t.Fatal(err)
	}
	_, last := e.load(t, 22, 20)
	eng := e.newEngine(t, e.engineConfig(t))
	run(t, eng)
	eventually(t, 30*time.Second, "customers stopped", func() bool { return statusOf(t, eng, "customers").State == projections.StateStopped })
	st := statusOf(t, eng, "customers")
	if st.Poison == nil || st.Poison.EventID != bad.ID || st.Poison.Position != res.Position || st.Checkpoint >= res.Position {
		t.Fatalf("status %+v poison %+v", st, st.Poison)
	}
	if st.Checkpoint >= last {
		t.Fatal("checkpoint past the poison")
	}
}

// TestTransientErrorIsRetried kills the projector's database session in
// the middle of the work: the engine reconnects, takes its lock back and
// applies every event exactly once.
func TestTransientErrorIsRetried(t *testing.T) {
	e := newEnv(t)
	cfg := e.engineConfig(t)
	cfg.BatchSize = 50
	cfg.RebuildBatchSize = 50
	eng := e.newEngine(t, cfg)
	run(t, eng)
	ctx := context.Background()
	killed := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 6 {
			time.Sleep(150 * time.Millisecond)
			var n int
			if err := e.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'rapport-projector-customers' AND datname = current_database()`).Scan(&n); err == nil {
				killed += n
			}
		}
	}()
	var last eventstore.Position
	for i := range 6 {
		_, last = e.load(t, uint64(100+i), 300)
		time.Sleep(100 * time.Millisecond)
	}
	<-done
	if killed == 0 {
		t.Fatal("no session was killed")
	}
	waitFor(t, eng, last, time.Minute)
	compareModel(t, e, customers.NewQueries(e.pool))
	rep, err := eng.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify after %d kills: %+v", killed, rep)
	}
	t.Logf("killed the projector's session %d times", killed)
}

// skipper wraps the customer projector and drops one event: a bug Verify
// must find, since lag and checkpoints look fine.
type skipper struct {
	*customers.Projector
	skip uuid.UUID
}

func (s skipper) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	kept := batch[:0:0]
	for _, d := range batch {
		if d.Record.ID != s.skip {
			kept = append(kept, d)
		}
	}
	return s.Projector.Apply(ctx, tx, kept)
}

func TestVerifyFindsSkippedEvent(t *testing.T) {
	e := newEnv(t)
	_, last := e.load(t, 31, 300)
	page := e.readLog(t, last)
	// Skip an event in the middle of a stream that has events after it.
	var victim eventstore.RecordedEvent
	lastRev := map[string]uint64{}
	for _, rec := range page {
		lastRev[rec.Stream] = rec.Revision
	}
	for _, rec := range page {
		if rec.Revision > 0 && rec.Revision < lastRev[rec.Stream] {
			victim = rec
			break
		}
	}
	eng := e.newEngine(t, e.engineConfig(t, skipper{Projector: newCustomers(t), skip: victim.ID}))
	run(t, eng)
	waitFor(t, eng, last, time.Minute)
	rep, err := eng.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pr := rep.Projectors[0]
	if rep.OK() || len(pr.Mismatches) != 1 || pr.Mismatches[0].Stream != victim.Stream || pr.Mismatches[0].Model != victim.Revision-1 ||
		pr.Mismatches[0].Log != lastRev[victim.Stream] || len(pr.Missing) != 0 || len(pr.Extra) != 0 {
		t.Fatalf("verify: %+v, want a mismatch on %s at revision %d", pr, victim.Stream, victim.Revision)
	}
	if st := statusOf(t, eng, "customers"); st.LagEvents != 0 {
		t.Fatalf("lag %d: the skip must be invisible to lag", st.LagEvents)
	}
}

// TestWaitForPositionReadsYourWrites: after an append, a reader that
// waits for its position sees the write, in this process and through
// another engine that does not run the projector.
func TestWaitForPositionReadsYourWrites(t *testing.T) {
	e := newEnv(t)
	eng := e.newEngine(t, e.engineConfig(t))
	run(t, eng)
	other := e.newEngine(t, e.engineConfig(t)) // not running: polls the table
	q := customers.NewQueries(e.pool)
	ctx := context.Background()
	for i := range 20 {
		id := uuid.New()
		name := fmt.Sprintf("Reader %d", i)
		data, _, err := e.codec.Encode(ctx, eventcodec.Batch{
			Stream: domain.StreamName(id), Metadata: eventcodec.Metadata{CustomerID: id, Actor: "t", RecordedAt: time.Now()},
			Events: []domain.Event{domain.CustomerRegistered{CustomerID: id, Name: name, Email: fmt.Sprintf("r%d@x.com", i), OccurredAt: time.Now()}},
			IDs:    []uuid.UUID{uuid.New()},
		})
		if err != nil {
			t.Fatal(err)
		}
		res, err := e.store.Append(ctx, domain.StreamName(id), eventstore.NoStream, data)
		if err != nil {
			t.Fatal(err)
		}
		waiter := eng
		if i%2 == 1 {
			waiter = other
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = waiter.WaitForPosition(wctx, res.Position, "customers")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		c, err := q.Get(ctx, id)
		if err != nil || c.Name == nil || *c.Name != name || c.Position < uint64(res.Position) {
			t.Fatalf("after waiting: %+v %v", c, err)
		}
	}
	// A position nobody reaches times out with ErrNotCaughtUp.
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := other.WaitForPosition(wctx, eventstore.End-1); !errors.Is(err, projections.ErrNotCaughtUp) {
		t.Fatalf("wait for the end of time: %v", err)
	}
	if err := eng.WaitForPosition(ctx, 0, "nope"); err == nil {
		t.Fatal("unknown projector accepted")
	}
	_ = json.Marshal
}
