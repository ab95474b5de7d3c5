package projections_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/projections"
)

// victim is a customer stream the parking tests append to by hand, so
// that they know which of its events comes before, is, and comes after the
// poison event.
type victim struct {
	id       uuid.UUID
	next     uint64 // revision of the next event
	prevHash string
	ids      []uuid.UUID // event ids, by revision
	last     eventstore.Position
}

func newVictim() *victim { return &victim{id: uuid.New()} }

func (v *victim) stream() string { return domain.StreamName(v.id) }

// add appends events to the victim's stream and returns their ids.
func (v *victim) add(tb testing.TB, e *env, events ...domain.Event) []uuid.UUID {
	tb.Helper()
	ctx := context.Background()
	ids := make([]uuid.UUID, len(events))
	for i := range ids {
		ids[i] = uuid.New()
	}
	data, last, err := e.codec.Encode(ctx, eventcodec.Batch{
		Stream: v.stream(), FirstRevision: v.next, PrevHash: v.prevHash,
		Metadata: eventcodec.Metadata{CustomerID: v.id, Actor: "t", RecordedAt: time.Now().UTC()},
		Events:   events, IDs: ids,
	})
	if err != nil {
		tb.Fatal(err)
	}
	expected := eventstore.NoStream
	if v.next > 0 {
		expected = eventstore.Exact(v.next - 1)
	}
	res, err := e.store.Append(ctx, v.stream(), expected, data)
	if err != nil {
		tb.Fatal(err)
	}
	v.next += uint64(len(events))
	v.prevHash, v.last = last, res.Position
	v.ids = append(v.ids, ids...)
	return ids
}

func (v *victim) register(tb testing.TB, e *env) {
	tb.Helper()
	v.add(tb, e, domain.CustomerRegistered{CustomerID: v.id, Name: "Victim", Email: "victim@example.com", OccurredAt: time.Now().UTC()})
}

func (v *victim) contact(tb testing.TB, e *env, summary string) uuid.UUID {
	tb.Helper()
	return v.add(tb, e, domain.ContactLogged{ContactID: uuid.New(), Channel: domain.ChannelPhone, Direction: domain.DirectionOutbound,
		Summary: summary, By: "agent", OccurredAt: time.Now().UTC()})[0]
}

