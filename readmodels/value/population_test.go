package value_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/value"
)

// TestSnapshotScoresEqualTheDefinition proves the API's fast path (a
// population snapshot and the live figures of the customers changed
// since) gives, for every customer and at every instant, exactly what the
// documented SQL of readmodels/README.md and readmodels.customer_values
// give: over a generated history with full and partial refunds, churns
// and win-backs, erasure, purchases a few minutes either side of the
// 365-day window's edge (which the instants judged move across), whole
// days of recency and equal amounts (ties at the quintile cutoffs), one
// snapshot judged from an hour before it to a day after, then again after
// more events (new, backdated and later purchases, refunds, churns,
// reactivations, erasures), after a background refresh and after a
// rebuild of the projector.
func TestSnapshotScoresEqualTheDefinition(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second).Add(-3 * time.Hour)
	rng := rand.New(rand.NewPCG(9, 21))
	var last eventstore.Position
	send := func(id uuid.UUID, cmd domain.Command, at time.Time) commands.Result {
		t.Helper()
		res, err := m.Commands.Handle(ctx, commands.Request{CustomerID: id, Command: cmd, CommandID: uuid.New(), Actor: "tester", At: at})
		if err != nil {
			t.Fatalf("%T at %s: %v", cmd, at, err)
		}
		if res.Position > last {
			last = res.Position
		}
		return res
	}
	wait := func() {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := m.Engine.WaitForPosition(wctx, last); err != nil {
			t.Fatal(err)
		}
	}
	type buyer struct {
		id        uuid.UUID
		currency  string
		purchases []uuid.UUID
	}
	year := 365 * 24 * time.Hour
	// Either side of the window's edge at the instants judged below.
	edges := []time.Duration{-2 * time.Hour, -30 * time.Minute, -time.Minute, time.Minute, 20 * time.Minute, 50 * time.Minute, 3 * time.Hour, 20 * time.Hour, 26 * time.Hour}
	buy := func(b *buyer, at time.Time) {
		amounts := []string{"10.00", "25.00", "25.00", "40.00"}
		if b.currency == "JPY" {
			amounts = []string{"1000", "2500"}
		}
		res := send(b.id, domain.RecordPurchase{Amount: amounts[rng.IntN(len(amounts))], Currency: b.currency, OccurredAt: &at, Reference: uuid.NewString()}, at)
		b.purchases = append(b.purchases, res.CreatedID)
	}
	start := now.Add(-800 * 24 * time.Hour)
	var all []*buyer
	for i := range 120 {
		b := &buyer{currency: "EUR"}
		if i%6 == 5 {
			b.currency = "JPY"
		}
		b.id = send(uuid.Nil, domain.RegisterCustomer{Name: fmt.Sprintf("Buyer %d", i), Email: fmt.Sprintf("b%d@example.com", i)}, start).CustomerID
		all = append(all, b)
		var times []time.Time
		switch {
		case i%10 == 9: // no purchase; some with points only
			if i%20 == 9 {
				send(b.id, domain.AwardPoints{Points: 50, Reason: "welcome"}, now.Add(-100*24*time.Hour))
			}
		case i%5 == 0: // around the window's edge
			times = append(times, now.Add(-year+edges[(i/5)%len(edges)]))
			if i%3 == 0 {
				times = append(times, now.Add(-year+edges[(i/3)%len(edges)]))
			}
		default:
			for range 1 + rng.IntN(6) {
				days := time.Duration(rng.IntN(500)) * 24 * time.Hour
				if rng.IntN(2) == 0 { // whole days before now: equal recencies, a boundary at now
					times = append(times, now.Add(-days))
				} else {
					times = append(times, now.Add(-days-time.Duration(rng.Int64N(int64(24*time.Hour)))))
				}
			}
			if i%11 == 1 { // after the earliest instant judged
				times = append(times, now.Add(-40*time.Minute))
			}
		}
		slices.SortFunc(times, time.Time.Compare)
		for _, at := range times {
			buy(b, at)
		}
		if len(b.purchases) > 0 {
			switch i % 9 {
			case 1: // the last one refunded in full
				send(b.id, domain.RefundPurchase{PurchaseID: b.purchases[len(b.purchases)-1]}, times[len(times)-1].Add(time.Hour))
			case 2: // the first one in part
				amount := "5.00"
				if b.currency == "JPY" {
					amount = "500"
				}
				send(b.id, domain.RefundPurchase{PurchaseID: b.purchases[0], Amount: &amount}, times[len(times)-1].Add(time.Minute))
			}
		}
		switch i % 16 {
		case 3, 4: // churned, 3 won back
			send(b.id, domain.MarkChurned{Reason: "left"}, now.Add(-10*24*time.Hour))
			if i%16 == 3 {
				send(b.id, domain.Reactivate{Reason: "back"}, now.Add(-5*24*time.Hour))
			}
		}
	}
	wait()

	// One snapshot for every instant of the first phase.
	q := value.NewQueries(m.Pool, value.WithCache(value.CacheConfig{RefreshChanges: 1 << 30, RefreshAge: 1 << 62}))
	instants := []time.Duration{0, 30 * time.Minute, 2 * time.Hour, 25 * time.Hour, -90 * time.Minute, 45 * time.Second}
	populations := map[int]bool{}
	segments := map[string]bool{}
	for _, d := range instants {
		n := compareWithDefinition(t, fmt.Sprintf("snapshot at now, judged at now%+v", d), m.Pool, q, now.Add(d), segments)
		populations[n] = true
	}
	if q.Snapshots() != 1 {
		t.Fatalf("%d snapshots built, want 1", q.Snapshots())
	}
	if len(populations) < 3 {
		t.Fatalf("the window's move changed the population only %d times: the edges are not exercised", len(populations)-1)
	}

	// More events after the snapshot.
	later := now.Add(time.Hour)
	for i, b := range all {
		switch i % 7 {
		case 0:
			buy(b, now.Add(-200*24*time.Hour)) // backdated
		case 1:
			buy(b, now.Add(10*time.Minute))
		case 2:
			if len(b.purchases) > 0 && i%9 != 1 { // not refunded in full yet
				send(b.id, domain.RefundPurchase{PurchaseID: b.purchases[len(b.purchases)-1]}, later)
			}
		case 3:
			if i%14 == 3 {
				send(b.id, domain.MarkChurned{Reason: "left"}, later)
			}
		}
		if i%16 == 4 {
			send(b.id, domain.Reactivate{Reason: "won back"}, later)
		}
		if i%25 == 6 {
			send(b.id, domain.EraseCustomerData{Reason: "asked"}, later)
		}
	}
	newcomer := &buyer{currency: "EUR"}
	newcomer.id = send(uuid.Nil, domain.RegisterCustomer{Name: "Newcomer", Email: "new@example.com"}, start).CustomerID
	buy(newcomer, now.Add(-time.Hour))
	buy(newcomer, now.Add(5*time.Minute))
	wait()
	for _, d := range []time.Duration{2 * time.Hour, 30 * time.Minute, 25 * time.Hour, 70 * time.Minute} {
		compareWithDefinition(t, fmt.Sprintf("after more events, judged at now%+v", d), m.Pool, q, now.Add(d), segments)
	}
	if q.Snapshots() != 1 {
		t.Fatalf("%d snapshots built, want 1", q.Snapshots())
	}

	// A background refresh, while judging on.
	bq := value.NewQueries(m.Pool, value.WithCache(value.CacheConfig{Background: true, RefreshAge: 30 * time.Minute}))
	compareWithDefinition(t, "first snapshot at now+3h", m.Pool, bq, now.Add(3*time.Hour), segments)
	if _, err := bq.At(now.Add(4*time.Hour)).Members(ctx, value.SegmentLost); err != nil { // an hour from the snapshot
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for bq.Snapshots() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no background refresh: %d snapshots", bq.Snapshots())
		}
		time.Sleep(20 * time.Millisecond)
	}
	compareWithDefinition(t, "refreshed in the background", m.Pool, bq, now.Add(4*time.Hour), segments)

	// A rebuild switches generations: the snapshot follows.
	m.Rebuild(t, value.Name)
	compareWithDefinition(t, "after a rebuild", m.Pool, q, now.Add(2*time.Hour), segments)
	if q.Snapshots() != 2 {
		t.Fatalf("%d snapshots after the rebuild, want 2", q.Snapshots())
	}
	if len(segments) < 6 {
		t.Fatalf("the history reached only the segments %v", segments)
	}
}

