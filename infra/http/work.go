package http

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/risk"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// WorkQueries answers the work queues (readmodels/work): cross-customer
// lists judged at the time of the query.
type WorkQueries interface {
	Complaints(ctx context.Context, f work.ComplaintFilter, limit int, cursor string) (readmodel.Page[work.OpenComplaint], error)
	FollowUps(ctx context.Context, f work.FollowUpFilter, limit int, cursor string) (readmodel.Page[work.PendingFollowUp], error)
	ContactDue(ctx context.Context, f work.Filter, limit int, cursor string) (readmodel.Page[work.ContactDue], error)
	AtRisk(ctx context.Context, f work.AtRiskFilter, limit int, cursor string) (readmodel.Page[work.AtRisk], error)
	// Reads names the projectors the queries read (min_position).
	Reads() []string
}

// workRoutes lists /v1/work/*: staff who work the lists (writer, for the
// apps that show them, and analyst; admin may do everything).
func (s *Server) workRoutes() []Route {
	if s.cfg.Work == nil {
		return nil
	}
	roles := []Role{RoleWriter, RoleAnalyst}
	return []Route{
		{Name: "listComplaintQueue", Method: http.MethodGet, Path: "/v1/work/complaints", Roles: roles, handler: s.workComplaints},
		{Name: "listFollowUpQueue", Method: http.MethodGet, Path: "/v1/work/follow-ups", Roles: roles, handler: s.workFollowUps},
		{Name: "listContactDue", Method: http.MethodGet, Path: "/v1/work/contact-due", Roles: roles, handler: s.workContactDue},
		{Name: "listAtRisk", Method: http.MethodGet, Path: "/v1/work/at-risk", Roles: roles, handler: s.workAtRisk},
	}
}

// workParams reads the parameters every queue takes (segment, tier,
// region, owner, limit, cursor of the queue's kind); each bad one is named
// in the one 422 that p collects.
type workParams struct {
	p      fieldParser
	q      url.Values
	filter work.Filter
	limit  int
	cursor string
}

func parseWorkParams(q url.Values, kind readmodel.CursorKind) *workParams {
	w := &workParams{q: q}
	w.filter.Segment = w.text("segment", domain.MaxLabelLength, "a label")
	w.filter.Region = w.text("region", domain.MaxLabelLength, "a label")
	w.filter.Owner = w.text("owner", domain.MaxShortTextLength, "a team member's name")
	if v := q.Get("tier"); v != "" {
		if !domain.ValidTier(v) {
			w.p.fail("tier", "must be one of A, B, C")
		} else {
			w.filter.Tier = v
		}
	}
	w.limit = w.p.int("limit", q.Get("limit"), 1, work.MaxLimit, 50)
	if v := q.Get("cursor"); v != "" {
		if !kind.Valid(v) {
			w.p.fail("cursor", "is not a cursor from a previous page of this list")
		} else {
			w.cursor = v
		}
	}
	return w
}

// text reads a free-text parameter: trimmed, valid UTF-8 without the
// control characters the domain refuses in text, 1 to max characters; ""
// when absent.
func (w *workParams) text(name string, max int, what string) string {
	raw := w.q.Get(name)
	if raw == "" {
		return ""
	}
	v := strings.TrimSpace(raw)
	if v == "" || !utf8.ValidString(v) || domain.HasRefusedControl(v) || utf8.RuneCountInString(v) > max {
		w.p.fail(name, "must be %s of 1 to %d characters", what, max)
		return ""
	}
	return v
}

// oneOf reads an enum parameter; "" when absent.
func (w *workParams) oneOf(name string, values ...string) string {
	v := w.q.Get(name)
	if v == "" {
		return ""
	}
	for _, ok := range values {
		if v == ok {
			return v
		}
	}
	w.p.fail(name, "must be one of %s", strings.Join(values, ", "))
	return ""
}

// workCustomer is the link from a queue's row to its customer.
type workCustomer struct {
	ID   uuid.UUID `json:"id"`
	Href string    `json:"href"`
}

func linkCustomer(id uuid.UUID) workCustomer {
	return workCustomer{ID: id, Href: "/v1/customers/" + id.String()}
}

func writeWorkPage[T, V any](w http.ResponseWriter, page readmodel.Page[T], view func(T) V) {
	writeJSON(w, http.StatusOK, pageBody(page, view))
}

type workComplaintView struct {
	ComplaintID    uuid.UUID    `json:"complaint_id"`
	Customer       workCustomer `json:"customer"`
	Category       string       `json:"category"`
	Severity       string       `json:"severity"`
	Status         string       `json:"status"`
	Assignee       *string      `json:"assignee"`
	FiledAt        time.Time    `json:"filed_at"`
	OpenedAt       time.Time    `json:"opened_at"`
	AcknowledgedAt *time.Time   `json:"acknowledged_at"`
	NextTarget     string       `json:"next_target"`
	DueAt          time.Time    `json:"due_at"`
	SecondsLeft    int64        `json:"seconds_left"`
	SLA            string       `json:"sla"`
	Breaches       []string     `json:"breaches"`
}

