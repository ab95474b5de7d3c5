package http

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// ContactQueries reads a customer's contacts and follow-ups
// (contacts.Queries). Lists return a page after a cursor of their own kind
// (contacts.ContactsCursor, contacts.FollowUpsCursor); single reads return
// contacts.ErrNotFound.
type ContactQueries interface {
	Contacts(ctx context.Context, customerID uuid.UUID, cursor string, limit int) (readmodel.Page[contacts.Contact], error)
	Contact(ctx context.Context, customerID, contactID uuid.UUID) (contacts.Contact, error)
	FollowUps(ctx context.Context, customerID uuid.UUID, cursor string, limit int) (readmodel.Page[contacts.FollowUp], error)
	FollowUp(ctx context.Context, customerID, followUpID uuid.UUID) (contacts.FollowUp, error)
	// Reads names the projectors the queries read (min_position).
	Reads() []string
}

// ComplaintQueries reads a customer's complaints (complaints.Queries),
// the list after a complaints.Cursor.
type ComplaintQueries interface {
	Complaints(ctx context.Context, customerID uuid.UUID, cursor string, limit int) (readmodel.Page[complaints.Complaint], error)
	Complaint(ctx context.Context, customerID, complaintID uuid.UUID) (complaints.Complaint, error)
	Reads() []string
}

// SurveyQueries reads a customer's surveys (surveys.Queries), the list
// after a surveys.Cursor.
type SurveyQueries interface {
	Surveys(ctx context.Context, customerID uuid.UUID, cursor string, limit int) (readmodel.Page[surveys.Survey], error)
	Survey(ctx context.Context, customerID, surveyID uuid.UUID) (surveys.Survey, error)
	Reads() []string
}

// LifecycleQueries says whether a customer is registered
// (lifecycle.Queries): an empty list or a missing item of an unknown
// customer is a 404 customer_not_found.
type LifecycleQueries interface {
	Known(ctx context.Context, customerID uuid.UUID) (bool, error)
	Reads() []string
}

// activityRoutes lists the per-customer contacts, follow-ups, complaints
// and surveys of the read models configured: readable by every role.
func (s *Server) activityRoutes() []Route {
	var routes []Route
	if s.cfg.Contacts != nil {
		routes = append(routes,
			Route{Name: "listContacts", Method: http.MethodGet, Path: "/v1/customers/{id}/contacts", handler: s.listContacts},
			Route{Name: "getContact", Method: http.MethodGet, Path: "/v1/customers/{id}/contacts/{contact_id}", handler: s.getContact},
			Route{Name: "listFollowUps", Method: http.MethodGet, Path: "/v1/customers/{id}/follow-ups", handler: s.listFollowUps},
			Route{Name: "getFollowUp", Method: http.MethodGet, Path: "/v1/customers/{id}/follow-ups/{follow_up_id}", handler: s.getFollowUp})
	}
	if s.cfg.Complaints != nil {
		routes = append(routes,
			Route{Name: "listComplaints", Method: http.MethodGet, Path: "/v1/customers/{id}/complaints", handler: s.listComplaints},
			Route{Name: "getComplaint", Method: http.MethodGet, Path: "/v1/customers/{id}/complaints/{cid}", handler: s.getComplaint})
	}
	if s.cfg.Surveys != nil {
		routes = append(routes,
			Route{Name: "listSurveys", Method: http.MethodGet, Path: "/v1/customers/{id}/surveys", handler: s.listSurveys},
			Route{Name: "getSurvey", Method: http.MethodGet, Path: "/v1/customers/{id}/surveys/{survey_id}", handler: s.getSurvey})
	}
	return routes
}

// Page sizes of the activity lists.
const (
	defaultListLimit = 50
	maxListLimit     = 500
)

// listParams are a list's query parameters.
type listParams struct {
	limit int
	// cursor is "" or a cursor of the list's kind.
	cursor string
}

// parseListParams reads limit (1..500, default 50) and cursor (a
// next_cursor of the same list, of kind); each bad one is a 422 naming it.
func parseListParams(q url.Values, kind readmodel.CursorKind) (listParams, error) {
	var p fieldParser
	out := listParams{limit: defaultListLimit}
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > maxListLimit {
			p.fail("limit", "must be a whole number from 1 to %d", maxListLimit)
		} else {
			out.limit = n
		}
	}
	if q.Has("cursor") {
		if c := q.Get("cursor"); !kind.Valid(c) {
			p.fail("cursor", badCursor)
		} else {
			out.cursor = c
		}
	}
	return out, p.err()
}

