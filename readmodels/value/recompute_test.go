package value_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/value"
)

// The independent model: what the product's definitions say, written
// from the commands the test sent, without the domain's state or the read
// model's SQL.

type xLot struct {
	id              uuid.UUID
	earned, expires time.Time
	points, remain  int64
	purchase        uuid.UUID
	fromPurchase    bool
}

type xPurchase struct {
	id               uuid.UUID
	at               time.Time
	amount, refunded int64
	points           int64
}

type xCustomer struct {
	id        uuid.UUID
	segment   string
	currency  string
	decimals  int
	churned   bool
	purchases []*xPurchase
	lots      []*xLot
	// ledger is (kind, points) of every entry stored.
	ledger []string
}

func (c *xCustomer) unit() int64 {
	u := int64(1)
	for range c.decimals {
		u *= 10
	}
	return u
}

func (c *xCustomer) balance(at time.Time) int64 {
	var n int64
	for _, l := range c.lots {
		if at.Before(l.expires) {
			n += l.remain
		}
	}
	return n
}

// take spends points at t from the lots not expired, first the one of
// first (a refunded purchase's), then the earliest earned.
func (c *xCustomer) take(points int64, t time.Time, first uuid.UUID) int64 {
	order := slices.Clone(c.lots)
	slices.SortStableFunc(order, func(a, b *xLot) int {
		if (a.fromPurchase && a.purchase == first) != (b.fromPurchase && b.purchase == first) {
			if a.fromPurchase && a.purchase == first {
				return -1
			}
			return 1
		}
		return a.earned.Compare(b.earned)
	})
	var took int64
	for _, l := range order {
		if points == 0 || !t.Before(l.expires) {
			continue
		}
		n := min(points, l.remain)
		l.remain -= n
		points -= n
		took += n
	}
	return took
}

func (c *xCustomer) earn(id uuid.UUID, points int64, at time.Time, purchase uuid.UUID, fromPurchase bool) {
	c.lots = append(c.lots, &xLot{id: id, earned: at, expires: at.AddDate(0, 12, 0), points: points, remain: points, purchase: purchase, fromPurchase: fromPurchase})
	kind := value.KindAward
	if fromPurchase {
		kind = value.KindPurchase
	}
	c.ledger = append(c.ledger, fmt.Sprintf("%s %d", kind, points))
}

type action struct {
	at time.Time
	do func(at time.Time)
}

