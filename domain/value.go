package domain

import (
	"slices"
	"time"

	"github.com/google/uuid"
)

// Purchases, value and loyalty (PRODUCT.md "Purchases, value and loyalty"):
// the commands, events and state. Money is integer minor units of the
// customer's one currency; points are whole numbers held in lots, one per
// award, each expiring on its own date and spent first earned, first spent.
//
// Expiry needs no event of its own: a lot's expiry date is part of the fact
// that awarded it, so what has expired is a judgement at the time asked
// (like an SLA breach). A redemption or a refund records which lots it took
// from, decided on the stream's state, so read models never repeat the
// allocation and two concurrent redemptions cannot both spend the same
// points (the append expects the revision the decision was made on).

// LoyaltyPolicy is the loyalty configuration a command is decided with; the
// application layer sets it from configuration. Zero fields take the
// product's defaults.
type LoyaltyPolicy struct {
	// PointsPerUnit is the points a purchase earns per whole currency unit
	// of its net amount. Default 1; negative earns nothing.
	PointsPerUnit int64
	// ValidityMonths is how long points stay valid after they were
	// earned. Default 12.
	ValidityMonths int
}

// Default loyalty settings.
const (
	DefaultPointsPerUnit  = 1
	DefaultValidityMonths = 12
	// MaxPoints bounds the points of one award or redemption.
	MaxPoints = 1_000_000_000
	// MaxPointsPerUnit bounds the earning rate, so that points earned on a
	// purchase of MaxAmountMinor cannot overflow.
	MaxPointsPerUnit = 1000
)

func (p LoyaltyPolicy) withDefaults() LoyaltyPolicy {
	if p.PointsPerUnit == 0 {
		p.PointsPerUnit = DefaultPointsPerUnit
	}
	p.PointsPerUnit = min(p.PointsPerUnit, MaxPointsPerUnit)
	if p.ValidityMonths <= 0 {
		p.ValidityMonths = DefaultValidityMonths
	}
	return p
}

// points is what net minor units earn: whole units times the rate.
func (p LoyaltyPolicy) points(netMinor int64, decimals int) int64 {
	if p.PointsPerUnit <= 0 || netMinor <= 0 {
		return 0
	}
	return netMinor / unitMinor(decimals) * p.PointsPerUnit
}

func (p LoyaltyPolicy) expiry(earnedAt time.Time) time.Time {
	return earnedAt.AddDate(0, p.ValidityMonths, 0)
}

// RecordPurchase records a purchase. Amount is a decimal string in the
// currency's own decimals.
type RecordPurchase struct {
	PurchaseID uuid.UUID  // purchase_id
	Amount     string     // amount: a positive decimal string, e.g. "129.90"
	Currency   string     // currency: ISO 4217; the customer's first purchase fixes it
	OccurredAt *time.Time // occurred_at: required, not in the future
	Reference  string     // reference: unique per customer; a repeat is the same purchase
	Channel    string     // channel: optional label (web, store, app…)
	Loyalty    LoyaltyPolicy
}

// RefundPurchase gives back part or all of what is left of a purchase.
type RefundPurchase struct {
	RefundID   uuid.UUID // refund_id
	PurchaseID uuid.UUID // the purchase (a path segment in HTTP)
	Amount     *string   // amount: nil means what is left
	Loyalty    LoyaltyPolicy
}

// AwardPoints gives the customer points by hand (a goodwill gesture, a
// campaign).
type AwardPoints struct {
	AwardID uuid.UUID // award_id
	Points  int64     // points: 1..MaxPoints
	Reason  string    // reason
	Loyalty LoyaltyPolicy
}

// RedeemPoints spends points; never more than the balance.
type RedeemPoints struct {
	RedemptionID uuid.UUID // redemption_id
	Points       int64     // points: 1..MaxPoints
	Reason       string    // reason
}

func (RecordPurchase) isCommand() {}
func (RefundPurchase) isCommand() {}
func (AwardPoints) isCommand()    {}
func (RedeemPoints) isCommand()   {}

// The stored type names of the value events.
const (
	TypePurchaseRecorded = "rapport.PurchaseRecorded.v1"
	TypePurchaseRefunded = "rapport.PurchaseRefunded.v1"
	TypePointsAwarded    = "rapport.PointsAwarded.v1"
	TypePointsRedeemed   = "rapport.PointsRedeemed.v1"
	TypePointsRevoked    = "rapport.PointsRevoked.v1"
)