// badCursor is the message of a 422 naming a cursor.
const badCursor = "is not the next_cursor of a previous page of this list"

// activityRequest is the common part of a list request: the customer and
// the page, once the read models it reads (and the life cycles, for the
// 404) have reached min_position.
func (s *Server) activityRequest(r *http.Request, kind readmodel.CursorKind, reads []string) (uuid.UUID, listParams, error) {
	id, err := pathID(r, "id", domain.ReasonCustomerNotFound)
	if err != nil {
		return uuid.Nil, listParams{}, err
	}
	params, err := parseListParams(r.URL.Query(), kind)
	if err != nil {
		return uuid.Nil, listParams{}, err
	}
	if err := s.awaitPosition(r, s.withLifecycles(reads)...); err != nil {
		return uuid.Nil, listParams{}, err
	}
	return id, params, nil
}

// withLifecycles adds the life cycles to what an activity query reads:
// its 404 comes from them.
func (s *Server) withLifecycles(reads []string) []string {
	return append(slices.Clone(reads), s.cfg.Lifecycles.Reads()...)
}

// customerNotFound is the 404 of an unknown customer, or nil when the
// customer is known.
func (s *Server) customerNotFound(ctx context.Context, id uuid.UUID) error {
	known, err := s.cfg.Lifecycles.Known(ctx, id)
	if err != nil {
		return err
	}
	if !known {
		return newProblem(http.StatusNotFound, domain.ReasonCustomerNotFound, "customer not found")
	}
	return nil
}