// TestValueFiguresMatchAnIndependentRecomputation generates two years of
// purchases, refunds (full and partial), awards, redemptions (some above
// the balance), churns and points expiring, through the command side;
// recomputes every customer's value, RFM scores and segment, loyalty
// balance, expiring points and ledger, and the value figures by segment
// and by month from the commands alone; and compares them with the read
// model, then again after erasing customers (nothing may change but the
// reasons) and after a rebuild.
func TestValueFiguresMatchAnIndependentRecomputation(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	rng := rand.New(rand.NewPCG(21, 9))
	var last eventstore.Position
	send := func(id uuid.UUID, cmd domain.Command, at time.Time) (commands.Result, error) {
		res, err := m.Commands.Handle(ctx, commands.Request{CustomerID: id, Command: cmd, CommandID: uuid.New(), Actor: "tester", At: at})
		if err == nil && res.Position > last {
			last = res.Position
		}
		return res, err
	}
	must := func(res commands.Result, err error) commands.Result {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	segments := []string{"enterprise", "smb", "consumer"}
	var all []*xCustomer
	insufficient := 0
	for i := range 90 {
		c := &xCustomer{segment: segments[i%3], currency: "EUR", decimals: 2}
		if i%5 == 4 {
			c.currency, c.decimals = "JPY", 0
		}
		start := now.Add(-800 * 24 * time.Hour)
		reg := must(send(uuid.Nil, domain.RegisterCustomer{Name: fmt.Sprintf("Buyer %d", i), Email: fmt.Sprintf("buyer%d@example.com", i), Segment: c.segment}, start))
		c.id = reg.CustomerID
		all = append(all, c)

		var actions []action
		for range rng.IntN(9) { // 0–8 purchases
			at := now.Add(-time.Duration(rng.Int64N(int64(760*24*time.Hour))) - time.Hour)
			minor := int64(100 + rng.IntN(50000))
			if c.currency == "JPY" {
				minor = int64(100 + rng.IntN(60000))
			}
			refund := rng.IntN(10) // 0–1: full refund, 2: partial
			refundAt := at.Add(time.Duration(rng.Int64N(int64(now.Sub(at)))))
			actions = append(actions, action{at: at, do: func(at time.Time) {
				amount := domain.FormatAmount(minor, c.decimals)
				res := must(send(c.id, domain.RecordPurchase{Amount: amount, Currency: c.currency, OccurredAt: &at, Reference: uuid.NewString()}, at))
				p := &xPurchase{id: res.CreatedID, at: at, amount: minor, points: minor / c.unit()}
				c.purchases = append(c.purchases, p)
				if p.points > 0 {
					c.earn(p.id, p.points, at, p.id, true)
				}
				if refund > 2 {
					return
				}
				actionsLater := func(at time.Time) {
					var amt *string
					left := p.amount - p.refunded
					a := left
					if refund == 2 && left > 1 {
						a = 1 + rng.Int64N(left-1)
						s := domain.FormatAmount(a, c.decimals)
						amt = &s
					}
					must(send(c.id, domain.RefundPurchase{PurchaseID: p.id, Amount: amt}, at))
					p.refunded += a
					entitlement := min(p.points, (p.amount-p.refunded)/c.unit())
					if drop := p.points - entitlement; drop > 0 {
						took := c.take(drop, at, p.id)
						c.ledger = append(c.ledger, fmt.Sprintf("%s %d", value.KindRefund, -took))
					}
					p.points = entitlement
				}
				pending = append(pending, action{at: refundAt, do: actionsLater})
			}})
		}
		for range rng.IntN(3) {
			at := now.Add(-time.Duration(rng.Int64N(int64(700 * 24 * time.Hour))))
			points := int64(1 + rng.IntN(300))
			actions = append(actions, action{at: at, do: func(at time.Time) {
				res := must(send(c.id, domain.AwardPoints{Points: points, Reason: "goodwill"}, at))
				c.earn(res.CreatedID, points, at, uuid.Nil, false)
			}})
		}
		for range rng.IntN(4) {
			at := now.Add(-time.Duration(rng.Int64N(int64(700 * 24 * time.Hour))))
			actions = append(actions, action{at: at, do: func(at time.Time) {
				balance := c.balance(at)
				points := 1 + rng.Int64N(max(balance, 1)*3/2+1)
				_, err := send(c.id, domain.RedeemPoints{Points: points, Reason: "voucher"}, at)
				if points > balance {
					if !isInsufficient(err) {
						t.Fatalf("redeem %d of %d at %s: %v, want insufficient_points", points, balance, at, err)
					}
					insufficient++
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				c.take(points, at, uuid.Nil)
				c.ledger = append(c.ledger, fmt.Sprintf("%s %d", value.KindRedemption, -points))
			}})
		}
		if rng.IntN(8) == 0 {
			at := now.Add(-time.Duration(rng.Int64N(int64(30 * 24 * time.Hour))))
			actions = append(actions, action{at: at, do: func(at time.Time) {
				must(send(c.id, domain.MarkChurned{Reason: "left"}, at))
				c.churned = true
			}})
		}
		run(actions)
	}
	if insufficient == 0 {
		t.Fatal("no redemption above the balance was tried")
	}
	wait := func() {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := m.Engine.WaitForPosition(wctx, last); err != nil {
			t.Fatal(err)
		}
	}
	wait()
	q := value.NewQueries(m.Pool).At(now)
	check := func(when string) {
		t.Helper()
		compareValues(t, when, q, all, now)
		compareLoyalty(t, when, q, all, now)
		compareReport(t, when, q, all, analytics.Params{From: now.Add(-90 * 24 * time.Hour), To: now, GroupBy: analytics.Segment})
		compareReport(t, when, q, all, analytics.Params{From: now.Add(-400 * 24 * time.Hour), To: now, GroupBy: analytics.Month})
		compareReport(t, when, q, all, analytics.Params{From: now.Add(-800 * 24 * time.Hour), To: now})
	}
	check("projected")
	checkReadmeSQL(t, m.Pool, q, all, now)
	// The API's list filter gives the champions of now.
	champions := map[string]bool{}
	values := expectedValues(all, now)
	for _, c := range all {
		if ev := values[c.id]; ev.segment == value.SegmentChampions {
			champions[c.id.String()] = true
		}
	}
	resp := m.Get(t, "analyst", "/v1/customers?rfm=champions&limit=500")
	var page struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	resp.JSON(t, &page)
	if resp.Status != http.StatusOK || len(page.Items) != len(champions) || len(champions) == 0 {
		t.Fatalf("rfm=champions: %d, %d items, want %d", resp.Status, len(page.Items), len(champions))
	}
	for _, it := range page.Items {
		if !champions[it.ID] {
			t.Fatalf("rfm=champions lists %s, which is not one", it.ID)
		}
	}

	// Erasure changes no figure.
	for _, c := range all[:6] {
		must(send(c.id, domain.EraseCustomerData{Reason: "test"}, time.Now()))
	}
	wait()
	check("after erasing six customers")
	var reasons int
	if err := m.Pool.QueryRow(ctx, `SELECT count(reason) FROM readmodels.loyalty_ledger WHERE customer_id = ANY($1)`,
		[]uuid.UUID{all[0].id, all[1].id, all[2].id, all[3].id, all[4].id, all[5].id}).Scan(&reasons); err != nil || reasons != 0 {
		t.Fatalf("erased customers keep %d reasons (%v)", reasons, err)
	}
	m.Rebuild(t, value.Name)
	check("after a rebuild")
	m.CheckReconciles(t, "after a rebuild", value.Name)
}

// pending collects refunds planned while purchases run; run executes
// every action in time order, refunds included.
var pending []action

func run(actions []action) {
	pending = nil
	queue := slices.Clone(actions)
	for len(queue) > 0 {
		slices.SortStableFunc(queue, func(a, b action) int { return a.at.Compare(b.at) })
		next := queue[0]
		queue = queue[1:]
		pending = nil
		next.do(next.at)
		queue = append(queue, pending...)
	}
}

func isInsufficient(err error) bool {
	var de *domain.Error
	return errors.As(err, &de) && de.Reason == domain.ReasonInsufficientPoints
}

type expected struct {
	recency   *int
	frequency int
	monetary  int64
	r, f, m   int
	segment   string
	scored    bool
}

func expectedValues(all []*xCustomer, now time.Time) map[uuid.UUID]expected {
	out := map[uuid.UUID]expected{}
	window := now.Add(-365 * 24 * time.Hour)
	for _, c := range all {
		var e expected
		var lastAt time.Time
		for _, p := range c.purchases {
			counted := p.amount > p.refunded
			if counted && p.at.After(lastAt) {
				lastAt = p.at
			}
			if p.at.After(window) {
				e.monetary += p.amount - p.refunded
				if counted {
					e.frequency++
				}
			}
		}
		if !lastAt.IsZero() {
			days := int(now.Sub(lastAt) / (24 * time.Hour))
			e.recency = &days
		}
		e.scored = !c.churned && e.frequency > 0
		out[c.id] = e
	}
	var pop []*xCustomer
	for _, c := range all {
		if out[c.id].scored {
			pop = append(pop, c)
		}
	}
	for _, c := range pop {
		e := out[c.id]
		var worseR, worseF, worseM, tieR, tieF, tieM, sameCurrency int
		for _, o := range pop {
			eo := out[o.id]
			switch {
			case *eo.recency > *e.recency:
				worseR++
			case *eo.recency == *e.recency:
				tieR++
			}
			switch {
			case eo.frequency < e.frequency:
				worseF++
			case eo.frequency == e.frequency:
				tieF++
			}
			if o.currency == c.currency {
				sameCurrency++
				switch {
				case eo.monetary < e.monetary:
					worseM++
				case eo.monetary == e.monetary:
					tieM++
				}
			}
		}
		// The quintile of the mid-rank percentile (worse + ties/2) / n,
		// in exact arithmetic: ⌈5 × (2·worse + ties) / (2n)⌉.
		quintile := func(worse, ties, n int) int {
			q := new(big.Rat).SetFrac64(int64(5*(2*worse+ties)), int64(2*n))
			c := new(big.Int).Quo(q.Num(), q.Denom())
			if !q.IsInt() {
				c.Add(c, big.NewInt(1))
			}
			return int(c.Int64())
		}
		e.r, e.f, e.m = quintile(worseR, tieR, len(pop)), quintile(worseF, tieF, len(pop)), quintile(worseM, tieM, sameCurrency)
		e.segment = value.SegmentOf(e.r, e.f, e.m)
		out[c.id] = e
	}
	return out
}

func compareValues(t *testing.T, when string, q *value.Queries, all []*xCustomer, now time.Time) {
	t.Helper()
	want := expectedValues(all, now)
	segments := map[string]int{}
	for _, c := range all {
		got, err := q.Value(context.Background(), c.id)
		if err != nil {
			t.Fatal(err)
		}
		w := want[c.id]
		same := got.Frequency == w.frequency && got.MonetaryMinor == w.monetary && eqInt(got.RecencyDays, w.recency)
		if w.scored {
			same = same && eqInt(got.R, &w.r) && eqInt(got.F, &w.f) && eqInt(got.M, &w.m) && got.Segment != nil && *got.Segment == w.segment
			segments[w.segment]++
		} else {
			same = same && got.R == nil && got.F == nil && got.M == nil && got.Segment == nil
		}
		if len(c.purchases) > 0 && got.Currency != c.currency {
			same = false
		}
		if !same {
			t.Fatalf("%s: customer %s value %+v (r %v f %v m %v segment %v), want %+v", when, c.id, got, deref(got.R), deref(got.F), deref(got.M), got.Segment, w)
		}
	}
	if len(segments) < 4 {
		t.Fatalf("%s: the history must reach most segments, got %v", when, segments)
	}
	t.Logf("%s: segments %v", when, segments)
}

func compareLoyalty(t *testing.T, when string, q *value.Queries, all []*xCustomer, now time.Time) {
	t.Helper()
	expiredSome := false
	for _, c := range all {
		got, err := q.Loyalty(context.Background(), c.id)
		if err != nil {
			t.Fatal(err)
		}
		var balance, expiring int64
		ledger := slices.Clone(c.ledger)
		for _, l := range c.lots {
			switch {
			case !now.Before(l.expires):
				if l.remain > 0 {
					ledger = append(ledger, fmt.Sprintf("%s %d", value.KindExpiry, -l.remain))
					expiredSome = true
				}
			default:
				balance += l.remain
				if !l.expires.After(now.Add(value.ExpiringWindow)) {
					expiring += l.remain
				}
			}
		}
		var gotLedger []string
		for _, e := range got.Ledger {
			gotLedger = append(gotLedger, fmt.Sprintf("%s %d", e.Kind, e.Points))
		}
		sort.Strings(ledger)
		sort.Strings(gotLedger)
		if got.Balance != balance || got.Expiring != expiring || !slices.Equal(ledger, gotLedger) {
			t.Fatalf("%s: customer %s loyalty balance %d expiring %d ledger %v, want %d %d %v", when, c.id, got.Balance, got.Expiring, gotLedger, balance, expiring, ledger)
		}
	}
	if !expiredSome {
		t.Fatalf("%s: no points expired in the history", when)
	}
}

type reportKey struct{ key, currency string }

type reportRow struct{ revenue, purchases, customers, repeaters int64 }

func compareReport(t *testing.T, when string, q *value.Queries, all []*xCustomer, p analytics.Params) {
	t.Helper()
	want := map[reportKey]reportRow{}
	type custKey struct {
		reportKey
		id uuid.UUID
	}
	per := map[custKey]int64{}
	for _, c := range all {
		for _, pu := range c.purchases {
			if pu.at.Before(p.From) || !pu.at.Before(p.To) {
				continue
			}
			k := reportKey{"all", c.currency}
			switch p.GroupBy {
			case analytics.Segment:
				k.key = c.segment
			case analytics.Month:
				k.key = pu.at.UTC().Format("2006-01")
			}
			r := want[k]
			r.revenue += pu.amount - pu.refunded
			if pu.amount > pu.refunded {
				r.purchases++
				per[custKey{k, c.id}]++
			}
			want[k] = r
		}
	}
	for ck, n := range per {
		r := want[ck.reportKey]
		r.customers++
		if n >= 2 {
			r.repeaters++
		}
		want[ck.reportKey] = r
	}
	rep, err := q.Report(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	got := map[reportKey]reportRow{}
	for _, g := range rep.Groups {
		if g.Currency == "" {
			if g.Purchases != 0 || g.RevenueMinor != 0 || g.Customers != 0 {
				t.Fatalf("%s: a row without currency has figures: %+v", when, g)
			}
			continue
		}
		got[reportKey{*g.Key, g.Currency}] = reportRow{g.RevenueMinor, g.Purchases, g.Customers, g.RepeatCustomers}
		if g.Purchases > 0 {
			aov := (2*g.RevenueMinor + g.Purchases) / (2 * g.Purchases)
			if *g.AverageOrderValue() != domain.FormatAmount(aov, g.Decimals) {
				t.Fatalf("%s: average order value %s for %+v", when, *g.AverageOrderValue(), g)
			}
		}
	}
	if len(want) == 0 {
		t.Fatalf("%s: no purchase in %v", when, p)
	}
	keys := func(m map[reportKey]reportRow) []reportKey {
		out := make([]reportKey, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		slices.SortFunc(out, func(a, b reportKey) int {
			return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.currency, b.currency))
		})
		return out
	}
	for _, k := range keys(want) {
		if got[k] != want[k] {
			t.Fatalf("%s: %s %v: got %+v, want %+v", when, p.GroupBy, k, got[k], want[k])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %s rows %v, want %v", when, p.GroupBy, keys(got), keys(want))
	}
}

func eqInt(a, b *int) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