// PurchaseRecorded is a purchase. It holds no personal data: the reference
// is the shop's order number, the channel a label.
type PurchaseRecorded struct {
	PurchaseID  uuid.UUID `json:"purchase_id"`
	Reference   string    `json:"reference"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Channel     string    `json:"channel"`
	OccurredAt  time.Time `json:"occurred_at"`
}

// PurchaseRefunded gives back AmountMinor of a purchase (in its currency).
type PurchaseRefunded struct {
	RefundID    uuid.UUID `json:"refund_id"`
	PurchaseID  uuid.UUID `json:"purchase_id"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	OccurredAt  time.Time `json:"occurred_at"`
}

// PointsAwarded adds a lot of points, valid until ExpiresAt. AwardID names
// the lot; for points a purchase earned it is the purchase's id and
// PurchaseID is set. Reason is free text, so personal (encrypted).
type PointsAwarded struct {
	AwardID    uuid.UUID  `json:"award_id"`
	Points     int64      `json:"points"`
	Reason     string     `json:"reason"`
	PurchaseID *uuid.UUID `json:"purchase_id"`
	ExpiresAt  time.Time  `json:"expires_at"`
	OccurredAt time.Time  `json:"occurred_at"`
}

// LotTake is the points a redemption or revocation took from one lot.
type LotTake struct {
	AwardID uuid.UUID `json:"award_id"`
	Points  int64     `json:"points"`
}

// PointsRedeemed spends Points, taken from the lots listed (the oldest
// unexpired ones first). Reason is personal (encrypted).
type PointsRedeemed struct {
	RedemptionID uuid.UUID `json:"redemption_id"`
	Points       int64     `json:"points"`
	Reason       string    `json:"reason"`
	Lots         []LotTake `json:"lots"`
	OccurredAt   time.Time `json:"occurred_at"`
}

// PointsRevoked takes back the points a refunded amount had earned: from
// the purchase's own lot first, then the oldest unexpired lots, never more
// than the balance (points already spent stay spent). It is recorded with
// the refund and named by its id. Points is what was taken (the sum of
// Lots); Entitlement is what the purchase's remaining net amount still
// earns.
type PointsRevoked struct {
	RefundID    uuid.UUID `json:"refund_id"`
	PurchaseID  uuid.UUID `json:"purchase_id"`
	Points      int64     `json:"points"`
	Entitlement int64     `json:"entitlement"`
	Lots        []LotTake `json:"lots"`
	OccurredAt  time.Time `json:"occurred_at"`
}

func (PurchaseRecorded) EventType() string { return TypePurchaseRecorded }
func (PurchaseRefunded) EventType() string { return TypePurchaseRefunded }
func (PointsAwarded) EventType() string    { return TypePointsAwarded }
func (PointsRedeemed) EventType() string   { return TypePointsRedeemed }
func (PointsRevoked) EventType() string    { return TypePointsRevoked }

func (e PurchaseRecorded) BusinessTime() time.Time { return e.OccurredAt }
func (e PurchaseRefunded) BusinessTime() time.Time { return e.OccurredAt }
func (e PointsAwarded) BusinessTime() time.Time    { return e.OccurredAt }
func (e PointsRedeemed) BusinessTime() time.Time   { return e.OccurredAt }
func (e PointsRevoked) BusinessTime() time.Time    { return e.OccurredAt }

func (PurchaseRecorded) isEvent() {}
func (PurchaseRefunded) isEvent() {}
func (PointsAwarded) isEvent()    {}
func (PointsRedeemed) isEvent()   {}
func (PointsRevoked) isEvent()    {}

func (e *PointsAwarded) PersonalFields() []*string  { return []*string{&e.Reason} }
func (e *PointsRedeemed) PersonalFields() []*string { return []*string{&e.Reason} }

// Value is the customer's purchases and points, folded from the value
// events. Like Customer it is a value: evolving never writes into the
// slices of the state it was given.
type Value struct {
	// Currency is the currency of the customer's purchases ("" before the
	// first).
	Currency string
	// Purchases in recording order.
	Purchases []Purchase
	// Lots in order of earning (then recording), the order they are spent in.
	Lots []PointsLot
	// entries holds the ids of refunds, awards and redemptions, so that a
	// retried command is recognised.
	entries idSet
}

// Purchase is one purchase and what was refunded of it.
type Purchase struct {
	ID            uuid.UUID
	Reference     string
	AmountMinor   int64
	RefundedMinor int64
	Channel       string
	OccurredAt    time.Time
	// Points is what the purchase's net amount is entitled to, which
	// refunds lower.
	Points int64
}

// NetMinor is what is left of the purchase after refunds.
func (p Purchase) NetMinor() int64 { return p.AmountMinor - p.RefundedMinor }

