package bench

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestValueCommandsVerified sends each value command of the workload to
// the service in process — purchases, a partial and a full refund, an
// award, a redemption within the balance and one above it — and runs the
// bench's verification: every event is found (a purchase's points and a
// refund's revocation as the second event of their command), the value
// read model matches, and the redemption above the balance is a refusal
// that leaves the customer in the workload. Then it spoils the model and
// sees the value check fail, so that the check can fail.
func TestValueCommandsVerified(t *testing.T) {
	m := apptest.MustOpen(t)
	ctx := context.Background()
	cfg := Config{URL: m.URL, Key: m.Keys["writer"], AuditKey: m.Keys["auditor"], Clients: 1, Engine: m.Engine, BaselineDuration: -1, SkipRebuild: true}
	cfg.setDefaults()
	r := &runner{cfg: cfg, api: newAPI(cfg), runID: newRunID()}
	if err := r.api.preflight(ctx); err != nil {
		t.Fatal(err)
	}
	if !r.api.loyalty || !r.api.directory {
		t.Fatalf("the service in process serves the directory (%v) and loyalty (%v)", r.api.directory, r.api.loyalty)
	}
	c := &client{r: r, stats: clientStats{reasons: map[string]int64{}}, sampler: newSampler(ctx, r),
		w: workload{rng: rand.New(rand.NewPCG(7, 8)), runID: r.runID}}
	var accepted atomic.Int64
	send := func(a action) { c.send(ctx, a, &accepted, time.Time{}) }
	send(c.w.register())
	if len(c.w.customers) != 1 {
		t.Fatalf("registration: %v", c.stats.reasons)
	}
	cust := c.w.customers[0]
	send(c.w.recordPurchase(cust))
	send(c.w.recordPurchase(cust))
	v := &cust.value
	if len(v.purchases) != 2 {
		t.Fatalf("purchases: %v", c.stats.reasons)
	}
	full := v.purchases[1]
	for full.refunded < full.minor { // partial refunds, then the rest
		send(c.w.refundPurchase(cust, full))
	}
	send(c.w.awardPoints(cust))
	send(c.w.redeemPoints(cust))
	above := c.w.redeemPoints(cust)
	above.body = pointsBody{Points: 1_000_000, Reason: "voucher"}
	send(above)
	c.sampler.wait()

	for _, o := range []op{opRecordPurchase, opRefundPurchase, opAwardPoints, opRedeemPoints} {
		if c.stats.accepted[o] == 0 {
			t.Errorf("no %s accepted: %v", o, c.stats.reasons)
		}
	}
	if c.stats.refused[opRedeemPoints] != 1 || c.stats.reasons["redeemPoints: 409 insufficient_points"] != 1 || cust.tainted {
		t.Fatalf("the redemption above the balance: refused %v, tainted %v", c.stats.reasons, cust.tainted)
	}
	var events int64
	for _, rec := range cust.records {
		events += int64(rec.rev - rec.first + 1)
	}
	if events <= int64(len(cust.records)) {
		t.Fatalf("purchases append their points: %d events for %d commands", events, len(cust.records))
	}

	out := &loadOutcome{customers: c.w.customers, clients: []*client{c}}
	res, err := r.verify(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	res.judge()
	if !res.Pass || res.EventsRead != events || res.Value.Customers != 1 || res.Value.Missing != 0 {
		t.Fatalf("verification: pass %v, %d events read of %d, value %+v: %v %v", res.Pass, res.EventsRead, events, res.Value, res.Failures, res.Problems)
	}

	// A model that differs from the read model fails the value check.
	full.refunded--
	v.entries = append(v.entries, pointsEntry{kind: "award", id: "00000000-0000-0000-0000-000000000001", points: 5})
	res, err = r.verify(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	res.judge()
	if res.Pass || res.Value.Behind != 1 || res.Value.Missing != 1 || !strings.Contains(strings.Join(res.Problems, "\n"), "value read model says") {
		t.Fatalf("a spoilt model passed: %+v %v", res.Value, res.Problems)
	}
}
