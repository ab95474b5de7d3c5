package http

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/value"
)

// ValueQueries reads customers' value and loyalty and the value figures
// (readmodels/value).
type ValueQueries interface {
	Value(ctx context.Context, id uuid.UUID) (value.CustomerValue, error)
	Members(ctx context.Context, segment string) ([]uuid.UUID, error)
	Loyalty(ctx context.Context, id uuid.UUID) (value.Loyalty, error)
	Report(ctx context.Context, p analytics.Params) (value.Report, error)
	// Reads names the projectors the customer queries read, ReportReads
	// those of the figures (min_position).
	Reads() []string
	ReportReads() []string
}

// valueRoutes lists the purchase, loyalty and value endpoints.
func (s *Server) valueRoutes() []Route {
	routes := s.valueCommandRoutes()
	if s.cfg.Value == nil {
		return routes
	}
	return append(routes,
		Route{Name: "getLoyalty", Method: http.MethodGet, Path: "/v1/customers/{id}/loyalty", handler: s.getLoyalty},
		Route{Name: "getValueAnalytics", Method: http.MethodGet, Path: "/v1/analytics/value", Roles: []Role{RoleAnalyst}, handler: s.valueAnalytics},
	)
}

// valueView is a customer's value (openapi CustomerValue).
type valueView struct {
	RecencyDays *int    `json:"recency_days"`
	Frequency   int     `json:"frequency"`
	Monetary    string  `json:"monetary"`
	Currency    *string `json:"currency"`
	R           *int    `json:"r"`
	F           *int    `json:"f"`
	M           *int    `json:"m"`
	Segment     *string `json:"rfm_segment"`
}

func viewOfValue(v value.CustomerValue) *valueView {
	return &valueView{RecencyDays: v.RecencyDays, Frequency: v.Frequency, Monetary: v.Monetary(), Currency: nonEmpty(&v.Currency),
		R: v.R, F: v.F, M: v.M, Segment: v.Segment}
}

// customerValue is the customer's value for GET /v1/customers/{id}, nil
// when the value read model is not served.
func (s *Server) customerValue(r *http.Request, id uuid.UUID) (*valueView, error) {
	if s.cfg.Value == nil {
		return nil, nil
	}
	if err := s.awaitPosition(r, s.cfg.Value.Reads()...); err != nil {
		return nil, err
	}
	v, err := s.cfg.Value.Value(r.Context(), id)
	if err != nil {
		return nil, err
	}
	return viewOfValue(v), nil
}

// rfmMembers reads the list's rfm= parameter: nil without one, else the
// customers in that segment now.
func (s *Server) rfmMembers(r *http.Request) (*[]uuid.UUID, error) {
	segment := r.URL.Query().Get("rfm")
	if segment == "" {
		return nil, nil
	}
	if s.cfg.Value == nil || !value.ValidSegment(segment) {
		return nil, invalidFields(FieldError{Field: "rfm", Message: "must be one of champions, loyal, potential, new, at_risk, hibernating, lost"})
	}
	if err := s.awaitPosition(r, s.cfg.Value.Reads()...); err != nil {
		return nil, err
	}
	ids, err := s.cfg.Value.Members(r.Context(), segment)
	if ids == nil {
		ids = []uuid.UUID{}
	}
	return &ids, err
}

