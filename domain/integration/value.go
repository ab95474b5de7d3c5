package integration

import (
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
)

// The value and loyalty events' public types.
const (
	TypePurchaseRecorded = "purchase.recorded.v1"
	TypePurchaseRefunded = "purchase.refunded.v1"
	TypePointsAwarded    = "points.awarded.v1"
	TypePointsRedeemed   = "points.redeemed.v1"
	TypePointsRevoked    = "points.revoked.v1"
)

// The value events carry money and points, which are not personal; the
// reasons given for awards and redemptions are free text (personal, like
// every free text) and never leave. The lots a redemption took from are
// internal bookkeeping of the expiry rule, so they stay inside too.
type (
	PurchaseRecordedData struct {
		PurchaseID  uuid.UUID `json:"purchase_id"`
		Reference   string    `json:"reference"`
		AmountMinor int64     `json:"amount_minor"`
		Currency    string    `json:"currency"`
		Channel     string    `json:"channel"`
	}
	PurchaseRefundedData struct {
		RefundID    uuid.UUID `json:"refund_id"`
		PurchaseID  uuid.UUID `json:"purchase_id"`
		AmountMinor int64     `json:"amount_minor"`
		Currency    string    `json:"currency"`
	}
	PointsAwardedData struct {
		AwardID    uuid.UUID  `json:"award_id"`
		Points     int64      `json:"points"`
		PurchaseID *uuid.UUID `json:"purchase_id"`
		ExpiresAt  time.Time  `json:"expires_at"`
	}
	PointsRedeemedData struct {
		RedemptionID uuid.UUID `json:"redemption_id"`
		Points       int64     `json:"points"`
	}
	PointsRevokedData struct {
		RefundID   uuid.UUID `json:"refund_id"`
		PurchaseID uuid.UUID `json:"purchase_id"`
		Points     int64     `json:"points"`
	}
)

// valueTable maps the purchase and loyalty events.
func valueTable() []mapping {
	return []mapping{
		entry(TypePurchaseRecorded, func(e domain.PurchaseRecorded) PurchaseRecordedData {
			return PurchaseRecordedData{e.PurchaseID, e.Reference, e.AmountMinor, e.Currency, e.Channel}
		}),
		entry(TypePurchaseRefunded, func(e domain.PurchaseRefunded) PurchaseRefundedData {
			return PurchaseRefundedData{e.RefundID, e.PurchaseID, e.AmountMinor, e.Currency}
		}),
		entry(TypePointsAwarded, func(e domain.PointsAwarded) PointsAwardedData {
			return PointsAwardedData{e.AwardID, e.Points, e.PurchaseID, e.ExpiresAt}
		}),
		entry(TypePointsRedeemed, func(e domain.PointsRedeemed) PointsRedeemedData {
			return PointsRedeemedData{e.RedemptionID, e.Points}
		}),
		entry(TypePointsRevoked, func(e domain.PointsRevoked) PointsRevokedData {
			return PointsRevokedData{e.RefundID, e.PurchaseID, e.Points}
		}),
	}
}
