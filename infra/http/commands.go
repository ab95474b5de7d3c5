package http

import (
	"context"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
)

// The request bodies of the commands (PRODUCT.md, "Request and response
// bodies"). Times and ids are strings here so that a bad one is a 422
// naming its field; everything else is validated by the domain.

type registerBody struct {
	Name     string   `json:"name"`
	Email    string   `json:"email"`
	Phone    string   `json:"phone"`
	Company  string   `json:"company"`
	Segment  string   `json:"segment"`
	Tier     string   `json:"tier"`
	Region   string   `json:"region"`
	Industry string   `json:"industry"`
	Tags     []string `json:"tags"`
}

type profileBody struct {
	Name    *string   `json:"name"`
	Email   *string   `json:"email"`
	Phone   *string   `json:"phone"`
	Company *string   `json:"company"`
	Tags    *[]string `json:"tags"`
}

type classificationBody struct {
	Segment  *string `json:"segment"`
	Tier     *string `json:"tier"`
	Region   *string `json:"region"`
	Industry *string `json:"industry"`
}

type teamBody struct {
	Member string `json:"member"`
}

type contactBody struct {
	Channel    string  `json:"channel"`
	Direction  string  `json:"direction"`
	Summary    string  `json:"summary"`
	By         string  `json:"by"`
	OccurredAt *string `json:"occurred_at"`
}

type followUpBody struct {
	DueAt *string `json:"due_at"`
	By    string  `json:"by"`
	Note  string  `json:"note"`
}

type complaintBody struct {
	Category    string `json:"category"`
	Severity    string `json:"severity"`
	Description string `json:"description"`
	Channel     string `json:"channel"`
}

type assignmentBody struct {
	Assignee string `json:"assignee"`
}

type acknowledgementBody struct {
	By   string `json:"by"`
	Note string `json:"note"`
}

type escalationBody struct {
	To     string `json:"to"`
	Reason string `json:"reason"`
}

type resolutionBody struct {
	By         string `json:"by"`
	Resolution string `json:"resolution"`
}

type reasonBody struct {
	Reason string `json:"reason"`
}

type surveyBody struct {
	CSAT        *int    `json:"csat"`
	NPS         *int    `json:"nps"`
	Comment     string  `json:"comment"`
	Channel     string  `json:"channel"`
	AnsweredAt  *string `json:"answered_at"`
	ComplaintID *string `json:"complaint_id"`
}

type churnBody struct {
	Reason    string  `json:"reason"`
	ChurnedAt *string `json:"churned_at"`
}

// commandResponse is every command's answer.
type commandResponse struct {
	CustomerID  uuid.UUID  `json:"customer_id"`
	Revision    uint64     `json:"revision"`
	Position    uint64     `json:"position"`
	ComplaintID *uuid.UUID `json:"complaint_id,omitempty"`
	ContactID   *uuid.UUID `json:"contact_id,omitempty"`
	SurveyID    *uuid.UUID `json:"survey_id,omitempty"`
	FollowUpID  *uuid.UUID `json:"follow_up_id,omitempty"`
}

// creation says what a command creates, for its 201 answer.
type creation int

const (
	createsNothing creation = iota
	createsCustomer
	createsComplaint
	createsContact
	createsSurvey
	createsFollowUp
)

// commandBuilder turns a decoded body and the path into a domain command.
type commandBuilder[B any] func(r *http.Request, body B) (domain.Command, error)

// command makes the handler of one command endpoint: decode strictly,
// build the command, handle it, answer with revision, position and ETag.
// With an Idempotency-Key the command runs at most once per key and API
// key, and a retry gets the first answer (see idempotent).
func command[B any](s *Server, creates creation, build commandBuilder[B]) handlerFunc {
	return handleCommand(s, creates != createsCustomer, build, func(w http.ResponseWriter, res commands.Result) {
		writeCommandResult(w, creates, res)
	})
}