// writePage answers a page: items, the cursor of the next page, and
// stale: true while one of the projectors in reads has the customer's
// stream parked (the page shows its last good state). An empty page of
// an unknown customer is a 404.
func writePage[T, V any](s *Server, w http.ResponseWriter, r *http.Request, id uuid.UUID, reads []string, page readmodel.Page[T], view func(T) V) error {
	if len(page.Items) == 0 {
		if err := s.customerNotFound(r.Context(), id); err != nil {
			return err
		}
	}
	body := pageBody(page, view)
	stale, err := s.staleFor(r, id, reads...)
	if err != nil {
		return err
	}
	if stale {
		body["stale"] = true
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// pageBody is the JSON of a page: its items as views, and the cursor of
// the next page (null on the last).
func pageBody[T, V any](page readmodel.Page[T], view func(T) V) map[string]any {
	var next *string
	if page.NextCursor != "" {
		next = &page.NextCursor
	}
	views := make([]V, len(page.Items))
	for i, item := range page.Items {
		views[i] = view(item)
	}
	return map[string]any{"items": views, "next_cursor": next}
}

// itemNotFound answers the 404 of a missing item: customer_not_found when
// the customer is unknown, else the item's own reason.
func (s *Server) itemNotFound(ctx context.Context, id uuid.UUID, reason, detail string) error {
	if err := s.customerNotFound(ctx, id); err != nil {
		return err
	}
	return newProblem(http.StatusNotFound, reason, detail)
}

// Reasons of the 404s of items.
const (
	reasonContactNotFound  = "contact_not_found"
	reasonFollowUpNotFound = "follow_up_not_found"
	reasonSurveyNotFound   = "survey_not_found"
)

type contactView struct {
	ID         uuid.UUID `json:"id"`
	CustomerID uuid.UUID `json:"customer_id"`
	Channel    string    `json:"channel"`
	Direction  string    `json:"direction"`
	Summary    *string   `json:"summary"`
	By         string    `json:"by"`
	OccurredAt time.Time `json:"occurred_at"`
	LoggedAt   time.Time `json:"logged_at"`
}

func viewContact(c contacts.Contact) contactView {
	return contactView{ID: c.ID, CustomerID: c.CustomerID, Channel: c.Channel, Direction: c.Direction, Summary: c.Summary,
		By: c.By, OccurredAt: c.OccurredAt, LoggedAt: c.LoggedAt}
}

func (s *Server) listContacts(w http.ResponseWriter, r *http.Request) error {
	id, p, err := s.activityRequest(r, contacts.ContactsCursor, s.cfg.Contacts.Reads())
	if err != nil {
		return err
	}
	page, err := s.cfg.Contacts.Contacts(r.Context(), id, p.cursor, p.limit)
	if err != nil {
		return err
	}
	return writePage(s, w, r, id, s.cfg.Contacts.Reads(), page, viewContact)
}

func (s *Server) getContact(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", domain.ReasonCustomerNotFound)
	if err != nil {
		return err
	}
	contactID, err := pathID(r, "contact_id", reasonContactNotFound)
	if err != nil {
		return err
	}
	if err := s.awaitPosition(r, s.withLifecycles(s.cfg.Contacts.Reads())...); err != nil {
		return err
	}
	c, err := s.cfg.Contacts.Contact(r.Context(), id, contactID)
	if errors.Is(err, contacts.ErrNotFound) {
		return s.itemNotFound(r.Context(), id, reasonContactNotFound, "the customer has no contact with this id")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewContact(c))
	return nil
}

type followUpView struct {
	ID          uuid.UUID  `json:"id"`
	CustomerID  uuid.UUID  `json:"customer_id"`
	DueAt       time.Time  `json:"due_at"`
	By          string     `json:"by"`
	Note        *string    `json:"note"`
	ScheduledAt time.Time  `json:"scheduled_at"`
	Done        bool       `json:"done"`
	DoneAt      *time.Time `json:"done_at"`
	DoneBy      *uuid.UUID `json:"done_by_contact_id"`
	Overdue     bool       `json:"overdue"`
}

func viewFollowUp(now time.Time) func(contacts.FollowUp) followUpView {
	return func(f contacts.FollowUp) followUpView {
		return followUpView{ID: f.ID, CustomerID: f.CustomerID, DueAt: f.DueAt, By: f.By, Note: f.Note, ScheduledAt: f.ScheduledAt,
			Done: f.DoneAt != nil, DoneAt: f.DoneAt, DoneBy: f.DoneByContactID, Overdue: f.Overdue(now)}
	}
}

func (s *Server) listFollowUps(w http.ResponseWriter, r *http.Request) error {
	id, p, err := s.activityRequest(r, contacts.FollowUpsCursor, s.cfg.Contacts.Reads())
	if err != nil {
		return err
	}
	page, err := s.cfg.Contacts.FollowUps(r.Context(), id, p.cursor, p.limit)
	if err != nil {
		return err
	}
	return writePage(s, w, r, id, s.cfg.Contacts.Reads(), page, viewFollowUp(time.Now()))
}

func (s *Server) getFollowUp(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", domain.ReasonCustomerNotFound)
	if err != nil {
		return err
	}
	followUpID, err := pathID(r, "follow_up_id", reasonFollowUpNotFound)
	if err != nil {
		return err
	}
	if err := s.awaitPosition(r, s.withLifecycles(s.cfg.Contacts.Reads())...); err != nil {
		return err
	}
	f, err := s.cfg.Contacts.FollowUp(r.Context(), id, followUpID)
	if errors.Is(err, contacts.ErrNotFound) {
		return s.itemNotFound(r.Context(), id, reasonFollowUpNotFound, "the customer has no follow-up with this id")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewFollowUp(time.Now())(f))
	return nil
}

type timelineView struct {
	Kind   string    `json:"kind"`
	At     time.Time `json:"at"`
	By     *string   `json:"by"`
	Target *string   `json:"target"`
	Note   *string   `json:"note"`
	Actor  string    `json:"actor"`
}

type complaintView struct {
	ID                    uuid.UUID      `json:"id"`
	CustomerID            uuid.UUID      `json:"customer_id"`
	Category              string         `json:"category"`
	Severity              string         `json:"severity"`
	Description           *string        `json:"description"`
	Channel               *string        `json:"channel"`
	Status                string         `json:"status"`
	Assignee              *string        `json:"assignee"`
	FiledAt               time.Time      `json:"filed_at"`
	OpenedAt              time.Time      `json:"opened_at"`
	AcknowledgedAt        *time.Time     `json:"acknowledged_at"`
	ResolvedAt            *time.Time     `json:"resolved_at"`
	Resolution            *string        `json:"resolution"`
	Openings              int            `json:"openings"`
	Escalations           int            `json:"escalations"`
	EscalatedTo           *string        `json:"escalated_to"`
	FirstResponseDueAt    time.Time      `json:"first_response_due_at"`
	ResolutionDueAt       time.Time      `json:"resolution_due_at"`
	FirstResponseBreached bool           `json:"first_response_breached"`
	ResolutionBreached    bool           `json:"resolution_breached"`
	SLABreached           bool           `json:"sla_breached"`
	Timeline              []timelineView `json:"timeline"`
}

func viewComplaint(c complaints.Complaint) complaintView {
	v := complaintView{ID: c.ID, CustomerID: c.CustomerID, Category: c.Category, Severity: c.Severity, Description: c.Description,
		Channel: c.Channel, Status: c.Status, Assignee: c.Assignee, FiledAt: c.FiledAt, OpenedAt: c.OpenedAt,
		AcknowledgedAt: c.AcknowledgedAt, ResolvedAt: c.ResolvedAt, Resolution: c.Resolution, Openings: c.Openings,
		Escalations: c.Escalations, EscalatedTo: c.EscalatedTo,
		FirstResponseDueAt: c.SLA.FirstResponseDueAt, ResolutionDueAt: c.SLA.ResolutionDueAt,
		FirstResponseBreached: c.SLA.FirstResponseBreached, ResolutionBreached: c.SLA.ResolutionBreached, SLABreached: c.SLA.Breached(),
		Timeline: make([]timelineView, len(c.Timeline))}
	if c.Open() {
		v.Resolution = nil
	}
	for i, e := range c.Timeline {
		v.Timeline[i] = timelineView{Kind: e.Kind, At: e.At, By: e.By, Target: e.Target, Note: e.Note, Actor: e.Actor}
	}
	return v
}

func (s *Server) listComplaints(w http.ResponseWriter, r *http.Request) error {
	id, p, err := s.activityRequest(r, complaints.Cursor, s.cfg.Complaints.Reads())
	if err != nil {
		return err
	}
	page, err := s.cfg.Complaints.Complaints(r.Context(), id, p.cursor, p.limit)
	if err != nil {
		return err
	}
	return writePage(s, w, r, id, s.cfg.Complaints.Reads(), page, viewComplaint)
}

func (s *Server) getComplaint(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", domain.ReasonCustomerNotFound)
	if err != nil {
		return err
	}
	complaintID, err := pathID(r, "cid", domain.ReasonComplaintNotFound)
	if err != nil {
		return err
	}
	if err := s.awaitPosition(r, s.withLifecycles(s.cfg.Complaints.Reads())...); err != nil {
		return err
	}
	c, err := s.cfg.Complaints.Complaint(r.Context(), id, complaintID)
	if errors.Is(err, complaints.ErrNotFound) {
		return s.itemNotFound(r.Context(), id, domain.ReasonComplaintNotFound, "the customer has no complaint with this id")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewComplaint(c))
	return nil
}

type surveyView struct {
	ID          uuid.UUID  `json:"id"`
	CustomerID  uuid.UUID  `json:"customer_id"`
	CSAT        *int       `json:"csat"`
	NPS         *int       `json:"nps"`
	Comment     *string    `json:"comment"`
	Channel     *string    `json:"channel"`
	AnsweredAt  time.Time  `json:"answered_at"`
	ComplaintID *uuid.UUID `json:"complaint_id"`
}

func viewSurvey(v surveys.Survey) surveyView {
	return surveyView{ID: v.ID, CustomerID: v.CustomerID, CSAT: v.CSAT, NPS: v.NPS, Comment: v.Comment, Channel: v.Channel,
		AnsweredAt: v.AnsweredAt, ComplaintID: v.ComplaintID}
}

func (s *Server) listSurveys(w http.ResponseWriter, r *http.Request) error {
	id, p, err := s.activityRequest(r, surveys.Cursor, s.cfg.Surveys.Reads())
	if err != nil {
		return err
	}
	page, err := s.cfg.Surveys.Surveys(r.Context(), id, p.cursor, p.limit)
	if err != nil {
		return err
	}
	return writePage(s, w, r, id, s.cfg.Surveys.Reads(), page, viewSurvey)
}

func (s *Server) getSurvey(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", domain.ReasonCustomerNotFound)
	if err != nil {
		return err
	}
	surveyID, err := pathID(r, "survey_id", reasonSurveyNotFound)
	if err != nil {
		return err
	}
	if err := s.awaitPosition(r, s.withLifecycles(s.cfg.Surveys.Reads())...); err != nil {
		return err
	}
	v, err := s.cfg.Surveys.Survey(r.Context(), id, surveyID)
	if errors.Is(err, surveys.ErrNotFound) {
		return s.itemNotFound(r.Context(), id, reasonSurveyNotFound, "the customer has no survey with this id")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewSurvey(v))
	return nil
}