// PointsLot is one award of points.
type PointsLot struct {
	AwardID   uuid.UUID
	Points    int64
	Remaining int64
	EarnedAt  time.Time
	ExpiresAt time.Time
}

// ExpiredAt reports whether the lot can no longer be spent at now.
func (l PointsLot) ExpiredAt(now time.Time) bool { return !now.Before(l.ExpiresAt) }

// Balance is the points that can be spent at now: the remainders of the lots
// not expired.
func (v Value) Balance(now time.Time) int64 {
	var n int64
	for _, l := range v.Lots {
		if !l.ExpiredAt(now) {
			n += l.Remaining
		}
	}
	return n
}

// Purchase finds a purchase by id.
func (v Value) Purchase(id uuid.UUID) (Purchase, bool) {
	i := slices.IndexFunc(v.Purchases, func(p Purchase) bool { return p.ID == id })
	if i < 0 {
		return Purchase{}, false
	}
	return v.Purchases[i], true
}

func (v Value) purchaseByReference(ref string) (Purchase, bool) {
	i := slices.IndexFunc(v.Purchases, func(p Purchase) bool { return p.Reference == ref })
	if i < 0 {
		return Purchase{}, false
	}
	return v.Purchases[i], true
}

// take allocates points from the unexpired lots at now, the lots in first
// (the purchase's own lot) before the rest, oldest first; at most points.
func (v Value) take(points int64, now time.Time, first uuid.UUID) []LotTake {
	var takes []LotTake
	grab := func(l PointsLot) {
		if points == 0 || l.Remaining == 0 || l.ExpiredAt(now) {
			return
		}
		n := min(points, l.Remaining)
		takes = append(takes, LotTake{AwardID: l.AwardID, Points: n})
		points -= n
	}
	for _, l := range v.Lots {
		if l.AwardID == first {
			grab(l)
		}
	}
	for _, l := range v.Lots {
		if l.AwardID != first {
			grab(l)
		}
	}
	return takes
}

// evolveValue applies a value event.
func evolveValue(v Value, e Event) Value {
	switch e := valueOf(e).(type) {
	case PurchaseRecorded:
		if v.Currency == "" {
			v.Currency = e.Currency
		}
		v.Purchases = append(slices.Clip(v.Purchases), Purchase{
			ID: e.PurchaseID, Reference: e.Reference, AmountMinor: e.AmountMinor, Channel: e.Channel, OccurredAt: e.OccurredAt,
		})
	case PurchaseRefunded:
		v.entries = v.entries.with(e.RefundID)
		if i := slices.IndexFunc(v.Purchases, func(p Purchase) bool { return p.ID == e.PurchaseID }); i >= 0 {
			v.Purchases = slices.Clone(v.Purchases)
			v.Purchases[i].RefundedMinor += e.AmountMinor
		}
	case PointsAwarded:
		v.entries = v.entries.with(e.AwardID)
		lot := PointsLot{AwardID: e.AwardID, Points: e.Points, Remaining: e.Points, EarnedAt: e.OccurredAt, ExpiresAt: e.ExpiresAt}
		at, _ := slices.BinarySearchFunc(v.Lots, lot, func(a, b PointsLot) int {
			if a.EarnedAt.After(b.EarnedAt) {
				return 1
			}
			return -1 // equal times: after the lots already there
		})
		v.Lots = slices.Insert(slices.Clip(v.Lots), at, lot)
		if e.PurchaseID != nil {
			if i := slices.IndexFunc(v.Purchases, func(p Purchase) bool { return p.ID == *e.PurchaseID }); i >= 0 {
				v.Purchases = slices.Clone(v.Purchases)
				v.Purchases[i].Points += e.Points
			}
		}
	case PointsRedeemed:
		v.entries = v.entries.with(e.RedemptionID)
		v.Lots = spend(v.Lots, e.Lots)
	case PointsRevoked:
		v.Lots = spend(v.Lots, e.Lots)
		if i := slices.IndexFunc(v.Purchases, func(p Purchase) bool { return p.ID == e.PurchaseID }); i >= 0 {
			v.Purchases = slices.Clone(v.Purchases)
			v.Purchases[i].Points = e.Entitlement
		}
	}
	return v
}

// spend returns a copy of lots with the takes subtracted.
func spend(lots []PointsLot, takes []LotTake) []PointsLot {
	if len(takes) == 0 {
		return lots
	}
	lots = slices.Clone(lots)
	for _, t := range takes {
		for i := range lots {
			if lots[i].AwardID == t.AwardID {
				lots[i].Remaining = max(lots[i].Remaining-t.Points, 0)
				break
			}
		}
	}
	return lots
}