// handleCommand is the one path of every customer command over HTTP:
// strict decoding, the customer id from the path (unless the command
// creates the customer), idempotency and If-Match; answer writes the
// command's own success.
func handleCommand[B any](s *Server, onCustomer bool, build commandBuilder[B], answer func(http.ResponseWriter, commands.Result)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var customerID uuid.UUID
		if onCustomer {
			var err error
			if customerID, err = pathID(r, "id", domain.ReasonCustomerNotFound); err != nil {
				return err
			}
		}
		var body B
		if _, err := decodeBody(r, s.cfg.MaxBodyBytes, &body); err != nil {
			return err
		}
		cmd, err := build(r, body)
		if err != nil {
			return err
		}
		fingerprint, err := commandFingerprint(r, body)
		if err != nil {
			return err
		}
		req, err := commandRequest(r, customerID, cmd, fingerprint)
		if err != nil {
			return err
		}
		run := func(ctx context.Context, w http.ResponseWriter) error {
			res, err := s.cfg.Commands.Handle(ctx, req)
			if err != nil {
				return err
			}
			answer(w, res)
			return nil
		}
		key := r.Header.Get("Idempotency-Key")
		if key == "" || s.cfg.Idempotency == nil {
			return run(r.Context(), w)
		}
		return s.idempotent(w, r, req.Actor, key, fingerprint, run)
	}
}

// writeCommandResult answers a handled command: 201 with Location when it
// created something, else 200; the revision as ETag.
func writeCommandResult(w http.ResponseWriter, creates creation, res commands.Result) {
	resp := commandResponse{CustomerID: res.CustomerID, Revision: res.Revision, Position: uint64(res.Position)}
	status := http.StatusOK
	if res.CreatedID != uuid.Nil {
		id := res.CreatedID
		status = http.StatusCreated
		location := "/v1/customers/" + res.CustomerID.String()
		switch creates {
		case createsComplaint:
			resp.ComplaintID = &id
			location += "/complaints/" + id.String()
		case createsContact:
			resp.ContactID = &id
			location += "/contacts/" + id.String()
		case createsSurvey:
			resp.SurveyID = &id
			location += "/surveys/" + id.String()
		case createsFollowUp:
			resp.FollowUpID = &id
			location += "/follow-ups/" + id.String()
		}
		w.Header().Set("Location", location)
	}
	w.Header().Set("ETag", etag(res.Revision))
	writeJSON(w, status, resp)
}

// commandRequest adds to a command what the request says about it: the
// caller, the correlation, idempotency and the If-Match condition.
func commandRequest(r *http.Request, customerID uuid.UUID, cmd domain.Command, fingerprint []byte) (commands.Request, error) {
	principal := principalFrom(r.Context())
	req := commands.Request{
		CustomerID:    customerID,
		Command:       cmd,
		CommandID:     uuid.New(),
		RequestHash:   hex.EncodeToString(fingerprint),
		Actor:         principal.Name,
		CorrelationID: correlationIDFrom(r.Context()),
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if !validHeaderID(key) {
			return req, invalidFields(FieldError{Field: "Idempotency-Key", Message: "must be 1 to 128 printable ASCII characters"})
		}
		req.CommandID = commands.CommandID(principal.Name, key)
	}
	if values := r.Header.Values("If-Match"); len(values) > 0 {
		star, revisions, ok := parseIfMatch(strings.Join(values, ","))
		if !ok {
			return req, invalidFields(FieldError{Field: "If-Match", Message: `must be *, or ETags from previous answers such as "3" or "3", "4"`})
		}
		if !star {
			req.ExpectedRevisions = revisions
		}
	}
	return req, nil
}

