package value_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/risk"
)

// TestPurchaseLapsedFactor: given a customer's counted purchases, when its
// score is judged at an instant with purchase_lapsed weighted, then the
// factor gives its points exactly when the time since the last purchase
// is more than twice the mean gap between its purchases; with the default
// weights (0) no score changes. End to end: GET /v1/customers/{id} of a
// service run with RAPPORT_RISK_WEIGHTS=purchase_lapsed=25 lists it.
func TestPurchaseLapsedFactor(t *testing.T) {
	t.Parallel()
	weights, m, send, now, settle := openWithRiskWeights(t, "purchase_lapsed=25")
	ctx := context.Background()
	day := 24 * time.Hour
	type given struct {
		name    string
		ago     []time.Duration // purchases, this long before now
		refund  int             // 1-based purchase refunded in full; 0 none
		churned bool
		want    bool // purchase_lapsed at now
	}
	cases := []given{
		{name: "lapsed: 80 days since, usual interval 10 days", ago: []time.Duration{100 * day, 90 * day, 80 * day}, want: true},
		{name: "buying as usual", ago: []time.Duration{30 * day, 20 * day, 10 * day}},
		{name: "one purchase has no usual interval", ago: []time.Duration{300 * day}},
		{name: "no purchase", ago: nil},
		{name: "exactly twice the interval is not more", ago: []time.Duration{30 * day, 20 * day}},
		{name: "a second past twice the interval", ago: []time.Duration{30*day + time.Second, 20*day + time.Second}, want: true},
		{name: "a purchase refunded in full does not count", ago: []time.Duration{100 * day, 90 * day, 5 * day}, refund: 3, want: true},
		{name: "churned customers have no score", ago: []time.Duration{100 * day, 90 * day}, churned: true},
	}
	ids := make([]uuid.UUID, len(cases))
	for i, c := range cases {
		ids[i] = send(uuid.Nil, domain.RegisterCustomer{Name: fmt.Sprintf("Case %d", i), Email: fmt.Sprintf("r%d@example.com", i)}).CustomerID
		var purchases []uuid.UUID
		for _, ago := range c.ago {
			at := now.Add(-ago)
			purchases = append(purchases, send(ids[i], domain.RecordPurchase{Amount: "20.00", Currency: "EUR", OccurredAt: &at, Reference: uuid.NewString()}).CreatedID)
		}
		if c.refund > 0 {
			send(ids[i], domain.RefundPurchase{PurchaseID: purchases[c.refund-1]})
		}
		if c.churned {
			send(ids[i], domain.MarkChurned{Reason: "left"})
		}
	}
	settle()
	factor := func(r *risk.Risk) (int, bool) {
		if r == nil {
			return 0, false
		}
		for _, f := range r.Factors {
			if f.Factor == risk.FactorPurchaseLapsed {
				return f.Points, true
			}
		}
		return 0, false
	}
	on := customers.NewQueries(m.Pool, customers.WithRisk(weights, nil)).At(now)
	off := customers.NewQueries(m.Pool).At(now)
	for i, c := range cases {
		withF, err := on.Get(ctx, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		without, err := off.Get(ctx, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		points, got := factor(withF.ChurnRisk)
		if got != c.want || (got && points != 25) {
			t.Errorf("%s: purchase_lapsed %v (%d points), want %v", c.name, got, points, c.want)
		}
		if _, any := factor(without.ChurnRisk); any {
			t.Errorf("%s: purchase_lapsed with the default weights", c.name)
		}
		if c.churned {
			if withF.ChurnRisk != nil {
				t.Errorf("%s: a score %+v", c.name, withF.ChurnRisk)
			}
			continue
		}
		want := min(risk.MaxScore, without.ChurnRisk.Score+points)
		if withF.ChurnRisk.Score != want {
			t.Errorf("%s: score %d, want %d (%d without purchase factors)", c.name, withF.ChurnRisk.Score, want, without.ChurnRisk.Score)
		}
	}

	// End to end: the service configured with the weight lists the factor.
	var body struct {
		Risk *risk.Risk `json:"risk"`
	}
	m.Get(t, "analyst", "/v1/customers/"+ids[0].String()).JSON(t, &body)
	if p, ok := factor(body.Risk); !ok || p != 25 {
		t.Fatalf("GET /v1/customers/{id}: risk %+v, want purchase_lapsed 25", body.Risk)
	}
	m.Get(t, "analyst", "/v1/customers/"+ids[1].String()).JSON(t, &body)
	if _, ok := factor(body.Risk); ok {
		t.Fatalf("GET /v1/customers/{id} of a customer buying as usual: risk %+v", body.Risk)
	}
}

// TestTheAtRiskQueueCountsPurchaseFactors: given a customer whose purchases
// lapsed and purchase_lapsed weighted 60 (high on its own), when the
// at-risk work queue is read, then it lists the customer with the same
// score and factors as GET /v1/customers/{id}: the queue and the customer
// judge one score.
func TestTheAtRiskQueueCountsPurchaseFactors(t *testing.T) {
	t.Parallel()
	_, m, send, now, settle := openWithRiskWeights(t, "purchase_lapsed=60")
	day := 24 * time.Hour
	lapsed := send(uuid.Nil, domain.RegisterCustomer{Name: "Lapsed", Email: "lapsed@example.com"}).CustomerID
	for _, ago := range []time.Duration{100 * day, 90 * day, 80 * day} {
		at := now.Add(-ago)
		send(lapsed, domain.RecordPurchase{Amount: "20.00", Currency: "EUR", OccurredAt: &at, Reference: uuid.NewString()})
	}
	settle()
	var customer struct {
		Risk *risk.Risk `json:"risk"`
	}
	m.Get(t, "analyst", "/v1/customers/"+lapsed.String()).JSON(t, &customer)
	if customer.Risk == nil || customer.Risk.Level != risk.LevelHigh {
		t.Fatalf("GET /v1/customers/{id}: risk %+v, want high through purchase_lapsed", customer.Risk)
	}
	var queue struct {
		Items []struct {
			Customer struct {
				ID uuid.UUID `json:"id"`
			} `json:"customer"`
			Risk risk.Risk `json:"risk"`
		} `json:"items"`
	}
	m.Get(t, "analyst", "/v1/work/at-risk?level=high").JSON(t, &queue)
	for _, it := range queue.Items {
		if it.Customer.ID == lapsed {
			if it.Risk.Score != customer.Risk.Score || fmt.Sprint(it.Risk.Factors) != fmt.Sprint(customer.Risk.Factors) {
				t.Fatalf("the queue scores %+v, the customer %+v", it.Risk, *customer.Risk)
			}
			return
		}
	}
	t.Fatalf("the at-risk queue (level high) does not list the lapsed customer (%+v): %+v", *customer.Risk, queue.Items)
}

// openWithRiskWeights opens the service with the churn-risk weights of spec
// and returns a sender of commands at now (an hour ago, whole seconds) and
// settle, which waits until the read models hold everything sent.
func openWithRiskWeights(t *testing.T, spec string) (risk.Weights, *apptest.Main, func(uuid.UUID, domain.Command) commands.Result, time.Time, func()) {
	t.Helper()
	weights, err := risk.ParseWeights(spec)
	if err != nil {
		t.Fatal(err)
	}
	m := apptest.MustOpen(t, func(c *app.Config) { c.ReadModels.RiskWeights = &weights })
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	var last eventstore.Position
	send := func(id uuid.UUID, cmd domain.Command) commands.Result {
		t.Helper()
		res, err := m.Commands.Handle(ctx, commands.Request{CustomerID: id, Command: cmd, CommandID: uuid.New(), Actor: "tester", At: now})
		if err != nil {
			t.Fatalf("%T: %v", cmd, err)
		}
		last = max(last, res.Position)
		return res
	}
	settle := func() {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := m.Engine.WaitForPosition(wctx, last); err != nil {
			t.Fatal(err)
		}
	}
	return weights, m, send, now, settle
}
