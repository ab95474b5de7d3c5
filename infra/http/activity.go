package http

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// ActivityQueries reads a customer's contacts, follow-ups, complaints and
// surveys (readmodels/contacts, complaints, surveys) and whether the
// customer exists (readmodels/lifecycle). Lists return up to limit items
// after the key of a previous page; single reads return the package's
// ErrNotFound.
type ActivityQueries interface {
	CustomerKnown(ctx context.Context, customerID uuid.UUID) (bool, error)
	Contacts(ctx context.Context, customerID uuid.UUID, after *contacts.Key, limit int) ([]contacts.Contact, error)
	Contact(ctx context.Context, customerID, contactID uuid.UUID) (contacts.Contact, error)
	FollowUps(ctx context.Context, customerID uuid.UUID, after *contacts.Key, limit int) ([]contacts.FollowUp, error)
	FollowUp(ctx context.Context, customerID, followUpID uuid.UUID) (contacts.FollowUp, error)
	Complaints(ctx context.Context, customerID uuid.UUID, after *complaints.Key, limit int) ([]complaints.Complaint, error)
	Complaint(ctx context.Context, customerID, complaintID uuid.UUID) (complaints.Complaint, error)
	Surveys(ctx context.Context, customerID uuid.UUID, after *surveys.Key, limit int) ([]surveys.Survey, error)
	Survey(ctx context.Context, customerID, surveyID uuid.UUID) (surveys.Survey, error)
}

// activityRoutes lists the per-customer contacts, follow-ups, complaints
// and surveys: readable by every role.
func (s *Server) activityRoutes() []Route {
	if s.cfg.Activity == nil {
		return nil
	}
	return []Route{
		{Name: "listContacts", Method: http.MethodGet, Path: "/v1/customers/{id}/contacts", handler: s.listContacts},
		{Name: "getContact", Method: http.MethodGet, Path: "/v1/customers/{id}/contacts/{contact_id}", handler: s.getContact},
		{Name: "listFollowUps", Method: http.MethodGet, Path: "/v1/customers/{id}/follow-ups", handler: s.listFollowUps},
		{Name: "getFollowUp", Method: http.MethodGet, Path: "/v1/customers/{id}/follow-ups/{follow_up_id}", handler: s.getFollowUp},
		{Name: "listComplaints", Method: http.MethodGet, Path: "/v1/customers/{id}/complaints", handler: s.listComplaints},
		{Name: "getComplaint", Method: http.MethodGet, Path: "/v1/customers/{id}/complaints/{cid}", handler: s.getComplaint},
		{Name: "listSurveys", Method: http.MethodGet, Path: "/v1/customers/{id}/surveys", handler: s.listSurveys},
		{Name: "getSurvey", Method: http.MethodGet, Path: "/v1/customers/{id}/surveys/{survey_id}", handler: s.getSurvey},
	}
}

// Page sizes of the activity lists.
const (
	defaultListLimit = 50
	maxListLimit     = 500
)

// The kinds of list a cursor belongs to: a cursor of one list is refused
// by the others.
const (
	cursorContacts   = "c"
	cursorFollowUps  = "f"
	cursorComplaints = "k"
	cursorSurveys    = "s"
)

// pageKey is where a list continues: the sort time and id of the last
// item of the previous page.
type pageKey struct {
	at time.Time
	id uuid.UUID
}

// listParams are a list's query parameters.
type listParams struct {
	limit int
	after *pageKey
}

// encodeCursor makes the opaque cursor of a list of kind after key.
func encodeCursor(kind string, at time.Time, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "." + strconv.FormatInt(at.UnixMicro(), 10) + "." + id.String()))
}

// decodeCursor reads a cursor of a list of kind; ok is false for anything
// encodeCursor did not make for that kind.
func decodeCursor(kind, cursor string) (pageKey, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return pageKey{}, false
	}
	parts := strings.Split(string(raw), ".")
	if len(parts) != 3 || parts[0] != kind {
		return pageKey{}, false
	}
	micros, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return pageKey{}, false
	}
	at := time.UnixMicro(micros).UTC()
	if at.Year() < 1 || at.Year() > 9999 {
		return pageKey{}, false
	}
	id, err := uuid.Parse(parts[2])
	if err != nil || id.String() != parts[2] {
		return pageKey{}, false
	}
	return pageKey{at: at, id: id}, true
}

// parseListParams reads limit (1..500, default 50) and cursor (a
// next_cursor of the same list); each bad one is a 422 naming it.
func parseListParams(q url.Values, kind string) (listParams, error) {
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
		key, ok := decodeCursor(kind, q.Get("cursor"))
		if !ok {
			p.fail("cursor", "is not the next_cursor of a previous page of this list")
		} else {
			out.after = &key
		}
	}
	return out, p.err()
}

// activityRequest is the common part of a list request: the customer and
// the page, once the read models have reached min_position.
func (s *Server) activityRequest(r *http.Request, kind, projector string) (uuid.UUID, listParams, error) {
	id, err := pathID(r, "id", domain.ReasonCustomerNotFound)
	if err != nil {
		return uuid.Nil, listParams{}, err
	}
	params, err := parseListParams(r.URL.Query(), kind)
	if err != nil {
		return uuid.Nil, listParams{}, err
	}
	if err := s.awaitPosition(r, projector, lifecycle.Name); err != nil {
		return uuid.Nil, listParams{}, err
	}
	return id, params, nil
}

