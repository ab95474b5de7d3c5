package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rapport-crm/rapport/domain"
)

// The purchase and loyalty commands of the workload (PRODUCT.md "Purchases,
// value and loyalty"), with the values `rapport seed` uses: a customer buys
// in its region's currency, 5.00–205.00 (500–20,500 yen) a purchase, some
// refunded in part or in full, a goodwill award now and then, and
// redemptions of the points, a few of them above the balance.

// regionCurrencies is the currency a customer of a region buys in.
var regionCurrencies = map[string]string{"emea": "EUR", "north-america": "USD", "apac": "JPY", "latam": "USD"}

// customerValue is what a client knows of a customer's purchases and
// points: exactly what was accepted, so that verification can compare the
// value read model with it.
type customerValue struct {
	currency  string
	decimals  int
	purchases []*purchase
	// entries are the loyalty ledger lines the accepted commands made, by
	// entry id (the award, purchase, redemption or refund id).
	entries []pointsEntry
	// estimate is the balance at the default rate (1 point per whole unit
	// of net amount): the service's rate is its configuration, so a
	// redemption may still be refused (409 insufficient_points).
	estimate int64
	// unknown: a value command was accepted whose answer the model could
	// not apply, so its figures are not checked exactly.
	unknown bool
}

// purchase is an accepted purchase.
type purchase struct {
	id        string
	reference string
	minor     int64
	refunded  int64
	earned    bool  // its points were awarded (a second event)
	points    int64 // the estimate of what it earned
}

// pointsEntry is a loyalty ledger line an accepted command made. points is
// known for awards and redemptions, 0 (any) for the lines of purchases and
// refunds, whose points follow the service's rate.
type pointsEntry struct {
	kind   string
	id     string
	points int64
}

func (v *customerValue) setCurrency(region string) {
	v.currency = regionCurrencies[region]
	if v.currency == "" {
		v.currency = "EUR"
	}
	v.decimals, _ = domain.CurrencyDecimals(v.currency)
}

func (v *customerValue) unit() int64 {
	u := int64(1)
	for range v.decimals {
		u *= 10
	}
	return u
}

// refundable is a purchase with something left to refund.
func (v *customerValue) refundable(w *workload) *purchase {
	var open []*purchase
	for _, p := range v.purchases {
		if p.refunded < p.minor {
			open = append(open, p)
		}
	}
	if len(open) == 0 {
		return nil
	}
	return pick(w.rng, open)
}

// net is the expected frequency and monetary value: every purchase is of
// the last 30 days, those refunded in full left out of the frequency.
func (v *customerValue) net() (frequency int, monetaryMinor int64) {
	for _, p := range v.purchases {
		if p.refunded < p.minor {
			frequency++
		}
		monetaryMinor += p.minor - p.refunded
	}
	return frequency, monetaryMinor
}

// The request bodies of the value commands.
type (
	purchaseBody struct {
		Amount     string `json:"amount"`
		Currency   string `json:"currency"`
		OccurredAt string `json:"occurred_at"`
		Reference  string `json:"reference"`
		Channel    string `json:"channel"`
	}
	refundBody struct {
		Amount *string `json:"amount,omitempty"`
	}
	pointsBody struct {
		Points int64  `json:"points"`
		Reason string `json:"reason"`
	}
)

// valueCommand is one of the purchase and loyalty commands: mostly
// purchases, some redemptions, a few refunds and awards.
func (w *workload) valueCommand(c *customer) action {
	if c == nil {
		return w.register()
	}
	switch roll := w.rng.IntN(10); {
	case roll == 5 || roll == 6:
		if p := c.value.refundable(w); p != nil {
			return w.refundPurchase(c, p)
		}
	case roll == 7:
		return w.awardPoints(c)
	case roll >= 8:
		if c.value.estimate >= 10 {
			return w.redeemPoints(c)
		}
	}
	return w.recordPurchase(c)
}

// grew is how many events an accepted command appended to c (the answer's
// revision less the last one known), read before record moves c.rev.
func grew(c *customer, ans commandAnswer) int64 { return int64(ans.Revision) - c.rev }

func (w *workload) recordPurchase(c *customer) action {
	v := &c.value
	minor := int64(500 + w.rng.IntN(20000))
	at := time.Now().Add(-time.Duration(w.rng.Int64N(int64(30 * 24 * time.Hour)))).UTC().Truncate(time.Second)
	ref := fmt.Sprintf("ORD-%s-%d-%d-%d", w.runID, w.client, c.n, len(v.purchases)+1)
	body := purchaseBody{Amount: domain.FormatAmount(minor, v.decimals), Currency: v.currency, OccurredAt: at.Format(time.RFC3339),
		Reference: ref, Channel: pick(w.rng, []string{"web", "store", "app"})}
	return action{op: opRecordPurchase, cust: c, method: http.MethodPost, path: w.customerPath(c, "/purchases"), body: body, settleApply: true,
		apply: func(ans commandAnswer) {
			if ans.PurchaseID == "" {
				v.unknown = true
				return
			}
			p := &purchase{id: ans.PurchaseID, reference: ref, minor: minor, earned: grew(c, ans) >= 2, points: minor / v.unit()}
			v.purchases = append(v.purchases, p)
			if p.earned {
				v.entries = append(v.entries, pointsEntry{kind: "purchase", id: p.id})
				v.estimate += p.points
			}
		}}
}

