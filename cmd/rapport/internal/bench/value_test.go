package bench

import (
	"math/rand/v2"
	"net/http"
	"testing"
)

// TestInsufficientPointsIsAnExpectedRefusal: a redemption above the
// balance is counted as a refusal of the rules and leaves the customer in
// the workload (the model is unchanged by it); any other refusal of a
// value command takes the customer out.
func TestInsufficientPointsIsAnExpectedRefusal(t *testing.T) {
	c := &client{stats: clientStats{reasons: map[string]int64{}}, w: workload{rng: rand.New(rand.NewPCG(1, 2))}}
	cust := &customer{id: "c1", rev: 3}
	cust.value.setCurrency("apac")
	cust.value.estimate = 40
	redeem := c.w.redeemPoints(cust)
	if redeem.op != opRedeemPoints {
		t.Fatalf("op %s", redeem.op)
	}
	c.refuse(redeem, answer{status: http.StatusConflict, body: []byte(`{"reason":"insufficient_points"}`)})
	if cust.tainted {
		t.Fatal("a redemption above the balance took the customer out of the workload")
	}
	if c.stats.refused[opRedeemPoints] != 1 || c.stats.reasons["redeemPoints: 409 insufficient_points"] != 1 {
		t.Fatalf("not counted as a refusal: %v %v", c.stats.refused, c.stats.reasons)
	}
	c.refuse(c.w.recordPurchase(cust), answer{status: http.StatusUnprocessableEntity, body: []byte(`{"reason":"validation_failed"}`)})
	if !cust.tainted {
		t.Fatal("a refused purchase left the customer in the workload")
	}
}

// TestValueModel follows a purchase (with its points), a partial refund
// (taking points back) and a full refund, and checks the figures the
// verification expects and the event types at each revision.
func TestValueModel(t *testing.T) {
	w := &workload{rng: rand.New(rand.NewPCG(3, 4)), runID: "r"}
	cust := &customer{id: "c1", rev: 0}
	cust.value.setCurrency("emea")
	a := w.recordPurchase(cust)
	a.apply(commandAnswer{PurchaseID: "p1", Revision: 2})
	cust.rev = 2
	v := &cust.value
	if len(v.purchases) != 1 || !v.purchases[0].earned || len(v.entries) != 1 || v.entries[0] != (pointsEntry{kind: "purchase", id: "p1"}) {
		t.Fatalf("after the purchase: %+v", v)
	}
	p := v.purchases[0]
	if f, m := v.net(); f != 1 || m != p.minor || v.estimate != p.minor/100 {
		t.Fatalf("frequency %d, monetary %d, estimate %d for a purchase of %d", f, m, v.estimate, p.minor)
	}
	for p.refunded < p.minor {
		r := w.refundPurchase(cust, p)
		r.apply(commandAnswer{RefundID: "r" + string(rune('0'+len(v.entries))), Revision: uint64(cust.rev + 2)})
		cust.rev += 2
	}
	if f, m := v.net(); f != 0 || m != 0 || v.estimate != 0 {
		t.Fatalf("refunded in full: frequency %d, monetary %d, estimate %d", f, m, v.estimate)
	}
	if got := v.matches(valueFacts{Frequency: 0, Monetary: "0.00", Currency: &v.currency}); !got {
		t.Fatal("a purchase refunded in full: frequency 0, monetary 0.00 should match")
	}
	rec := record{first: 1, rev: 2, op: opRecordPurchase}
	if eventType(rec, 1) != opEvents[opRecordPurchase] || eventType(rec, 2) != opFollowUps[opRecordPurchase] || eventType(record{first: 1, rev: 3, op: opRecordPurchase}, 3) != "" {
		t.Fatal("event types of a purchase")
	}
	if eventType(record{first: 4, rev: 5, op: opLogContact}, 5) != "" {
		t.Fatal("a contact appends one event")
	}
}
