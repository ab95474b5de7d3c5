package http

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/risk"
)

// CustomerQueries reads the customer directory (readmodels/customers) and
// scores churn risk (customers.Queries).
type CustomerQueries interface {
	// Get returns one customer, or customers.ErrNotFound.
	Get(ctx context.Context, id uuid.UUID) (customers.Customer, error)
	// List returns a page of customers; customers.ErrBadCursor for a
	// cursor it did not make.
	List(ctx context.Context, f customers.Filter, limit int, cursor string) (customers.Page, error)
	// Reads names the projectors the queries read (min_position).
	Reads() []string
}

// customerRoutes lists GET /v1/customers and GET /v1/customers/{id}.
func (s *Server) customerRoutes() []Route {
	if s.cfg.Customers == nil {
		return nil
	}
	return []Route{
		{Name: "listCustomers", Method: http.MethodGet, Path: "/v1/customers", handler: s.listCustomers},
		{Name: "getCustomer", Method: http.MethodGet, Path: "/v1/customers/{id}", handler: s.getCustomer},
	}
}

// customerView is a customer as the API shows it (openapi Customer).
type customerView struct {
	ID             uuid.UUID         `json:"id"`
	Name           *string           `json:"name"`
	Email          *string           `json:"email"`
	Phone          *string           `json:"phone"`
	Company        *string           `json:"company"`
	Tags           []string          `json:"tags"`
	Segment        *string           `json:"segment"`
	Tier           *string           `json:"tier"`
	Region         *string           `json:"region"`
	Industry       *string           `json:"industry"`
	Team           map[string]string `json:"team"`
	Status         string            `json:"status"`
	RegisteredAt   time.Time         `json:"registered_at"`
	LastContactAt  *time.Time        `json:"last_contact_at"`
	OpenComplaints int               `json:"open_complaints"`
	LastCSAT       *int              `json:"last_csat"`
	LastNPS        *int              `json:"last_nps"`
	// Risk is null for churned and erased customers.
	Risk     *risk.Risk `json:"risk"`
	Revision uint64     `json:"revision"`
	Position uint64     `json:"position"`
	// Contact cadence, judged now: contact_due_at is null unless active.
	DueForContact bool       `json:"due_for_contact"`
	ContactDueAt  *time.Time `json:"contact_due_at"`
	OverContacted bool       `json:"over_contacted"`
	// Stale: a projector parked the customer's stream on an event it could
	// not apply; the row is its last good state.
	Stale bool `json:"stale,omitempty"`
	// Value is the customer's recency, frequency and monetary value,
	// judged now (GET of one customer, when the value model is served).
	Value *valueView `json:"value,omitempty"`
}

func viewOfCustomer(c customers.Customer) customerView {
	v := customerView{
		ID: c.ID, Name: c.Name, Email: nonEmpty(c.Email), Phone: nonEmpty(c.Phone), Company: nonEmpty(c.Company),
		Segment: nonEmpty(&c.Segment), Tier: nonEmpty(&c.Tier), Region: nonEmpty(&c.Region), Industry: nonEmpty(&c.Industry),
		Team: c.Team, Status: c.Status, RegisteredAt: c.RegisteredAt.UTC(), OpenComplaints: c.OpenComplaints,
		LastCSAT: c.LastCSAT, LastNPS: c.LastNPS, Risk: c.ChurnRisk, Revision: c.Revision, Position: c.Position,
		DueForContact: c.DueForContact, ContactDueAt: c.ContactDueAt, OverContacted: c.OverContacted,
	}
	// Tags are personal: null once erased, like the name; else a list.
	if c.Name != nil {
		v.Tags = c.Tags
		if v.Tags == nil {
			v.Tags = []string{}
		}
	}
	if v.Team == nil {
		v.Team = map[string]string{}
	}
	if c.LastContactAt != nil {
		t := c.LastContactAt.UTC()
		v.LastContactAt = &t
	}
	if v.Risk != nil && v.Risk.Factors == nil {
		r := *v.Risk
		r.Factors = []risk.Factor{}
		v.Risk = &r
	}
	return v
}

// nonEmpty is nil for nil or "" (a field never set, or erased).
func nonEmpty(s *string) *string {
	if s == nil || *s == "" {
		return nil
	}
	return s
}

