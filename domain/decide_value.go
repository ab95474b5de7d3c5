package domain

import (
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Reasons of the value commands' refusals.
const (
	ReasonPurchaseNotFound      = "purchase_not_found"
	ReasonRefundExceedsPurchase = "refund_exceeds_purchase"
	ReasonInsufficientPoints    = "insufficient_points"
)

// decideValue decides the purchase and loyalty commands.
func decideValue(c Customer, cmd Command, now time.Time) ([]Event, error) {
	switch cmd := cmd.(type) {
	case RecordPurchase:
		return decideRecordPurchase(c, cmd, now)
	case RefundPurchase:
		return decideRefundPurchase(c, cmd, now)
	case AwardPoints:
		return decideAwardPoints(c, cmd, now)
	case RedeemPoints:
		return decideRedeemPoints(c, cmd, now)
	}
	return nil, nil
}

// decideRecordPurchase: a reference seen before is the same purchase (a
// retry from the shop), answered with the first one whatever the body says
// now; a second currency is 422 currency.
func decideRecordPurchase(c Customer, cmd RecordPurchase, now time.Time) ([]Event, error) {
	var f fieldErrors
	f.id("purchase_id", cmd.PurchaseID)
	cmd.Reference = f.required("reference", cmd.Reference, MaxShortTextLength)
	cmd.Channel = f.optional("channel", cmd.Channel, MaxLabelLength)
	currency, decimals, okCurrency := f.currency("currency", cmd.Currency)
	amount := int64(0)
	if okCurrency {
		amount = f.amount("amount", cmd.Amount, decimals, true)
	} else if strings.TrimSpace(cmd.Amount) == "" {
		f.add("amount", "is required")
	}
	var occurredAt time.Time
	if cmd.OccurredAt == nil {
		f.add("occurred_at", "is required")
	} else {
		occurredAt = f.notAfterNow("occurred_at", cmd.OccurredAt, now)
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	if err := requireCustomer(c); err != nil {
		return nil, err
	}
	if first, ok := c.Value.purchaseByReference(cmd.Reference); ok {
		return nil, alreadyRecorded("purchase", first.ID)
	}
	if _, ok := c.Value.Purchase(cmd.PurchaseID); ok {
		return nil, alreadyRecorded("purchase", cmd.PurchaseID)
	}
	if c.Value.Currency != "" && currency != c.Value.Currency {
		return nil, invalid([]FieldError{{Field: "currency", Message: "must be " + c.Value.Currency + ", the currency of the customer's purchases"}})
	}
	events := []Event{PurchaseRecorded{
		PurchaseID: cmd.PurchaseID, Reference: cmd.Reference, AmountMinor: amount, Currency: currency,
		Channel: cmd.Channel, OccurredAt: occurredAt,
	}}
	policy := cmd.Loyalty.withDefaults()
	if points := policy.points(amount, decimals); points > 0 {
		id := cmd.PurchaseID
		events = append(events, PointsAwarded{
			AwardID: cmd.PurchaseID, Points: points, PurchaseID: &id,
			ExpiresAt: policy.expiry(occurredAt), OccurredAt: occurredAt,
		})
	}
	return events, nil
}

// decideRefundPurchase: never above what is left of the purchase; the
// points the refunded amount had earned are taken back as far as the
// balance allows.
func decideRefundPurchase(c Customer, cmd RefundPurchase, now time.Time) ([]Event, error) {
	var f fieldErrors
	f.id("refund_id", cmd.RefundID)
	if err := f.err(); err != nil {
		return nil, err
	}
	if err := requireCustomer(c); err != nil {
		return nil, err
	}
	if c.Value.entries.has(cmd.RefundID) {
		return nil, alreadyRecorded("refund", cmd.RefundID)
	}
	p, ok := c.Value.Purchase(cmd.PurchaseID)
	if !ok {
		return nil, notFound(ReasonPurchaseNotFound, "purchase not found")
	}
	decimals, _ := CurrencyDecimals(c.Value.Currency)
	left := p.NetMinor()
	amount := left
	if cmd.Amount != nil {
		amount = f.amount("amount", *cmd.Amount, decimals, true)
		if err := f.err(); err != nil {
			return nil, err
		}
	}
	if left == 0 {
		return nil, conflict(ReasonRefundExceedsPurchase, "the purchase was refunded in full")
	}
	if amount > left {
		return nil, conflict(ReasonRefundExceedsPurchase, "a refund may not exceed what is left of the purchase ("+FormatAmount(left, decimals)+" "+c.Value.Currency+")")
	}
	events := []Event{PurchaseRefunded{RefundID: cmd.RefundID, PurchaseID: p.ID, AmountMinor: amount, Currency: c.Value.Currency, OccurredAt: now}}
	entitlement := min(p.Points, cmd.Loyalty.withDefaults().points(left-amount, decimals))
	if drop := p.Points - entitlement; drop > 0 {
		takes := c.Value.take(drop, now, p.ID)
		events = append(events, PointsRevoked{
			RefundID: cmd.RefundID, PurchaseID: p.ID, Points: sumTakes(takes), Entitlement: entitlement,
			Lots: takes, OccurredAt: now,
		})
	}
	return events, nil
}

func decideAwardPoints(c Customer, cmd AwardPoints, now time.Time) ([]Event, error) {
	var f fieldErrors
	f.id("award_id", cmd.AwardID)
	f.points("points", cmd.Points)
	cmd.Reason = f.required("reason", cmd.Reason, MaxLongTextLength)
	if err := f.err(); err != nil {
		return nil, err
	}
	if err := requireCustomer(c); err != nil {
		return nil, err
	}
	if c.Value.entries.has(cmd.AwardID) {
		return nil, alreadyRecorded("award", cmd.AwardID)
	}
	return []Event{PointsAwarded{
		AwardID: cmd.AwardID, Points: cmd.Points, Reason: cmd.Reason,
		ExpiresAt: cmd.Loyalty.withDefaults().expiry(now), OccurredAt: now,
	}}, nil
}

// decideRedeemPoints: never above the balance at now, taken from the
// oldest unexpired lots first.
func decideRedeemPoints(c Customer, cmd RedeemPoints, now time.Time) ([]Event, error) {
	var f fieldErrors
	f.id("redemption_id", cmd.RedemptionID)
	f.points("points", cmd.Points)
	cmd.Reason = f.required("reason", cmd.Reason, MaxLongTextLength)
	if err := f.err(); err != nil {
		return nil, err
	}
	if err := requireCustomer(c); err != nil {
		return nil, err
	}
	if c.Value.entries.has(cmd.RedemptionID) {
		return nil, alreadyRecorded("redemption", cmd.RedemptionID)
	}
	if balance := c.Value.Balance(now); cmd.Points > balance {
		return nil, conflict(ReasonInsufficientPoints, "the redemption exceeds the balance of "+strconv.FormatInt(balance, 10)+" points")
	}
	return []Event{PointsRedeemed{
		RedemptionID: cmd.RedemptionID, Points: cmd.Points, Reason: cmd.Reason,
		Lots: c.Value.take(cmd.Points, now, uuid.Nil), OccurredAt: now,
	}}, nil
}

func sumTakes(takes []LotTake) int64 {
	var n int64
	for _, t := range takes {
		n += t.Points
	}
	return n
}

// currency checks an ISO 4217 code (upper-cased after trimming).
func (f *fieldErrors) currency(field, value string) (code string, decimals int, ok bool) {
	code = strings.ToUpper(strings.TrimSpace(value))
	if code == "" {
		f.add(field, "is required")
		return "", 0, false
	}
	decimals, ok = CurrencyDecimals(code)
	if !ok {
		f.add(field, "must be an ISO 4217 currency code such as EUR or JPY")
	}
	return code, decimals, ok
}

// amount reads a decimal string in a currency with decimals digits.
func (f *fieldErrors) amount(field, value string, decimals int, positive bool) int64 {
	if value == "" {
		f.add(field, "is required")
		return 0
	}
	minor, ok := ParseAmount(value, decimals)
	switch {
	case !ok:
		f.add(field, "must be a decimal string with at most %d decimals and at most %s, such as %q", decimals,
			FormatAmount(MaxAmountMinor, decimals), FormatAmount(12990*unitMinor(decimals)/100, decimals))
	case positive && minor <= 0:
		f.add(field, "must be more than zero")
	}
	return minor
}

func (f *fieldErrors) points(field string, n int64) {
	if n < 1 || n > MaxPoints {
		f.add(field, "must be a whole number from 1 to %d", MaxPoints)
	}
}
