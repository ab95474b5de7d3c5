package http_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// valueTraffic sends every value command through TestOpenAPITraffic's
// validating client: successes, a repeated reference and the refusals.
func valueTraffic(t *testing.T, base, writer string, do func(method, path, key string, body any, header map[string]string, want int) *apptest.Response) {
	t.Helper()
	at := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
	purchase := map[string]any{"amount": "129.90", "currency": "EUR", "occurred_at": at, "reference": "ORD-1", "channel": "web"}
	var first struct {
		PurchaseID string `json:"purchase_id"`
	}
	do(http.MethodPost, base+"/purchases", writer, purchase, map[string]string{"Idempotency-Key": "order-1"}, http.StatusCreated).JSON(t, &first)
	do(http.MethodPost, base+"/purchases", writer, purchase, nil, http.StatusOK)
	do(http.MethodPost, base+"/purchases", writer, map[string]any{"amount": "9.999", "currency": "EUR", "occurred_at": at, "reference": "ORD-2"}, nil, http.StatusUnprocessableEntity)
	do(http.MethodPost, base+"/purchases", writer, map[string]any{"amount": "10.00", "currency": "EUR", "occurred_at": at, "reference": "ORD-2"}, nil, http.StatusCreated)
	do(http.MethodPost, base+"/purchases/"+first.PurchaseID+"/refund", writer, map[string]any{"amount": "500.00"}, nil, http.StatusConflict)
	do(http.MethodPost, base+"/purchases/"+first.PurchaseID+"/refund", writer, map[string]any{"amount": "29.90"}, nil, http.StatusOK)
	do(http.MethodPost, base+"/purchases/7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f/refund", writer, map[string]any{}, nil, http.StatusNotFound)
	do(http.MethodPost, base+"/loyalty/awards", writer, map[string]any{"points": 25, "reason": "welcome"}, nil, http.StatusCreated)
	do(http.MethodPost, base+"/loyalty/redemptions", writer, map[string]any{"points": 1000, "reason": "voucher"}, nil, http.StatusConflict)
	do(http.MethodPost, base+"/loyalty/redemptions", writer, map[string]any{"points": 20, "reason": "voucher"}, nil, http.StatusCreated)
}

// valueQueries are the value reads TestOpenAPITraffic sends.
func valueQueries(keys map[string]string, base, wait string) []openAPIQuery {
	writer, analyst := keys["writer"], keys["analyst"]
	csv := map[string]string{"Accept": "text/csv"}
	return []openAPIQuery{
		{"getLoyalty", base + "/loyalty" + wait, writer, nil, http.StatusOK},
		{"getLoyalty", "/v1/customers/7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f/loyalty", writer, nil, http.StatusNotFound},
		{"listCustomers", "/v1/customers" + wait + "&rfm=champions", analyst, nil, http.StatusOK},
		{"listCustomers", "/v1/customers?rfm=whales", analyst, nil, http.StatusUnprocessableEntity},
		{"getValueAnalytics", "/v1/analytics/value" + wait, analyst, nil, http.StatusOK},
		{"getValueAnalytics", "/v1/analytics/value" + wait + "&group_by=segment", analyst, csv, http.StatusOK},
		{"getValueAnalytics", "/v1/analytics/value" + wait + "&group_by=month&from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z", analyst, nil, http.StatusOK},
		{"getValueAnalytics", "/v1/analytics/value?group_by=colour", analyst, nil, http.StatusUnprocessableEntity},
	}
}
