package console

import (
	"errors"
	"net/http"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/history"
	"github.com/rapport-crm/rapport/readmodels/surveys"
	"github.com/rapport-crm/rapport/readmodels/value"
)

type customersData struct {
	Q, Segment, Tier, Region, Owner, Status, Risk string
	Items                                         []customers.Customer
	Next                                          string
}

// customers searches the directory (GET /v1/customers' query).
func (c *Console) customers(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	q := r.URL.Query()
	d := customersData{Q: q.Get("q"), Segment: q.Get("segment"), Tier: q.Get("tier"), Region: q.Get("region"),
		Owner: q.Get("owner"), Status: q.Get("status"), Risk: q.Get("risk")}
	f, limit, cursor, err := rhttp.CustomerListParams(q)
	if err != nil {
		return err
	}
	page, err := c.cfg.Customers.List(r.Context(), f, limit, cursor)
	if errors.Is(err, customers.ErrBadCursor) {
		return rhttp.InvalidFields(rhttp.FieldError{Field: "cursor", Message: "is not a cursor from a previous page of this list"})
	}
	if err != nil {
		return err
	}
	d.Items = page.Items
	if page.NextCursor != "" {
		nq := r.URL.Query()
		nq.Set("cursor", page.NextCursor)
		d.Next = "/console/customers?" + nq.Encode()
	}
	c.render(w, r, http.StatusOK, "customers", &view{Title: "Customers", S: s, Data: d})
	return nil
}

type customerData struct {
	C          customers.Customer
	Complaints []complaints.Complaint
	Surveys    []surveys.Survey
	Contacts   []contacts.Contact
	FollowUps  []contacts.FollowUp
	// History is the audit timeline, for auditors only (as in the API).
	History     []history.Entry
	ShowHistory bool
	// Value and Loyalty are GET /v1/customers/{id}'s value and GET
	// …/loyalty's answer, shown when the service has them.
	ShowValue bool
	Value     customerValue
	Loyalty   value.Loyalty
}

// customerValue is a customer's value (RFM) as the API answers it.
type customerValue struct {
	RecencyDays *int
	Frequency   int
	// Monetary is the API's decimal string; Currency "" before a purchase.
	Monetary, Currency string
	R, F, M            *int
	Segment            *string
}

func valueOf(v value.CustomerValue) customerValue {
	return customerValue{RecencyDays: v.RecencyDays, Frequency: v.Frequency, Monetary: v.Monetary(), Currency: v.Currency,
		R: v.R, F: v.F, M: v.M, Segment: v.Segment}
}

// customerID reads the {id} of a console path: a 404 page when it is not
// a customer id.
func customerID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return id, rhttp.NotFound(domain.ReasonCustomerNotFound, "no customer has this id")
	}
	return id, nil
}

// customer shows one customer: the directory's row with its risk, and the
// activity lists the API serves for it.
func (c *Console) customer(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	id, err := customerID(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var d customerData
	// The reads are independent: asked at once, the page takes as long as
	// the slowest, not their sum. The directory's answer decides first (a
	// customer it lacks is a 404, whatever the lists say).
	var getErr error
	jobs := []func() error{func() error { d.C, getErr = c.cfg.Customers.Get(ctx, id); return nil }}
	if c.cfg.Complaints != nil {
		jobs = append(jobs, func() error {
			page, err := c.cfg.Complaints.Complaints(ctx, id, "", 50)
			d.Complaints = page.Items
			return err
		})
	}
	if c.cfg.Surveys != nil {
		jobs = append(jobs, func() error {
			page, err := c.cfg.Surveys.Surveys(ctx, id, "", 50)
			d.Surveys = page.Items
			return err
		})
	}
	if c.cfg.Contacts != nil {
		jobs = append(jobs, func() error {
			page, err := c.cfg.Contacts.Contacts(ctx, id, "", 20)
			d.Contacts = page.Items
			return err
		}, func() error {
			fu, err := c.cfg.Contacts.FollowUps(ctx, id, "", 20)
			d.FollowUps = fu.Items
			return err
		})
	}
	if c.cfg.History != nil && may(s.Principal, []rhttp.Role{rhttp.RoleAuditor}) {
		d.ShowHistory = true
		jobs = append(jobs, func() error {
			page, err := c.cfg.History.History(ctx, id, history.Filter{}, "", 100)
			d.History = page.Items
			return err
		})
	}
	if c.cfg.Value != nil {
		d.ShowValue = true
		jobs = append(jobs, func() error {
			v, err := c.cfg.Value.Value(ctx, id)
			d.Value = valueOf(v)
			return err
		}, func() error {
			l, err := c.cfg.Value.Loyalty(ctx, id)
			d.Loyalty = l
			return err
		})
	}
	err = parallel(jobs...)
	if errors.Is(getErr, customers.ErrNotFound) {
		return rhttp.NotFound(domain.ReasonCustomerNotFound, "no customer has this id")
	}
	if getErr != nil {
		return getErr
	}
	if err != nil {
		return err
	}
	cu := d.C
	panels, err := c.panels(r, s, PageCustomer)
	if err != nil {
		return err
	}
	title := "Customer"
	if cu.Name != nil {
		title = *cu.Name
	}
	c.render(w, r, http.StatusOK, "customer", &view{Title: title, S: s, Data: d, Panels: panels})
	return nil
}