func (s *Server) workComplaints(w http.ResponseWriter, r *http.Request) error {
	if err := s.awaitPosition(r, s.cfg.Work.Reads()...); err != nil {
		return err
	}
	f, limit, cursor, err := WorkComplaintParams(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := s.cfg.Work.Complaints(r.Context(), f, limit, cursor)
	if err != nil {
		return err
	}
	writeWorkPage(w, page, func(c work.OpenComplaint) workComplaintView {
		v := workComplaintView{ComplaintID: c.ID, Customer: linkCustomer(c.CustomerID), Category: c.Category, Severity: c.Severity,
			Status: c.Status, Assignee: c.Assignee, FiledAt: c.FiledAt, OpenedAt: c.OpenedAt, AcknowledgedAt: c.AcknowledgedAt,
			NextTarget: c.NextStep, DueAt: c.DueAt, SecondsLeft: c.SecondsLeft, SLA: SLAOf(c), Breaches: []string{}}
		if c.SLA.FirstResponseBreached {
			v.Breaches = append(v.Breaches, work.StepFirstResponse)
		}
		if c.SLA.ResolutionBreached {
			v.Breaches = append(v.Breaches, work.StepResolution)
		}
		return v
	})
	return nil
}

type workFollowUpView struct {
	FollowUpID  uuid.UUID    `json:"follow_up_id"`
	Customer    workCustomer `json:"customer"`
	DueAt       time.Time    `json:"due_at"`
	By          string       `json:"by"`
	Note        *string      `json:"note"`
	ScheduledAt time.Time    `json:"scheduled_at"`
	State       string       `json:"state"`
}

func (s *Server) workFollowUps(w http.ResponseWriter, r *http.Request) error {
	if err := s.awaitPosition(r, s.cfg.Work.Reads()...); err != nil {
		return err
	}
	f, limit, cursor, err := WorkFollowUpParams(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := s.cfg.Work.FollowUps(r.Context(), f, limit, cursor)
	if err != nil {
		return err
	}
	writeWorkPage(w, page, func(u work.PendingFollowUp) workFollowUpView {
		return workFollowUpView{FollowUpID: u.ID, Customer: linkCustomer(u.CustomerID), DueAt: u.DueAt, By: u.By, Note: u.Note,
			ScheduledAt: u.ScheduledAt, State: u.State}
	})
	return nil
}

type workContactDueView struct {
	Customer      workCustomer `json:"customer"`
	Name          *string      `json:"name"`
	Segment       *string      `json:"segment"`
	Tier          *string      `json:"tier"`
	Region        *string      `json:"region"`
	RegisteredAt  time.Time    `json:"registered_at"`
	LastContactAt *time.Time   `json:"last_contact_at"`
	CadenceDays   int          `json:"cadence_days"`
	DueSince      time.Time    `json:"due_since"`
	DaysOverdue   int          `json:"days_overdue"`
}

func (s *Server) workContactDue(w http.ResponseWriter, r *http.Request) error {
	if err := s.awaitPosition(r, s.cfg.Work.Reads()...); err != nil {
		return err
	}
	f, limit, cursor, err := WorkContactDueParams(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := s.cfg.Work.ContactDue(r.Context(), f, limit, cursor)
	if err != nil {
		return err
	}
	writeWorkPage(w, page, func(d work.ContactDue) workContactDueView {
		return workContactDueView{Customer: linkCustomer(d.Customer.ID), Name: d.Customer.Name, Segment: nonEmpty(&d.Customer.Segment),
			Tier: nonEmpty(&d.Customer.Tier), Region: nonEmpty(&d.Customer.Region), RegisteredAt: d.RegisteredAt,
			LastContactAt: d.LastContactAt, CadenceDays: d.CadenceDays, DueSince: d.DueSince, DaysOverdue: d.DaysOverdue}
	})
	return nil
}

type workAtRiskView struct {
	Customer workCustomer `json:"customer"`
	Name     *string      `json:"name"`
	Segment  *string      `json:"segment"`
	Tier     *string      `json:"tier"`
	Region   *string      `json:"region"`
	Risk     risk.Risk    `json:"risk"`
}

func (s *Server) workAtRisk(w http.ResponseWriter, r *http.Request) error {
	if err := s.awaitPosition(r, s.cfg.Work.Reads()...); err != nil {
		return err
	}
	f, limit, cursor, err := WorkAtRiskParams(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := s.cfg.Work.AtRisk(r.Context(), f, limit, cursor)
	if err != nil {
		return err
	}
	writeWorkPage(w, page, func(a work.AtRisk) workAtRiskView {
		return workAtRiskView{Customer: linkCustomer(a.Customer.ID), Name: a.Customer.Name, Segment: nonEmpty(&a.Customer.Segment),
			Tier: nonEmpty(&a.Customer.Tier), Region: nonEmpty(&a.Customer.Region), Risk: a.Risk}
	})
	return nil
}