// readModelError maps what a read-model query failed with: a view that
// does not exist yet (a projector's first generation is being created,
// right after the service's first start) is 503 with Retry-After, like a
// read model that has not caught up; anything else stays as it is.
func readModelError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		p := newProblem(http.StatusServiceUnavailable, "not_caught_up", "the read models are being created; retry shortly")
		p.retryAfter = 1
		p.cause = err
		return p
	}
	return err
}

// customerNotFound is the 404 of an unknown customer, or nil when the
// customer is known.
func (s *Server) customerNotFound(ctx context.Context, id uuid.UUID) error {
	known, err := s.cfg.Activity.CustomerKnown(ctx, id)
	if err != nil {
		return readModelError(err)
	}
	if !known {
		return newProblem(http.StatusNotFound, domain.ReasonCustomerNotFound, "customer not found")
	}
	return nil
}

// writePage answers a page: items, and the cursor of the next page when
// the query found more than limit.
func writePage[T, V any](s *Server, w http.ResponseWriter, r *http.Request, id uuid.UUID, items []T, limit int, view func(T) V, cursor func(T) string) error {
	if len(items) == 0 {
		if err := s.customerNotFound(r.Context(), id); err != nil {
			return err
		}
	}
	var next *string
	if len(items) > limit {
		items = items[:limit]
		c := cursor(items[limit-1])
		next = &c
	}
	views := make([]V, len(items))
	for i, item := range items {
		views[i] = view(item)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": views, "next_cursor": next})
	return nil
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
	id, p, err := s.activityRequest(r, cursorContacts, contacts.Name)
	if err != nil {
		return err
	}
	var after *contacts.Key
	if p.after != nil {
		after = &contacts.Key{At: p.after.at, ID: p.after.id}
	}
	items, err := s.cfg.Activity.Contacts(r.Context(), id, after, p.limit+1)
	if err != nil {
		return readModelError(err)
	}
	return writePage(s, w, r, id, items, p.limit, viewContact, func(c contacts.Contact) string {
		return encodeCursor(cursorContacts, c.OccurredAt, c.ID)
	})
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
	if err := s.awaitPosition(r, contacts.Name, lifecycle.Name); err != nil {
		return err
	}
	c, err := s.cfg.Activity.Contact(r.Context(), id, contactID)
	if errors.Is(err, contacts.ErrNotFound) {
		return s.itemNotFound(r.Context(), id, reasonContactNotFound, "the customer has no contact with this id")
	}
	if err != nil {
		return readModelError(err)
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
	id, p, err := s.activityRequest(r, cursorFollowUps, contacts.Name)
	if err != nil {
		return err
	}
	var after *contacts.Key
	if p.after != nil {
		after = &contacts.Key{At: p.after.at, ID: p.after.id}
	}
	items, err := s.cfg.Activity.FollowUps(r.Context(), id, after, p.limit+1)
	if err != nil {
		return readModelError(err)
	}
	return writePage(s, w, r, id, items, p.limit, viewFollowUp(time.Now()), func(f contacts.FollowUp) string {
		return encodeCursor(cursorFollowUps, f.DueAt, f.ID)
	})
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
	if err := s.awaitPosition(r, contacts.Name, lifecycle.Name); err != nil {
		return err
	}
	f, err := s.cfg.Activity.FollowUp(r.Context(), id, followUpID)
	if errors.Is(err, contacts.ErrNotFound) {
		return s.itemNotFound(r.Context(), id, reasonFollowUpNotFound, "the customer has no follow-up with this id")
	}
	if err != nil {
		return readModelError(err)
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
	id, p, err := s.activityRequest(r, cursorComplaints, complaints.Name)
	if err != nil {
		return err
	}
	var after *complaints.Key
	if p.after != nil {
		after = &complaints.Key{At: p.after.at, ID: p.after.id}
	}
	items, err := s.cfg.Activity.Complaints(r.Context(), id, after, p.limit+1)
	if err != nil {
		return readModelError(err)
	}
	return writePage(s, w, r, id, items, p.limit, viewComplaint, func(c complaints.Complaint) string {
		return encodeCursor(cursorComplaints, c.FiledAt, c.ID)
	})
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
	if err := s.awaitPosition(r, complaints.Name, lifecycle.Name); err != nil {
		return err
	}
	c, err := s.cfg.Activity.Complaint(r.Context(), id, complaintID)
	if errors.Is(err, complaints.ErrNotFound) {
		return s.itemNotFound(r.Context(), id, domain.ReasonComplaintNotFound, "the customer has no complaint with this id")
	}
	if err != nil {
		return readModelError(err)
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
	id, p, err := s.activityRequest(r, cursorSurveys, surveys.Name)
	if err != nil {
		return err
	}
	var after *surveys.Key
	if p.after != nil {
		after = &surveys.Key{At: p.after.at, ID: p.after.id}
	}
	items, err := s.cfg.Activity.Surveys(r.Context(), id, after, p.limit+1)
	if err != nil {
		return readModelError(err)
	}
	return writePage(s, w, r, id, items, p.limit, viewSurvey, func(v surveys.Survey) string {
		return encodeCursor(cursorSurveys, v.AnsweredAt, v.ID)
	})
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
	if err := s.awaitPosition(r, surveys.Name, lifecycle.Name); err != nil {
		return err
	}
	v, err := s.cfg.Activity.Survey(r.Context(), id, surveyID)
	if errors.Is(err, surveys.ErrNotFound) {
		return s.itemNotFound(r.Context(), id, reasonSurveyNotFound, "the customer has no survey with this id")
	}
	if err != nil {
		return readModelError(err)
	}
	writeJSON(w, http.StatusOK, viewSurvey(v))
	return nil
}
