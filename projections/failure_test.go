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
	// seq numbers the rows in the order Apply wrote them, so that a test
	// can check each stream was applied in revision order.
	_, err := tx.Exec(ctx, `CREATE TABLE `+l.name+` (position bigint PRIMARY KEY, stream text NOT NULL, revision bigint NOT NULL,
		seq bigint GENERATED ALWAYS AS IDENTITY)`)
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
	_, err := tx.Exec(ctx, `INSERT INTO `+l.name+` (position, stream, revision) SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])`, pos, streams, revs)
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

// TestPoisonEventParksOnlyItsStream: a permanent error parks the poison
// event's stream in that projector, with the event in its status; the
// checkpoint passes it, everything else is applied and the other projector
// is untouched. A rebuild of the fixed projector applies the whole log.
func TestPoisonEventParksOnlyItsStream(t *testing.T) {
	e := newEnv(t)
	_, loaded := e.load(t, 11, 300)
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
	waitFor(t, eng, last, time.Minute)
	st := statusOf(t, eng, "ledger")
	if st.State == projections.StateStopped || st.Poison != nil || len(st.Parked) != 1 {
		t.Fatalf("ledger %+v: want it running with one parked stream", st)
	}
	p := st.Parked[0]
	if p.EventID != poison.ID || p.Position != poison.Position || p.EventType != domain.TypeContactLogged ||
		p.Stream != poison.Stream || p.Revision != poison.Revision || !strings.Contains(p.Err, "division by zero") {
		t.Fatalf("parked %+v, want event %s at %d", p, poison.ID, poison.Position)
	}
	if st.Checkpoint < last {
		t.Fatalf("checkpoint %d before the last event at %d", st.Checkpoint, last)
	}
	if st := statusOf(t, eng, "customers"); len(st.Parked) != 0 || st.Checkpoint < last {
		t.Fatalf("customers %+v", st)
	}
	checkLedgerComplete(t, e, poison.Stream, int64(poison.Revision))

	// Once the projector is fixed, a rebuild gets past the event.
	l.poison.Store(uuid.Nil)
	ctx := context.Background()
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	defer rcancel()
	if err := eng.Rebuild(rctx, "ledger", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, eng, last, 30*time.Second)
	if st := statusOf(t, eng, "ledger"); st.State != projections.StateRunning || st.Poison != nil || len(st.Parked) != 0 || st.Generation != 2 {
		t.Fatalf("after the rebuild: %+v", st)
	}
	checkLedgerComplete(t, e, poison.Stream, -1)
}

// TestUndecodableEventParksItsStream: an event the codec cannot read
// parks its stream too; the projector goes on past it.
func TestUndecodableEventParksItsStream(t *testing.T) {
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
	waitFor(t, eng, last, time.Minute)
	st := statusOf(t, eng, "customers")
	if st.State == projections.StateStopped || len(st.Parked) != 1 || st.Parked[0].EventID != bad.ID || st.Parked[0].Position != res.Position ||
		st.Parked[0].Stream != domain.StreamName(id) || st.Checkpoint < last {
		t.Fatalf("status %+v parked %+v", st, st.Parked)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM readmodels.customers WHERE id = $1`, id).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the undecodable customer has %d rows (%v)", n, err)
	}
	// Verify knows the parked stream holds its state before the event.
	rep, err := eng.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Projectors) != 1 || fmt.Sprint(rep.Projectors[0].Parked) != "["+domain.StreamName(id)+"]" {
		t.Fatalf("verify with a parked stream: %+v", rep)
	}
	// The event cannot be read, ever: a retry keeps the stream parked.
	err = eng.RetryParked(context.Background(), "customers", domain.StreamName(id))
	if !errors.Is(err, projections.ErrStillParked) {
		t.Fatalf("retry: %v", err)
	}
	if st := statusOf(t, eng, "customers"); len(st.Parked) != 1 || st.Parked[0].Attempts != 2 {
		t.Fatalf("after the retry: %+v", st.Parked)
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
