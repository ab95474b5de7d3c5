package commands

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// The purchase and loyalty commands (PRODUCT.md "Purchases, value and
// loyalty") go through the same load–decide–append path as every other
// command; this file adds what is particular to them: their derived ids,
// the loyalty policy from configuration, and the answer to a purchase
// whose reference the customer already has.

// withValueIDs fills the ids the value commands create, derived from the
// command id like every other created id.
func withValueIDs(cmd domain.Command, commandID uuid.UUID) (domain.Command, uuid.UUID) {
	switch c := cmd.(type) {
	case domain.RecordPurchase:
		c.PurchaseID = createdID(commandID, "purchase")
		return c, c.PurchaseID
	case domain.RefundPurchase:
		c.RefundID = createdID(commandID, "refund")
		return c, c.RefundID
	case domain.AwardPoints:
		c.AwardID = createdID(commandID, "points-award")
		return c, c.AwardID
	case domain.RedeemPoints:
		c.RedemptionID = createdID(commandID, "points-redemption")
		return c, c.RedemptionID
	}
	return cmd, uuid.Nil
}

// withLoyalty gives the commands that earn points the configured policy.
func withLoyalty(cmd domain.Command, policy domain.LoyaltyPolicy) domain.Command {
	switch c := cmd.(type) {
	case domain.RecordPurchase:
		c.Loyalty = policy
		return c
	case domain.RefundPurchase:
		c.Loyalty = policy
		return c
	case domain.AwardPoints:
		c.Loyalty = policy
		return c
	}
	return cmd
}

// firstPurchase answers a purchase whose reference (or id) the customer
// already has with the first purchase: its id, and the revision and
// position of the events that recorded it. A repeated reference is the
// same purchase (the shop retried), whichever command id it came with, so
// it is found by purchase id rather than by causation id.
func (h *Customers) firstPurchase(ctx context.Context, entry *cacheEntry, purchaseID uuid.UUID) (Result, error) {
	const page = 500
	stream := domain.StreamName(entry.customerID)
	from := uint64(max(entry.revision, 0))
	for {
		events, err := h.cfg.Store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: from, Limit: page})
		if err != nil {
			return Result{}, fmt.Errorf("commands: find the first purchase: %w", err)
		}
		// The purchase's last event is its points award when it earned
		// some, which directly follows it; the answer names that one, as
		// the first run did.
		var last *eventstore.RecordedEvent
		for i, rec := range events {
			d, err := h.cfg.Codec.Decode(ctx, rec)
			if err != nil {
				return Result{}, fmt.Errorf("commands: find the first purchase: %w", err)
			}
			switch e := d.Event.(type) {
			case domain.PointsAwarded:
				if e.AwardID == purchaseID {
					last = &events[i]
				}
			case domain.PurchaseRecorded:
				if e.PurchaseID == purchaseID {
					if last == nil {
						last = &events[i]
					}
					return Result{CustomerID: entry.customerID, Revision: last.Revision, Position: last.Position, CreatedID: purchaseID, Replayed: true}, nil
				}
			}
		}
		if len(events) < page || events[len(events)-1].Revision == 0 {
			return Result{}, fmt.Errorf("commands: purchase %s is in the state but not in the stream", purchaseID)
		}
		from = events[len(events)-1].Revision - 1
	}
}
