package value_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/value"
)

// TestValueRollupAgreesWithTheDocumentedSQL proves that the value figures
// the API answers from the day sums (Report) are exactly those of the
// documented SQL (ReportSQL, readmodels/README.md "Value figures") for
// every grouping and for periods up to now, in the past, of whole days,
// within a day, on month boundaries and starting or ending at a purchase:
// over a generated history of purchases (several at one instant, on both
// sides of month boundaries, after the instant judged), partial and full
// refunds, registrations with classification, account managers, then
// live reclassifications, reassignments, backdated purchases, refunds and
// erasures, small batches, and a rebuild. Without the re-keying the same
// comparison must fail.
func TestValueRollupAgreesWithTheDocumentedSQL(t *testing.T) {
	t.Run("with re-keying", func(t *testing.T) {
		t.Parallel()
		for step, diffs := range valueAgreement(t, value.NewProjector(), true) {
			for _, d := range diffs {
				t.Errorf("%s: %s", step, d)
			}
		}
	})
	t.Run("without re-keying the comparison fails", func(t *testing.T) {
		t.Parallel()
		diffs := valueAgreement(t, value.NewProjectorWithoutRekey(), false)["after the live changes"]
		if len(diffs) == 0 {
			t.Fatal("day sums that are not re-keyed agree with the documented SQL: the comparison proves nothing")
		}
		t.Logf("without re-keying, %d reports differ, e.g. %s", len(diffs), diffs[0])
	})
}