// compareWithDefinition compares, at q's instant, every customer's value
// and every segment's members from q with the README's documented SQL and
// with readmodels.customer_values; it returns the population's size.
func compareWithDefinition(t *testing.T, when string, pool *pgxpool.Pool, queries *value.Queries, at time.Time, segments map[string]bool) int {
	t.Helper()
	ctx := context.Background()
	q := queries.At(at)
	rows, err := pool.Query(ctx, readmeBlocks(t)["rfm"], at)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close() // a failure must not keep the connection
	bySegment := map[string][]uuid.UUID{}
	want := map[uuid.UUID]string{}
	population, n := 0, 0
	for rows.Next() {
		var (
			id       uuid.UUID
			recency  *int32
			freq     int64
			monetary int64
			r, f, m  *int64
			segment  *string
		)
		if err := rows.Scan(&id, &recency, &freq, &monetary, &r, &f, &m, &segment); err != nil {
			t.Fatal(err)
		}
		n++
		if segment != nil {
			population++
			bySegment[*segment] = append(bySegment[*segment], id)
			segments[*segment] = true
		}
		fast, err := q.Value(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = fmt.Sprint(deref(recency), freq, monetary, deref(r), deref(f), deref(m), deref(segment))
		if got := fmt.Sprint(deref(fast.RecencyDays), fast.Frequency, fast.MonetaryMinor, deref(fast.R), deref(fast.F), deref(fast.M), deref(fast.Segment)); got != want[id] {
			t.Fatalf("%s: customer %s: the fast path says %s, the README's SQL %s", when, id, got, want[id])
		}
	}
	if err := rows.Err(); err != nil || n == 0 || population == 0 {
		t.Fatalf("%s: README rfm: %d rows, %d scored, %v", when, n, population, err)
	}
	rows, err = pool.Query(ctx, `SELECT customer_id, recency_days, frequency, monetary, r, f, m, rfm_segment FROM readmodels.customer_values($1)`, at)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	functionRows := 0
	for rows.Next() {
		var (
			id       uuid.UUID
			recency  *int32
			freq     int32
			monetary int64
			r, f, m  *int32
			segment  *string
		)
		if err := rows.Scan(&id, &recency, &freq, &monetary, &r, &f, &m, &segment); err != nil {
			t.Fatal(err)
		}
		functionRows++
		if got := fmt.Sprint(deref(recency), freq, monetary, deref(r), deref(f), deref(m), deref(segment)); got != want[id] {
			t.Fatalf("%s: customer %s: customer_values says %s, the README's SQL %s", when, id, got, want[id])
		}
	}
	if err := rows.Err(); err != nil || functionRows != n {
		t.Fatalf("%s: customer_values: %d rows, the README's SQL %d (%v)", when, functionRows, n, err)
	}
	for _, s := range value.Segments() {
		fast, err := q.Members(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		def, err := q.MembersSQL(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, ids := range [][]uuid.UUID{fast, def, bySegment[s]} {
			slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
		}
		if !slices.Equal(fast, bySegment[s]) || !slices.Equal(def, bySegment[s]) {
			t.Fatalf("%s: segment %s: fast path %d members, customer_values %d, README %d", when, s, len(fast), len(def), len(bySegment[s]))
		}
	}
	if v, err := q.Value(ctx, uuid.New()); err != nil || v.Frequency != 0 || v.R != nil || v.RecencyDays != nil {
		t.Fatalf("%s: a customer the read model lacks: %+v, %v", when, v, err)
	}
	return population
}