type loyaltyEntryView struct {
	Kind       string     `json:"kind"`
	Points     int64      `json:"points"`
	OccurredAt time.Time  `json:"occurred_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	Reason     *string    `json:"reason"`
	PurchaseID *uuid.UUID `json:"purchase_id"`
	EntryID    uuid.UUID  `json:"entry_id"`
}

type loyaltyView struct {
	CustomerID uuid.UUID          `json:"customer_id"`
	Balance    int64              `json:"balance"`
	Expiring   int64              `json:"expiring_30d"`
	Ledger     []loyaltyEntryView `json:"ledger"`
	Stale      bool               `json:"stale,omitempty"`
}

// getLoyalty answers the customer's balance, points expiring in 30 days
// and ledger, judged now.
func (s *Server) getLoyalty(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", domain.ReasonCustomerNotFound)
	if err != nil {
		return err
	}
	if err := s.awaitPosition(r, s.withLifecycles(s.cfg.Value.Reads())...); err != nil {
		return err
	}
	l, err := s.cfg.Value.Loyalty(r.Context(), id)
	if err != nil {
		return err
	}
	if len(l.Ledger) == 0 {
		if err := s.customerNotFound(r.Context(), id); err != nil {
			return err
		}
	}
	v := loyaltyView{CustomerID: id, Balance: l.Balance, Expiring: l.Expiring, Ledger: make([]loyaltyEntryView, len(l.Ledger))}
	for i, e := range l.Ledger {
		v.Ledger[i] = loyaltyEntryView{Kind: e.Kind, Points: e.Points, OccurredAt: e.OccurredAt.UTC(), ExpiresAt: utcPtr(e.ExpiresAt),
			Reason: e.Reason, PurchaseID: e.PurchaseID, EntryID: e.EntryID}
	}
	if v.Stale, err = s.staleFor(r, id, s.cfg.Value.Reads()...); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// valueColumns are the value figures in answer order.
var valueColumns = []string{"currency", "revenue", "purchases", "average_order_value", "repeat_purchase_rate", "customers", "repeat_customers"}

// valueGroupJSON is one row of the value figures.
type valueGroupJSON struct {
	Key                *string  `json:"key"`
	Currency           *string  `json:"currency"`
	Revenue            *string  `json:"revenue"`
	Purchases          int64    `json:"purchases"`
	AverageOrderValue  *string  `json:"average_order_value"`
	RepeatPurchaseRate *float64 `json:"repeat_purchase_rate"`
	Customers          int64    `json:"customers"`
	RepeatCustomers    int64    `json:"repeat_customers"`
}

func valueGroupOf(g value.Group) valueGroupJSON {
	return valueGroupJSON{Key: g.Key, Currency: nonEmpty(&g.Currency), Revenue: g.Revenue(), Purchases: g.Purchases,
		AverageOrderValue: g.AverageOrderValue(), RepeatPurchaseRate: g.RepeatPurchaseRate(), Customers: g.Customers, RepeatCustomers: g.RepeatCustomers}
}

// valueAnalytics answers GET /v1/analytics/value: the same parameters as
// the other figures, JSON or CSV.
func (s *Server) valueAnalytics(w http.ResponseWriter, r *http.Request) error {
	params, err := parseAnalyticsParams(r.URL.Query(), time.Now())
	if err != nil {
		return err
	}
	if err := s.awaitPosition(r, s.cfg.Value.ReportReads()...); err != nil {
		return err
	}
	rep, err := s.cfg.Value.Report(r.Context(), params)
	if err != nil {
		return err
	}
	groups := make([]valueGroupJSON, len(rep.Groups))
	for i, g := range rep.Groups {
		groups[i] = valueGroupOf(g)
	}
	if wantsCSV(r) {
		return writeValueCSV(w, groups)
	}
	var groupBy *string
	if rep.GroupBy != analytics.All {
		g := string(rep.GroupBy)
		groupBy = &g
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"from": rep.From.UTC().Format(time.RFC3339Nano), "to": rep.To.UTC().Format(time.RFC3339Nano),
		"group_by": groupBy, "groups": groups,
	})
	return nil
}

// writeValueCSV writes the rows as CSV like the other figures: key, then
// the figures in JSON order; empty cells for nulls.
func writeValueCSV(w http.ResponseWriter, groups []valueGroupJSON) error {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.UseCRLF = true
	_ = cw.Write(append([]string{"key"}, valueColumns...))
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	for _, g := range groups {
		rate := ""
		if g.RepeatPurchaseRate != nil {
			raw, _ := json.Marshal(*g.RepeatPurchaseRate)
			rate = string(raw)
		}
		_ = cw.Write([]string{csvText(str(g.Key)), str(g.Currency), str(g.Revenue), strconv.FormatInt(g.Purchases, 10),
			str(g.AverageOrderValue), rate, strconv.FormatInt(g.Customers, 10), strconv.FormatInt(g.RepeatCustomers, 10)})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="value.csv"`)
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(b.Bytes())
	return err
}