func (w *workload) refundPurchase(c *customer, p *purchase) action {
	v := &c.value
	left := p.minor - p.refunded
	amount := left
	var body refundBody
	if part := left / 3; part > 0 && w.rng.IntN(3) != 0 {
		amount = part
		s := domain.FormatAmount(part, v.decimals)
		body.Amount = &s
	}
	return action{op: opRefundPurchase, cust: c, method: http.MethodPost, path: w.customerPath(c, "/purchases/"+p.id+"/refund"), body: body, settleApply: true,
		apply: func(ans commandAnswer) {
			if ans.RefundID == "" {
				v.unknown = true
				return
			}
			p.refunded += amount
			if grew(c, ans) >= 2 {
				v.entries = append(v.entries, pointsEntry{kind: "refund", id: ans.RefundID})
			}
			if p.earned {
				kept := (p.minor - p.refunded) / v.unit()
				v.estimate -= p.points - kept
				p.points = kept
			}
		}}
}

func (w *workload) awardPoints(c *customer) action {
	v := &c.value
	points := int64(10 + w.rng.IntN(200))
	return action{op: opAwardPoints, cust: c, method: http.MethodPost, path: w.customerPath(c, "/loyalty/awards"), body: pointsBody{Points: points, Reason: "goodwill"}, settleApply: true,
		apply: func(ans commandAnswer) {
			if ans.AwardID == "" {
				v.unknown = true
				return
			}
			v.entries = append(v.entries, pointsEntry{kind: "award", id: ans.AwardID, points: points})
			v.estimate += points
		}}
}

// redeemPoints spends up to half the estimated balance, or (one time in
// six, a customer asking for more than they have) more than all of it,
// which the rules refuse with 409 insufficient_points.
func (w *workload) redeemPoints(c *customer) action {
	v := &c.value
	points := 10 + w.rng.Int64N(max(v.estimate/2-9, 1))
	if w.rng.IntN(6) == 0 {
		points = v.estimate + 1 + w.rng.Int64N(50)
	}
	return action{op: opRedeemPoints, cust: c, method: http.MethodPost, path: w.customerPath(c, "/loyalty/redemptions"), body: pointsBody{Points: points, Reason: "voucher"}, settleApply: true,
		apply: func(ans commandAnswer) {
			if ans.RedemptionID == "" {
				v.unknown = true
				return
			}
			v.entries = append(v.entries, pointsEntry{kind: "redemption", id: ans.RedemptionID, points: -points})
			v.estimate -= points
		}}
}

// expectedRefusal says a refusal is one the workload means to provoke: a
// redemption above the balance. The model is unchanged by it (a refusal
// appends nothing), so the customer keeps getting commands.
func expectedRefusal(a action, ans answer) bool {
	return a.op == opRedeemPoints && ans.status == http.StatusConflict && ans.problem().Reason == domain.ReasonInsufficientPoints
}

// has says the customer has purchases or points to verify.
func (v *customerValue) has() bool { return len(v.purchases) > 0 || len(v.entries) > 0 }

// valueFacts is the part of a customer's value the bench checks.
type valueFacts struct {
	Frequency int     `json:"frequency"`
	Monetary  string  `json:"monetary"`
	Currency  *string `json:"currency"`
}

// matches says the read model's value is what the accepted purchases and
// refunds make (a customer without purchases has no currency).
func (v *customerValue) matches(got valueFacts) bool {
	f, m := v.net()
	if len(v.purchases) == 0 {
		return got.Frequency == 0 && got.Currency == nil
	}
	return got.Frequency == f && got.Monetary == formatMinor(m, v.decimals) && deref(got.Currency) == v.currency
}

func formatMinor(minor int64, decimals int) string { return domain.FormatAmount(minor, decimals) }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// checkLoyalty reads the customer's loyalty once the read model has its
// last accepted command, and counts the accepted ledger lines missing or
// wrong there, and a balance that is not the ledger's sum.
func (r *runner) checkLoyalty(ctx context.Context, ck *checker, c *customer, position uint64) (int64, error) {
	ans, err := r.api.get(ctx, c.value.loyaltyPath(c.id, position), 60*time.Second)
	if err != nil {
		return int64(len(c.value.entries)), err
	}
	if ans.status != http.StatusOK {
		return int64(len(c.value.entries)), fmt.Errorf("GET /loyalty answered %d %s", ans.status, ans.problem().Reason)
	}
	var got struct {
		Balance int64 `json:"balance"`
		Ledger  []struct {
			Kind    string `json:"kind"`
			Points  int64  `json:"points"`
			EntryID string `json:"entry_id"`
		} `json:"ledger"`
	}
	if err := json.Unmarshal(ans.body, &got); err != nil {
		return int64(len(c.value.entries)), err
	}
	type line struct{ kind, id string }
	ledger := make(map[line]int64, len(got.Ledger))
	var sum int64
	for _, e := range got.Ledger {
		ledger[line{e.Kind, e.EntryID}] = e.Points
		sum += e.Points
	}
	var missing int64
	for _, want := range c.value.entries {
		points, ok := ledger[line{want.kind, want.id}]
		switch {
		case !ok:
			missing++
			ck.problem("customer %s: the loyalty ledger lacks the %s %s", c.id, want.kind, want.id)
		case want.points != 0 && points != want.points,
			want.kind == "purchase" && points <= 0,
			want.kind == "refund" && points > 0:
			missing++
			ck.problem("customer %s: the loyalty ledger has %d points for the %s %s, the command's were %d", c.id, points, want.kind, want.id, want.points)
		}
	}
	if sum != got.Balance {
		missing++
		ck.problem("customer %s: the loyalty balance is %d, its ledger sums to %d", c.id, got.Balance, sum)
	}
	return missing, nil
}

func (v *customerValue) loyaltyPath(id string, position uint64) string {
	return "/v1/customers/" + id + "/loyalty?min_position=" + strconv.FormatUint(position, 10)
}
