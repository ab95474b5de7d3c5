package seed

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
)

// currencies by region: a customer buys in its region's currency.
var currencies = map[string]string{"emea": "EUR", "north-america": "USD", "apac": "JPY", "latam": "USD"}

// purchaseSteps simulates a customer's purchases (a few heavy buyers, many
// occasional ones), some refunded in part or in full, a goodwill award now
// and then and redemptions of the points (some above the balance, which the
// rules refuse). It draws from its own random source, so that the rest of
// the data set is what it was before purchases were seeded.
func (g *generator) purchaseSteps(region string, registered, end time.Time) []step {
	rng := rand.New(rand.NewPCG(g.cfg.Seed^0x70a1c4a5e5, uint64(g.n)))
	currency := currencies[region]
	if currency == "" {
		currency = "EUR"
	}
	decimals, _ := domain.CurrencyDecimals(currency)
	n := rng.IntN(4)
	if rng.IntN(5) == 0 {
		n += 4 + rng.IntN(12) // a regular
	}
	redeems := rng.IntN(2) == 0
	type earning struct {
		at     time.Time
		points int64
	}
	var (
		steps  []step
		earned []earning
	)
	for k := range n {
		at := randomTime(rng, registered, end)
		minor := int64(500 + rng.IntN(20000)) // 5.00–205.00, or 500–20,500 yen
		earned = append(earned, earning{at, minor / unitOf(decimals)})
		occurred := at
		buy := domain.RecordPurchase{Amount: domain.FormatAmount(minor, decimals), Currency: currency, OccurredAt: &occurred,
			Reference: "ORD-" + g.commandID(4000 + k).String()[:13], Channel: pick(rng, []string{"web", "store", "app"})}
		id := g.commandID(3000 + k)
		_, pid := commands.WithDerivedIDs(buy, id)
		steps = append(steps, step{at: at, cmd: buy, id: id})
		switch r := rng.IntN(20); {
		case redeems:
		case r == 0:
			steps = append(steps, step{at: at.Add(time.Duration(1+rng.IntN(14*24)) * time.Hour), cmd: domain.RefundPurchase{PurchaseID: pid}, id: g.commandID(5000 + k)})
		case r <= 2:
			part := domain.FormatAmount(minor/3, decimals)
			steps = append(steps, step{at: at.Add(time.Duration(1+rng.IntN(14*24)) * time.Hour), cmd: domain.RefundPurchase{PurchaseID: pid, Amount: &part}, id: g.commandID(5000 + k)})
		}
	}
	if rng.IntN(10) == 0 {
		steps = append(steps, step{at: randomTime(rng, registered, end), cmd: domain.AwardPoints{Points: int64(10 + rng.IntN(200)), Reason: "goodwill"}, id: g.commandID(6000)})
	}
	// Customers who redeem get no refunds, and a redemption spends at most
	// half of what purchases earned in the 11 months before it less what
	// earlier redemptions spent: it never exceeds the balance, so a seed
	// run again (deciding on the final state) refuses and appends nothing.
	if !redeems {
		return steps
	}
	var times []time.Time
	for range rng.IntN(3) {
		times = append(times, randomTime(rng, registered, end))
	}
	slices.SortFunc(times, time.Time.Compare)
	var spent int64
	for j, at := range times {
		var valid int64
		for _, e := range earned {
			if e.at.Before(at) && e.at.AddDate(0, 11, 0).After(at) {
				valid += e.points
			}
		}
		if room := (valid - spent) / 2; room >= 10 {
			points := 10 + rng.Int64N(room-9)
			spent += points
			steps = append(steps, step{at: at, cmd: domain.RedeemPoints{Points: points, Reason: "voucher"}, id: g.commandID(7000 + j)})
		}
	}
	return steps
}

func randomTime(rng *rand.Rand, from, to time.Time) time.Time {
	if !to.After(from) {
		return from
	}
	return from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)))))
}

// unitOf is one whole currency unit in minor units.
func unitOf(decimals int) int64 {
	u := int64(1)
	for range decimals {
		u *= 10
	}
	return u
}