// getCustomer answers one customer with its churn risk evaluated now.
func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request) error {
	if err := s.awaitPosition(r, s.cfg.Customers.Reads()...); err != nil {
		return err
	}
	id, err := pathID(r, "id", domain.ReasonCustomerNotFound)
	if err != nil {
		return err
	}
	c, err := s.cfg.Customers.Get(r.Context(), id)
	if errors.Is(err, customers.ErrNotFound) {
		return newProblem(http.StatusNotFound, domain.ReasonCustomerNotFound, "no customer has id "+id.String())
	}
	if err != nil {
		return err
	}
	v := viewOfCustomer(c)
	if v.Stale, err = s.staleFor(r, id, s.cfg.Customers.Reads()...); err != nil {
		return err
	}
	if v.Value, err = s.customerValue(r, id); err != nil {
		return err
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(c.Revision, 10)))
	writeJSON(w, http.StatusOK, v)
	return nil
}

// Bounds of the list's parameters.
const (
	defaultCustomerLimit = 50
	maxQLength           = 200
	maxNoContactDays     = 36500
)

// customerListQuery is the list's parameters, checked.
type customerListQuery struct {
	filter customers.Filter
	limit  int
	cursor string
}

// parseCustomerListQuery reads segment, tier, region, owner, status, risk,
// q, no_contact_days, due_for_contact, limit and cursor; every bad one is named in one 422.
// An empty value is the same as none. min_position is awaitPosition's.
// no_contact_days (1–36500: no contact, or registered without one, for at
// least that many whole days) answers the analysts' "high risk and not
// contacted for 60 days" with risk=high&no_contact_days=60.
func parseCustomerListQuery(q url.Values) (customerListQuery, error) {
	var (
		p   fieldParser
		out customerListQuery
	)
	// text reads a free-text parameter: valid UTF-8 without NUL (which
	// PostgreSQL cannot take), at most max characters; trimmed unless raw.
	text := func(name string, max int, trim bool, what string) string {
		raw := q.Get(name)
		if raw == "" {
			return ""
		}
		v := raw
		if trim {
			v = strings.TrimSpace(raw)
		}
		if v == "" || !utf8.ValidString(v) || strings.ContainsRune(v, 0) || utf8.RuneCountInString(v) > max {
			p.fail(name, "must be %s of 1 to %d characters", what, max)
			return ""
		}
		return v
	}
	out.filter.Segment = text("segment", domain.MaxLabelLength, true, "a label")
	out.filter.Region = text("region", domain.MaxLabelLength, true, "a label")
	if v := q.Get("tier"); v != "" {
		if !domain.ValidTier(v) {
			p.fail("tier", "must be one of A, B, C")
		} else {
			out.filter.Tier = v
		}
	}
	if v := q.Get("status"); v != "" {
		switch domain.CustomerStatus(v) {
		case domain.StatusActive, domain.StatusChurned, domain.StatusErased:
			out.filter.Status = v
		default:
			p.fail("status", "must be one of active, churned, erased")
		}
	}
	if v := q.Get("risk"); v != "" {
		if !risk.ValidLevel(v) {
			p.fail("risk", "must be one of low, medium, high")
		} else {
			out.filter.Risk = v
		}
	}
	out.filter.Owner = text("owner", domain.MaxShortTextLength, true, "a team member's name")
	out.filter.Q = text("q", maxQLength, false, "a text")
	out.filter.NoContactDays = p.int("no_contact_days", q.Get("no_contact_days"), 1, maxNoContactDays, 0)
	switch v := q.Get("due_for_contact"); v {
	case "":
	case "true", "false":
		due := v == "true"
		out.filter.DueForContact = &due
	default:
		p.fail("due_for_contact", "must be true or false")
	}
	out.limit = p.int("limit", q.Get("limit"), 1, customers.MaxLimit, defaultCustomerLimit)
	if v := q.Get("cursor"); v != "" {
		if !customers.ValidCursor(v) {
			p.fail("cursor", "is not a cursor from a previous page")
		} else {
			out.cursor = v
		}
	}
	return out, p.err()
}

// listCustomers answers a page of the customers matching every filter,
// each with its churn risk evaluated now.
func (s *Server) listCustomers(w http.ResponseWriter, r *http.Request) error {
	if err := s.awaitPosition(r, s.cfg.Customers.Reads()...); err != nil {
		return err
	}
	query, err := parseCustomerListQuery(r.URL.Query())
	if err != nil {
		return err
	}
	if query.filter.IDs, err = s.rfmMembers(r); err != nil {
		return err
	}
	page, err := s.cfg.Customers.List(r.Context(), query.filter, query.limit, query.cursor)
	if err != nil {
		return err
	}
	items := make([]customerView, len(page.Items))
	for i, c := range page.Items {
		items[i] = viewOfCustomer(c)
	}
	var next *string
	if page.NextCursor != "" {
		next = &page.NextCursor
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": next})
	return nil
}