// ledgerRevisions lists the revisions the ledger holds for stream, in the
// order it applied them.
func ledgerRevisions(tb testing.TB, e *env, stream string) []uint64 {
	tb.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT revision FROM readmodels.ledger WHERE stream = $1 ORDER BY seq`, stream)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var r int64
		if err := rows.Scan(&r); err != nil {
			tb.Fatal(err)
		}
		out = append(out, uint64(r))
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// checkLedgerComplete checks that the ledger holds every handled event of
// the log exactly once, except those of stream from revision parkedFrom
// on (none when parkedFrom is -1), and each stream in revision order.
func checkLedgerComplete(tb testing.TB, e *env, stream string, parkedFrom int64) {
	tb.Helper()
	ctx := context.Background()
	want := map[eventstore.Position]bool{}
	from := eventstore.Start
	for {
		page, err := e.store.ReadAll(ctx, eventstore.ReadAllOptions{From: from, Limit: 1000})
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, rec := range page {
			from = rec.Position
			if rec.Type != domain.TypeContactLogged && rec.Type != domain.TypeCustomerRegistered {
				continue
			}
			if rec.Stream == stream && parkedFrom >= 0 && int64(rec.Revision) >= parkedFrom {
				continue
			}
			want[rec.Position] = true
		}
	}
	rows, err := e.pool.Query(ctx, `SELECT position, stream, revision FROM readmodels.ledger ORDER BY seq`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	got := 0
	lastRev := map[string]int64{}
	for rows.Next() {
		var (
			pos, rev int64
			s        string
		)
		if err := rows.Scan(&pos, &s, &rev); err != nil {
			tb.Fatal(err)
		}
		if !want[eventstore.Position(pos)] {
			tb.Fatalf("ledger holds %s@%d (position %d), which it should not", s, rev, pos)
		}
		if prev, ok := lastRev[s]; ok && rev <= prev {
			tb.Fatalf("ledger applied %s@%d after revision %d", s, rev, prev)
		}
		lastRev[s] = rev
		got++
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	if got != len(want) {
		tb.Fatalf("ledger holds %d events, want %d", got, len(want))
	}
}

func parkedOf(t *testing.T, eng *projections.Engine, name string) []projections.Parked {
	t.Helper()
	return statusOf(t, eng, name).Parked
}

// TestPoisonEventParksItsStream: an event a projector cannot apply parks
// its stream in that projector only. The checkpoint passes it, every other
// stream goes on, later events of the parked stream wait, and a retry
// after the fix applies them in order, exactly once.
func TestPoisonEventParksItsStream(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v := newVictim()
	v.register(t, e)
	v.contact(t, e, "first")
	_, _ = e.load(t, 11, 200)
	poison := v.contact(t, e, "poison") // revision 2
	poisonPos := v.last
	_, _ = e.load(t, 12, 50)
	l := newLedger("ledger")
	l.poison.Store(poison)
	eng := e.newEngine(t, e.engineConfig(t, newCustomers(t), l))
	run(t, eng)
	// Live events after the poison: the victim's and others'.
	v.contact(t, e, "waits 1")
	_, _ = e.load(t, 13, 30)
	v.contact(t, e, "waits 2")
	_, last := e.load(t, 14, 30)

	// Every projector passes the poison event: reading one's own writes
	// works for every other customer.
	waitFor(t, eng, last, time.Minute)
	st := statusOf(t, eng, "ledger")
	if st.State == projections.StateStopped || st.Poison != nil || st.Checkpoint < last {
		t.Fatalf("ledger status %+v: want it running past %d", st, last)
	}
	if len(st.Parked) != 1 {
		t.Fatalf("parked %+v, want the victim's stream", st.Parked)
	}
	p := st.Parked[0]
	if p.Stream != v.stream() || p.EventID != poison || p.Position != poisonPos || p.Revision != 2 || p.EventType != domain.TypeContactLogged ||
		!strings.Contains(p.Err, "division by zero") || p.Attempts != 1 || p.Waiting != 2 || p.ParkedAt.IsZero() {
		t.Fatalf("parked %+v, want %s@2 (position %d, id %s) with 2 events waiting", p, v.stream(), poisonPos, poison)
	}
	if got := statusOf(t, eng, "customers").Parked; len(got) != 0 {
		t.Fatalf("customers parked %+v: parking is per projector", got)
	}
	if got := ledgerRevisions(t, e, v.stream()); fmt.Sprint(got) != "[0 1]" {
		t.Fatalf("victim's ledger rows %v, want its last good state [0 1]", got)
	}
	checkLedgerComplete(t, e, v.stream(), 2)
	if stale, err := eng.StaleFor(ctx, v.stream()); err != nil || fmt.Sprint(stale) != "[ledger]" {
		t.Fatalf("stale projectors of the victim: %v %v", stale, err)
	}
	if stale, err := eng.StaleFor(ctx, v.stream(), "customers"); err != nil || len(stale) != 0 {
		t.Fatalf("customers is not stale for the victim: %v %v", stale, err)
	}

	// A retry before the fix fails the same way: still parked, one more
	// attempt, nothing applied.
	err := eng.RetryParked(ctx, "ledger", v.stream())
	if !errors.Is(err, projections.ErrStillParked) || !strings.Contains(err.Error(), "division by zero") {
		t.Fatalf("retry before the fix: %v", err)
	}
	if p := parkedOf(t, eng, "ledger"); len(p) != 1 || p[0].Attempts != 2 || p[0].Waiting != 2 {
		t.Fatalf("after a failed retry: %+v", p)
	}
	checkLedgerComplete(t, e, v.stream(), 2)

	// Asked of a process that does not run the projector, the retry is
	// queued for the one that does, which tries it at its next poll.
	other := e.newEngine(t, e.engineConfig(t, newCustomers(t), newLedger("ledger")))
	if err := other.RetryParked(ctx, "ledger", v.stream()); !errors.Is(err, projections.ErrRetryQueued) {
		t.Fatalf("retry through another process: %v", err)
	}
	if p := parkedOf(t, eng, "ledger"); len(p) != 1 || !p[0].RetryRequested {
		t.Fatalf("queued retry not recorded: %+v", p)
	}
	eventually(t, 10*time.Second, "the queued retry", func() bool {
		p := parkedOf(t, eng, "ledger")
		return len(p) == 1 && p[0].Attempts == 3 && !p[0].RetryRequested
	})
	checkLedgerComplete(t, e, v.stream(), 2)

	// After the fix, the retry applies the parked event and those that
	// waited, in order, and un-parks the stream.
	l.poison.Store(uuid.Nil)
	if err := eng.RetryParked(ctx, "ledger", v.stream()); err != nil {
		t.Fatalf("retry after the fix: %v", err)
	}
	if p := parkedOf(t, eng, "ledger"); len(p) != 0 {
		t.Fatalf("still parked after a successful retry: %+v", p)
	}
	if stale, err := eng.StaleFor(ctx, v.stream()); err != nil || len(stale) != 0 {
		t.Fatalf("stale after the retry: %v %v", stale, err)
	}
	if got := ledgerRevisions(t, e, v.stream()); fmt.Sprint(got) != "[0 1 2 3 4]" {
		t.Fatalf("victim's ledger rows %v after the retry", got)
	}
	checkLedgerComplete(t, e, v.stream(), -1)
	if err := eng.RetryParked(ctx, "ledger", v.stream()); !errors.Is(err, projections.ErrNotParked) {
		t.Fatalf("retry of a stream not parked: %v", err)
	}

	// The stream follows the log live again.
	v.contact(t, e, "after the retry")
	waitFor(t, eng, v.last, time.Minute)
	if got := ledgerRevisions(t, e, v.stream()); fmt.Sprint(got) != "[0 1 2 3 4 5]" {
		t.Fatalf("victim's ledger rows %v after a new event", got)
	}
	checkLedgerComplete(t, e, v.stream(), -1)
}

// TestRebuildParksPoisonStream: a rebuild that meets an event it cannot
// apply parks that stream in the new generation and completes.
func TestRebuildParksPoisonStream(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v := newVictim()
	v.register(t, e)
	v.contact(t, e, "first")
	_, _ = e.load(t, 21, 200)
	poison := v.contact(t, e, "poison")
	_, _ = e.load(t, 22, 50)
	v.contact(t, e, "waits 1")
	v.contact(t, e, "waits 2")
	_, last := e.load(t, 23, 30)
	l := newLedger("ledger")
	eng := e.newEngine(t, e.engineConfig(t, l))
	run(t, eng)
	waitFor(t, eng, last, time.Minute)
	checkLedgerComplete(t, e, v.stream(), -1)

	// A new version of the projector cannot apply the event: the rebuild
	// parks its stream and switches over anyway.
	l.poison.Store(poison)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := eng.Rebuild(rctx, "ledger", nil); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	st := statusOf(t, eng, "ledger")
	if st.Generation != 2 || st.RebuildError != "" || len(st.Parked) != 1 || st.Parked[0].Stream != v.stream() || st.Parked[0].EventID != poison ||
		st.Parked[0].Waiting != 2 || st.Parked[0].Generation != 2 {
		t.Fatalf("after the rebuild: %+v parked %+v", st, st.Parked)
	}
	if got := ledgerRevisions(t, e, v.stream()); fmt.Sprint(got) != "[0 1]" {
		t.Fatalf("victim's rows %v in the rebuilt generation", got)
	}
	checkLedgerComplete(t, e, v.stream(), 2)
	waitFor(t, eng, last, 10*time.Second)

	l.poison.Store(uuid.Nil)
	if err := eng.RetryParked(ctx, "ledger", v.stream()); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := ledgerRevisions(t, e, v.stream()); fmt.Sprint(got) != "[0 1 2 3 4]" {
		t.Fatalf("victim's rows %v after the retry", got)
	}
	checkLedgerComplete(t, e, v.stream(), -1)
}

// TestRetryWhileTheStreamGoesOn retries a parked stream while events keep
// arriving on it and on others: whatever the interleaving with the live
// batches, each event is applied once and in order.
func TestRetryWhileTheStreamGoesOn(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v := newVictim()
	v.register(t, e)
	poison := v.contact(t, e, "poison")
	l := newLedger("ledger")
	l.poison.Store(poison)
	cfg := e.engineConfig(t, l)
	cfg.BatchSize = 7
	eng := e.newEngine(t, cfg)
	run(t, eng)
	waitFor(t, eng, v.last, time.Minute)
	if p := parkedOf(t, eng, "ledger"); len(p) != 1 {
		t.Fatalf("parked %+v", p)
	}
	l.poison.Store(uuid.Nil)
	retried := make(chan error, 1)
	go func() {
		time.Sleep(30 * time.Millisecond)
		retried <- eng.RetryParked(ctx, "ledger", v.stream())
	}()
	for i := range 40 {
		v.contact(t, e, fmt.Sprint("live ", i))
		if i%4 == 0 {
			_, _ = e.load(t, uint64(300+i), 10)
		}
	}
	if err := <-retried; err != nil {
		t.Fatalf("retry: %v", err)
	}
	waitFor(t, eng, v.last, time.Minute)
	_, last := e.load(t, 399, 5)
	waitFor(t, eng, last, time.Minute)
	if p := parkedOf(t, eng, "ledger"); len(p) != 0 {
		t.Fatalf("parked after the retry: %+v", p)
	}
	if got := ledgerRevisions(t, e, v.stream()); len(got) != int(v.next) {
		t.Fatalf("victim has %d rows, want %d: %v", len(got), v.next, got)
	}
	checkLedgerComplete(t, e, v.stream(), -1)
}