// parseIfMatch reads If-Match (RFC 9110 §13.1.1): * (any current
// customer: one that does not exist is 404 as without the condition), or
// a list of entity tags of which any may match. The comparison is strong,
// so a weak tag W/"3" never matches and is dropped, as is a tag that is
// not one of our revisions; the list returned is then non-nil and may be
// empty (nothing matches: 412). A bare 3 is read as "3" for old clients.
func parseIfMatch(header string) (star bool, revisions []uint64, ok bool) {
	if strings.TrimSpace(header) == "*" {
		return true, nil, true
	}
	revisions = []uint64{}
	seen := false
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "" {
			continue // a list may hold empty elements (RFC 9110 §5.6.1)
		}
		seen = true
		weak := strings.HasPrefix(tag, "W/")
		opaque := strings.TrimPrefix(tag, "W/")
		quoted := len(opaque) >= 2 && opaque[0] == '"' && opaque[len(opaque)-1] == '"'
		if quoted {
			opaque = opaque[1 : len(opaque)-1]
		}
		rev, err := strconv.ParseUint(opaque, 10, 64)
		switch {
		case !quoted && (weak || err != nil):
			return false, nil, false
		case quoted && strings.ContainsAny(opaque, "\" \t"):
			return false, nil, false
		case weak || err != nil:
			// Never matches: weak (strong comparison) or not a revision.
		default:
			revisions = append(revisions, rev)
		}
	}
	return false, revisions, seen
}

// etag renders a revision as a strong ETag.
func etag(revision uint64) string { return `"` + strconv.FormatUint(revision, 10) + `"` }

func complaintID(r *http.Request) (uuid.UUID, error) {
	return pathID(r, "cid", domain.ReasonComplaintNotFound)
}

