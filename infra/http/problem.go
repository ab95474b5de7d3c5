package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// Problem is an RFC 9457 problem detail, the body of every error answer.
type Problem struct {
	// Type identifies the kind of problem; clients branch on it (or on
	// Reason, its last segment).
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Instance is the request path.
	Instance string `json:"instance,omitempty"`
	// Reason is a stable machine-readable name of the problem.
	Reason string `json:"reason"`
	// Errors names each invalid field or parameter (422).
	Errors []FieldError `json:"errors,omitempty"`
	// ExistingCustomerID names the customer that holds an email (409).
	ExistingCustomerID *uuid.UUID `json:"existing_customer_id,omitempty"`
	// CurrentRevision is the customer's revision when If-Match failed (412).
	CurrentRevision *int64 `json:"current_revision,omitempty"`
	RequestID       string `json:"request_id,omitempty"`

	retryAfter int // seconds; sets Retry-After
	// cause is the underlying error, logged for 5xx answers.
	cause error
}

// FieldError names one invalid field of a body or parameter of a query.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (p *Problem) Error() string { return fmt.Sprintf("http: %d %s: %s", p.Status, p.Reason, p.Detail) }

const problemTypeBase = "tag:rapport-crm.github.io,2026:problem:"

func newProblem(status int, reason, detail string) *Problem {
	return &Problem{Type: problemTypeBase + reason, Title: http.StatusText(status), Status: status, Reason: reason, Detail: detail}
}

// invalidFields is a 422 naming each bad field or parameter.
func invalidFields(fields ...FieldError) *Problem {
	p := newProblem(http.StatusUnprocessableEntity, "invalid_fields", "some fields are invalid; see errors")
	p.Errors = fields
	return p
}

// problemFor maps every error the service can meet to its problem: this is
// the one place where errors become HTTP statuses.
func problemFor(err error) *Problem {
	var (
		p        *Problem
		de       *domain.Error
		mismatch *commands.RevisionMismatchError
		maxBytes *http.MaxBytesError
	)
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &de):
		return domainProblem(de)
	case errors.As(err, &mismatch):
		p := newProblem(http.StatusPreconditionFailed, "revision_mismatch",
			"the "+mismatch.Describe()+" (If-Match, compared strongly: a weak tag W/\"…\" never matches)")
		p.CurrentRevision = &mismatch.Current
		return p
	case errors.Is(err, commands.ErrIdempotencyKeyReused):
		return keyReusedProblem()
	case errors.Is(err, commands.ErrTooManyConflicts):
		p := newProblem(http.StatusConflict, "concurrent_modification", "the customer kept changing while this command ran; retry it")
		return p
	case errors.As(err, &maxBytes):
		return newProblem(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body exceeds %d bytes", maxBytes.Limit))
	case errors.Is(err, commands.ErrErasureIncomplete):
		p := newProblem(http.StatusServiceUnavailable, "erasure_incomplete", "the erasure is recorded but the customer's data key could not be destroyed yet; retry it (with the same Idempotency-Key) until it answers 200")
		p.retryAfter = 2
		p.cause = err
		return p
	case errors.Is(err, eventstore.ErrUnavailable):
		p := newProblem(http.StatusServiceUnavailable, "store_unavailable", "the event store cannot be reached; the command was not confirmed, retry it with the same Idempotency-Key")
		p.retryAfter = 2
		p.cause = err
		return p
	case errors.Is(err, readmodel.ErrNotReady):
		p := newProblem(http.StatusServiceUnavailable, "not_caught_up", "the read models are being created; retry shortly")
		p.retryAfter = 1
		p.cause = err
		return p
	case errors.Is(err, readmodel.ErrBadCursor):
		return invalidFields(FieldError{Field: "cursor", Message: badCursor})
	case errors.Is(err, context.DeadlineExceeded):
		p := newProblem(http.StatusServiceUnavailable, "timeout", "the request took too long; retry it with the same Idempotency-Key")
		p.retryAfter = 1
		p.cause = err
		return p
	case projections.IsConnectionError(err):
		// The read models, keys and reservations live in PostgreSQL; when
		// it cannot be reached the request was fine and only needs a retry.
		p := newProblem(http.StatusServiceUnavailable, "database_unavailable", "the database cannot be reached; retry shortly (a command with the same Idempotency-Key)")
		p.retryAfter = 2
		p.cause = err
		return p
	}
	p = newProblem(http.StatusInternalServerError, "internal", "an unexpected error occurred; it has been logged")
	p.cause = err
	return p
}

func domainProblem(de *domain.Error) *Problem {
	switch de.Code {
	case domain.CodeInvalid:
		fields := make([]FieldError, len(de.Fields))
		for i, f := range de.Fields {
			fields[i] = FieldError{Field: f.Field, Message: f.Message}
		}
		return invalidFields(fields...)
	case domain.CodeNotFound:
		return newProblem(http.StatusNotFound, de.Reason, de.Message)
	case domain.CodeGone:
		return newProblem(http.StatusGone, de.Reason, de.Message)
	}
	p := newProblem(http.StatusConflict, de.Reason, de.Message)
	if de.ExistingCustomerID != uuid.Nil {
		id := de.ExistingCustomerID
		p.ExistingCustomerID = &id
	}
	return p
}

// writeError answers with the error's problem, and logs what the client
// cannot act on.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := *problemFor(err)
	p.Instance = r.URL.Path
	p.RequestID = requestIDFrom(r.Context())
	if p.Status >= 500 {
		s.logger.ErrorContext(r.Context(), "request failed", "status", p.Status, "reason", p.Reason, "err", err)
	}
	if p.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rapport"`)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON answers with a JSON document.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
