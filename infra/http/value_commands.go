package http

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
)

// The purchase and loyalty commands (PRODUCT.md "Purchases, value and
// loyalty"). Amounts are decimal strings, so that money never passes
// through a floating-point number; a JSON number there is 422 amount.

type purchaseBody struct {
	Amount     string  `json:"amount"`
	Currency   string  `json:"currency"`
	OccurredAt *string `json:"occurred_at"`
	Reference  string  `json:"reference"`
	Channel    string  `json:"channel"`
}

type refundBody struct {
	Amount *string `json:"amount"`
}

type pointsBody struct {
	Points int64  `json:"points"`
	Reason string `json:"reason"`
}

// valueResponse is the answer of a value command: the customer's revision
// and position, and the id of what it recorded.
type valueResponse struct {
	CustomerID   uuid.UUID  `json:"customer_id"`
	Revision     uint64     `json:"revision"`
	Position     uint64     `json:"position"`
	PurchaseID   *uuid.UUID `json:"purchase_id,omitempty"`
	RefundID     *uuid.UUID `json:"refund_id,omitempty"`
	AwardID      *uuid.UUID `json:"award_id,omitempty"`
	RedemptionID *uuid.UUID `json:"redemption_id,omitempty"`
}

// valueCreation says which id a value command answers and whether a
// first run answers 201.
type valueCreation int

const (
	createsPurchase valueCreation = iota
	createsRefund
	createsAward
	createsRedemption
)

func (s *Server) valueCommandRoutes() []Route {
	writer := []Role{RoleWriter}
	const customer = "/v1/customers/{id}"
	return []Route{
		{Name: "recordPurchase", Method: http.MethodPost, Path: customer + "/purchases", Roles: writer,
			handler: valueCommand(s, createsPurchase, func(_ *http.Request, b purchaseBody) (domain.Command, error) {
				var p fieldParser
				at := p.time("occurred_at", b.OccurredAt)
				return domain.RecordPurchase{Amount: b.Amount, Currency: b.Currency, OccurredAt: at, Reference: b.Reference, Channel: b.Channel}, p.err()
			})},
		{Name: "refundPurchase", Method: http.MethodPost, Path: customer + "/purchases/{pid}/refund", Roles: writer,
			handler: valueCommand(s, createsRefund, func(r *http.Request, b refundBody) (domain.Command, error) {
				id, err := pathID(r, "pid", domain.ReasonPurchaseNotFound)
				return domain.RefundPurchase{PurchaseID: id, Amount: b.Amount}, err
			})},
		{Name: "awardPoints", Method: http.MethodPost, Path: customer + "/loyalty/awards", Roles: writer,
			handler: valueCommand(s, createsAward, func(_ *http.Request, b pointsBody) (domain.Command, error) {
				return domain.AwardPoints{Points: b.Points, Reason: b.Reason}, nil
			})},
		{Name: "redeemPoints", Method: http.MethodPost, Path: customer + "/loyalty/redemptions", Roles: writer,
			handler: valueCommand(s, createsRedemption, func(_ *http.Request, b pointsBody) (domain.Command, error) {
				return domain.RedeemPoints{Points: b.Points, Reason: b.Reason}, nil
			})},
	}
}

// valueCommand is command's twin for the value commands: the same strict
// decoding, idempotency and If-Match, with their own answer. A purchase
// whose reference the customer already has answers 200 with the first
// purchase (PRODUCT.md: a repeat is the same purchase).
func valueCommand[B any](s *Server, creates valueCreation, build commandBuilder[B]) handlerFunc {
	return handleCommand(s, true, build, func(w http.ResponseWriter, res commands.Result) {
		writeValueResult(w, creates, res)
	})
}

func writeValueResult(w http.ResponseWriter, creates valueCreation, res commands.Result) {
	resp := valueResponse{CustomerID: res.CustomerID, Revision: res.Revision, Position: uint64(res.Position)}
	id := res.CreatedID
	status := http.StatusCreated
	switch creates {
	case createsPurchase:
		resp.PurchaseID = &id
		if res.Replayed {
			status = http.StatusOK
		}
	case createsRefund:
		resp.RefundID = &id
		status = http.StatusOK
	case createsAward:
		resp.AwardID = &id
	case createsRedemption:
		resp.RedemptionID = &id
	}
	w.Header().Set("ETag", etag(res.Revision))
	writeJSON(w, status, resp)
}