func valueAgreement(t *testing.T, p value.Projector, every bool) map[string][]string {
	t.Helper()
	m := apptest.MustOpen(t, func(c *app.Config) { c.RunProjections = false })
	ctx := context.Background()
	directory, err := customers.NewProjector(customers.Config{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := projections.New(projections.Config{Pool: m.Pool, Store: m.Store, Codec: m.Codec,
		Projectors: []projections.Projector{directory, p}, BatchSize: 7, RebuildBatchSize: 11,
		LockRetryInterval: 100 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := eng.Run(runCtx); err != nil && runCtx.Err() == nil {
			t.Errorf("engine: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })

	realNow := time.Now().UTC().Truncate(time.Second)
	now := realNow.Add(-3 * time.Hour) // the instant judged: some purchases come after it
	rng := rand.New(rand.NewPCG(21, 9))
	var last eventstore.Position
	send := func(id uuid.UUID, cmd domain.Command, at time.Time) commands.Result {
		t.Helper()
		res, err := m.Commands.Handle(ctx, commands.Request{CustomerID: id, Command: cmd, CommandID: uuid.New(), Actor: "tester", At: at})
		if err != nil {
			t.Fatalf("%T at %s: %v", cmd, at, err)
		}
		last = max(last, res.Position)
		return res
	}
	wait := func() {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := eng.WaitForPosition(wctx, last); err != nil {
			t.Fatal(err)
		}
	}
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	// Instants purchases fall on: month boundaries and either side of
	// them, midnights, the instant judged and after it, and random ones.
	instants := []time.Time{month, month.Add(-time.Minute), month.AddDate(0, -1, 0), month.AddDate(0, -1, 0).Add(time.Second),
		month.AddDate(0, -3, 0), day, day.Add(-time.Second), day.AddDate(0, 0, -90), now.Add(-90 * 24 * time.Hour), now,
		now.Add(time.Hour), now.Add(2 * time.Hour), now.Add(-100 * 24 * time.Hour).Add(7 * time.Hour)}
	when := func() time.Time {
		if rng.IntN(3) == 0 {
			return instants[rng.IntN(len(instants))]
		}
		return now.Add(-time.Duration(rng.Int64N(int64(500 * 24 * time.Hour))))
	}
	type buyer struct {
		id        uuid.UUID
		currency  string
		purchases []uuid.UUID
	}
	segments, tiers, regions := []string{"smb", "enterprise", ""}, []string{"A", "B", ""}, []string{"emea", "apac"}
	start := now.Add(-600 * 24 * time.Hour)
	var all []*buyer
	buy := func(b *buyer, at time.Time) {
		amount := []string{"10.00", "25.00", "7.35"}[rng.IntN(3)]
		if b.currency == "JPY" {
			amount = "1200"
		}
		res := send(b.id, domain.RecordPurchase{Amount: amount, Currency: b.currency, OccurredAt: &at, Reference: uuid.NewString()}, realNow)
		b.purchases = append(b.purchases, res.CreatedID)
	}
	refunded := map[uuid.UUID]bool{}
	refund := func(b *buyer, full bool) {
		var open []uuid.UUID
		for _, id := range b.purchases {
			if !refunded[id] {
				open = append(open, id)
			}
		}
		if len(open) == 0 {
			return
		}
		id := open[rng.IntN(len(open))]
		refunded[id] = true
		var amount *string
		if !full {
			a := "1.00"
			if b.currency == "JPY" {
				a = "100"
			}
			amount = &a
		}
		send(b.id, domain.RefundPurchase{PurchaseID: id, Amount: amount}, realNow)
	}
	for i := range 70 {
		b := &buyer{currency: "EUR"}
		if i%7 == 3 {
			b.currency = "JPY"
		}
		b.id = send(uuid.Nil, domain.RegisterCustomer{Name: fmt.Sprintf("Buyer %d", i), Email: fmt.Sprintf("v%d@example.com", i),
			Segment: segments[i%3], Tier: tiers[(i/3)%3], Region: regions[i%2]}, start).CustomerID
		if i%3 != 2 {
			send(b.id, domain.AssignTeamMember{Role: domain.RoleAccountManager, Member: fmt.Sprintf("am-%d", i%4)}, start)
		}
		all = append(all, b)
		n := rng.IntN(9)
		if i%10 == 0 {
			n = 0
		}
		at := when()
		for k := range n {
			if k > 0 && rng.IntN(4) != 0 { // mostly a new instant; sometimes the same again
				at = when()
			}
			buy(b, at)
		}
		switch i % 5 {
		case 1:
			refund(b, true)
		case 2:
			refund(b, false)
		}
	}
	wait()
	q := value.NewQueries(m.Pool)
	out := map[string][]string{}
	compare := func(step string) {
		t.Helper()
		out[step] = compareValueReports(t, q, now, m.Pool)
	}
	if every {
		compare("after the history")
	}
	for i, b := range all {
		if i%3 == 0 {
			seg, tier := segments[(i+1)%3], []string{"A", "B", "C"}[i%3]
			send(b.id, domain.ClassifyCustomer{Segment: &seg, Tier: &tier}, realNow)
		}
		if i%4 == 0 {
			send(b.id, domain.AssignTeamMember{Role: domain.RoleAccountManager, Member: fmt.Sprintf("am-%d", (i+1)%5)}, realNow)
		}
		if i%5 == 0 {
			region := "amer"
			send(b.id, domain.ClassifyCustomer{Region: &region}, realNow)
		}
		if i%6 == 1 {
			buy(b, when()) // often backdated between earlier ones
		}
		if i%8 == 5 {
			refund(b, true)
		}
		if i%9 == 4 {
			send(b.id, domain.EraseCustomerData{Reason: "asked"}, realNow)
		}
	}
	wait()
	compare("after the live changes")
	if !every {
		return out
	}
	if err := eng.Rebuild(ctx, value.Name, nil); err != nil {
		t.Fatal(err)
	}
	compare("after a rebuild")
	return out
}

// compareValueReports runs every grouping × period with the day sums and
// with the documented SQL, and lists the differences.
func compareValueReports(t *testing.T, q *value.Queries, now time.Time, pool *pgxpool.Pool) []string {
	t.Helper()
	ctx := context.Background()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	periods := [][2]time.Time{
		{now.Add(-analytics.DefaultPeriod), now},                         // the default
		{now.Add(-365 * 24 * time.Hour), now},                            // a year up to now
		{now.Add(-800 * 24 * time.Hour), now.Add(24 * time.Hour)},        // everything
		{now.Add(-200 * 24 * time.Hour), now.Add(-100 * 24 * time.Hour)}, // in the past, edges inside days
		{day.AddDate(0, 0, -120), day.AddDate(0, 0, -30)},                // whole days only, in the past
		{day.AddDate(0, -4, 0).Add(5 * time.Hour), day.Add(-time.Second)},
		{day.AddDate(0, 0, -90).Add(10 * time.Hour), day.AddDate(0, 0, -90).Add(15 * time.Hour)}, // within one day
		{day.AddDate(0, 0, -91).Add(23 * time.Hour), day.AddDate(0, 0, -90).Add(time.Hour)},      // two partial days
		{month.AddDate(0, -3, 0), month},                                                         // calendar months
		{month.AddDate(0, -1, 0).Add(time.Second), month.Add(-time.Minute)},
		{now.Add(-90 * 24 * time.Hour), now.Add(-90 * 24 * time.Hour)}, // empty
	}
	// Periods starting and ending at purchases (bounds inclusive, exclusive).
	var a, b time.Time
	if err := pool.QueryRow(ctx, `SELECT min(occurred_at) FILTER (WHERE occurred_at > $1::timestamptz - interval '300 days'),
		max(occurred_at) FILTER (WHERE occurred_at < $1::timestamptz - interval '20 days') FROM readmodels.purchases`, now).Scan(&a, &b); err != nil {
		t.Fatal(err)
	}
	periods = append(periods, [2]time.Time{a, b}, [2]time.Time{a.Add(time.Microsecond), b.Add(time.Microsecond)})
	var diffs []string
	for _, g := range []analytics.GroupBy{analytics.All, analytics.Segment, analytics.Tier, analytics.Region, analytics.Owner, analytics.Month} {
		for _, pd := range periods {
			p := analytics.Params{From: pd[0], To: pd[1], GroupBy: g}
			want, err := q.ReportSQL(ctx, p)
			if err != nil {
				t.Fatalf("by %q: %v", g, err)
			}
			got, err := q.Report(ctx, p)
			if err != nil {
				t.Fatalf("by %q from the day sums: %v", g, err)
			}
			if !reflect.DeepEqual(got.Groups, want.Groups) {
				diffs = append(diffs, fmt.Sprintf("by %q over [%s, %s): day sums %s, documented SQL %s",
					g, pd[0].Format(time.RFC3339), pd[1].Format(time.RFC3339), showValue(got.Groups), showValue(want.Groups)))
			}
		}
	}
	return diffs
}

func showValue(gs []value.Group) string {
	s := ""
	for _, g := range gs {
		s += fmt.Sprintf("[%v %s rev=%d n=%d cust=%d rep=%d] ", deref(g.Key), g.Currency, g.RevenueMinor, g.Purchases, g.Customers, g.RepeatCustomers)
	}
	return s
}