// commandRoutes lists the command endpoints of PRODUCT.md.
func (s *Server) commandRoutes() []Route {
	writer := []Role{RoleWriter}
	const customer = "/v1/customers/{id}"
	const complaint = customer + "/complaints/{cid}"
	return []Route{
		{Name: "registerCustomer", Method: http.MethodPost, Path: "/v1/customers", Roles: writer,
			handler: command(s, createsCustomer, func(_ *http.Request, b registerBody) (domain.Command, error) {
				return domain.RegisterCustomer{Name: b.Name, Email: b.Email, Phone: b.Phone, Company: b.Company, Tags: b.Tags,
					Segment: b.Segment, Tier: b.Tier, Region: b.Region, Industry: b.Industry}, nil
			})},
		{Name: "updateProfile", Method: http.MethodPatch, Path: customer, Roles: writer,
			handler: command(s, createsNothing, func(_ *http.Request, b profileBody) (domain.Command, error) {
				return domain.UpdateProfile{Name: b.Name, Email: b.Email, Phone: b.Phone, Company: b.Company, Tags: b.Tags}, nil
			})},
		{Name: "classifyCustomer", Method: http.MethodPut, Path: customer + "/classification", Roles: writer,
			handler: command(s, createsNothing, func(_ *http.Request, b classificationBody) (domain.Command, error) {
				return domain.ClassifyCustomer{Segment: b.Segment, Tier: b.Tier, Region: b.Region, Industry: b.Industry}, nil
			})},
		{Name: "assignTeamMember", Method: http.MethodPut, Path: customer + "/team/{role}", Roles: writer,
			handler: command(s, createsNothing, func(r *http.Request, b teamBody) (domain.Command, error) {
				return domain.AssignTeamMember{Role: domain.Role(mux.Vars(r)["role"]), Member: b.Member}, nil
			})},
		{Name: "logContact", Method: http.MethodPost, Path: customer + "/contacts", Roles: writer,
			handler: command(s, createsContact, func(_ *http.Request, b contactBody) (domain.Command, error) {
				var p fieldParser
				at := p.time("occurred_at", b.OccurredAt)
				return domain.LogContact{Channel: domain.Channel(b.Channel), Direction: domain.Direction(b.Direction), Summary: b.Summary, By: b.By, OccurredAt: at}, p.err()
			})},
		{Name: "scheduleFollowUp", Method: http.MethodPost, Path: customer + "/follow-ups", Roles: writer,
			handler: command(s, createsFollowUp, func(_ *http.Request, b followUpBody) (domain.Command, error) {
				var p fieldParser
				due := p.requiredTime("due_at", b.DueAt)
				return domain.ScheduleFollowUp{DueAt: due, By: b.By, Note: b.Note}, p.err()
			})},
		{Name: "fileComplaint", Method: http.MethodPost, Path: customer + "/complaints", Roles: writer,
			handler: command(s, createsComplaint, func(_ *http.Request, b complaintBody) (domain.Command, error) {
				return domain.FileComplaint{Category: b.Category, Severity: domain.Severity(b.Severity), Description: b.Description, Channel: domain.Channel(b.Channel)}, nil
			})},
		{Name: "assignComplaint", Method: http.MethodPost, Path: complaint + "/assignment", Roles: writer,
			handler: command(s, createsNothing, func(r *http.Request, b assignmentBody) (domain.Command, error) {
				id, err := complaintID(r)
				return domain.AssignComplaint{ComplaintID: id, Assignee: b.Assignee}, err
			})},
		{Name: "acknowledgeComplaint", Method: http.MethodPost, Path: complaint + "/acknowledgement", Roles: writer,
			handler: command(s, createsNothing, func(r *http.Request, b acknowledgementBody) (domain.Command, error) {
				id, err := complaintID(r)
				return domain.AcknowledgeComplaint{ComplaintID: id, By: b.By, Note: b.Note}, err
			})},
		{Name: "escalateComplaint", Method: http.MethodPost, Path: complaint + "/escalation", Roles: writer,
			handler: command(s, createsNothing, func(r *http.Request, b escalationBody) (domain.Command, error) {
				id, err := complaintID(r)
				return domain.EscalateComplaint{ComplaintID: id, To: b.To, Reason: b.Reason}, err
			})},
		{Name: "resolveComplaint", Method: http.MethodPost, Path: complaint + "/resolution", Roles: writer,
			handler: command(s, createsNothing, func(r *http.Request, b resolutionBody) (domain.Command, error) {
				id, err := complaintID(r)
				return domain.ResolveComplaint{ComplaintID: id, By: b.By, Resolution: b.Resolution}, err
			})},
		{Name: "reopenComplaint", Method: http.MethodPost, Path: complaint + "/reopening", Roles: writer,
			handler: command(s, createsNothing, func(r *http.Request, b reasonBody) (domain.Command, error) {
				id, err := complaintID(r)
				return domain.ReopenComplaint{ComplaintID: id, Reason: b.Reason}, err
			})},
		{Name: "recordSurvey", Method: http.MethodPost, Path: customer + "/surveys", Roles: writer,
			handler: command(s, createsSurvey, func(_ *http.Request, b surveyBody) (domain.Command, error) {
				var p fieldParser
				at := p.time("answered_at", b.AnsweredAt)
				complaint := p.uuid("complaint_id", b.ComplaintID)
				return domain.RecordSurvey{CSAT: b.CSAT, NPS: b.NPS, Comment: b.Comment, Channel: domain.Channel(b.Channel), AnsweredAt: at, ComplaintID: complaint}, p.err()
			})},
		{Name: "markChurned", Method: http.MethodPost, Path: customer + "/churn", Roles: writer,
			handler: command(s, createsNothing, func(_ *http.Request, b churnBody) (domain.Command, error) {
				var p fieldParser
				at := p.time("churned_at", b.ChurnedAt)
				return domain.MarkChurned{Reason: b.Reason, ChurnedAt: at}, p.err()
			})},
		{Name: "reactivateCustomer", Method: http.MethodPost, Path: customer + "/reactivation", Roles: writer,
			handler: command(s, createsNothing, func(_ *http.Request, b reasonBody) (domain.Command, error) {
				return domain.Reactivate{Reason: b.Reason}, nil
			})},
		{Name: "eraseCustomerData", Method: http.MethodPost, Path: customer + "/erasure", Roles: []Role{RoleAdmin},
			handler: command(s, createsNothing, func(_ *http.Request, b reasonBody) (domain.Command, error) {
				return domain.EraseCustomerData{Reason: b.Reason}, nil
			})},
	}
}
