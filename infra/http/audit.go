package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/audit"
)

// Auditor reads a customer's authoritative history (readmodels/audit).
type Auditor interface {
	Events(ctx context.Context, customerID uuid.UUID, from uint64, visit func(audit.Event) (bool, error)) error
	StateAsOf(ctx context.Context, customerID uuid.UUID, asOf time.Time) (audit.State, error)
	Verify(ctx context.Context, customerID uuid.UUID) (audit.Verification, error)
	ParseAnchorEntry(entry string) (audit.StreamHead, error)
	VerifyAnchored(ctx context.Context, customerID uuid.UUID, head audit.StreamHead) (audit.Verification, error)
}

// auditRoutes lists the auditors' endpoints over the event log.
func (s *Server) auditRoutes() []Route {
	if s.cfg.Auditor == nil {
		return nil
	}
	auditor := []Role{RoleAuditor}
	return []Route{
		{Name: "getEvents", Method: http.MethodGet, Path: "/v1/customers/{id}/events", Roles: auditor, handler: s.events},
		{Name: "getStateAsOf", Method: http.MethodGet, Path: "/v1/customers/{id}/state", Roles: auditor, handler: s.stateAsOf},
		{Name: "verifyHistory", Method: http.MethodGet, Path: "/v1/customers/{id}/verification", Roles: auditor, handler: s.verification},
	}
}

func auditError(err error) error {
	if errors.Is(err, audit.ErrCustomerNotFound) {
		return newProblem(http.StatusNotFound, domain.ReasonCustomerNotFound, "the customer has no events")
	}
	return err
}

// wantsNDJSON reports whether the client asked for newline-delimited JSON.
func wantsNDJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/x-ndjson")
}

// events answers the customer's stored events in stream order: a page of
// JSON (from_revision, limit), or with Accept: application/x-ndjson the
// whole history as a stream, one event per line, in constant memory.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", domain.ReasonCustomerNotFound)
	if err != nil {
		return err
	}
	var p fieldParser
	q := r.URL.Query()
	from := uint64(p.int("from_revision", q.Get("from_revision"), 0, 1<<62, 0))
	limit := p.int("limit", q.Get("limit"), 1, 10_000, 1000)
	if err := p.err(); err != nil {
		return err
	}
	if wantsNDJSON(r) {
		return s.streamEvents(w, r, id, from)
	}
	items := make([]audit.Event, 0, min(limit, 100))
	var next *uint64
	err = s.cfg.Auditor.Events(r.Context(), id, from, func(e audit.Event) (bool, error) {
		if len(items) == limit {
			rev := e.Revision
			next = &rev
			return false, nil
		}
		items = append(items, e)
		return true, nil
	})
	if err != nil {
		return auditError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"customer_id": id, "items": items, "next_revision": next})
	return nil
}

func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request, id uuid.UUID, from uint64) error {
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	started := false
	n := 0
	err := s.cfg.Auditor.Events(r.Context(), id, from, func(e audit.Event) (bool, error) {
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if err := enc.Encode(e); err != nil {
			return false, err
		}
		if n++; n%500 == 0 {
			// A long history may outlast the server's write timeout: keep
			// extending it while events flow.
			_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			_ = rc.Flush()
		}
		return true, nil
	})
	if !started {
		return auditError(err)
	}
	if err != nil {
		// The status is sent; end the stream so the client sees it cut.
		s.logger.ErrorContext(r.Context(), "http: event stream failed", "customer_id", id, "after", n, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// stateAsOf answers the customer as it was at as_of (default now), folded
// from the events recorded by then.
func (s *Server) stateAsOf(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", domain.ReasonCustomerNotFound)
	if err != nil {
		return err
	}
	asOf := time.Now()
	if v := r.URL.Query().Get("as_of"); v != "" {
		var p fieldParser
		if t := p.time("as_of", &v); t != nil {
			asOf = *t
		}
		if err := p.err(); err != nil {
			return err
		}
	}
	st, err := s.cfg.Auditor.StateAsOf(r.Context(), id, asOf)
	if err != nil {
		return auditError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"as_of":       asOf.UTC(),
		"revision":    st.Revision,
		"events":      st.Events,
		"recorded_at": st.RecordedAt,
		"customer":    st.CustomerView(),
	})
	return nil
}

func (s *Server) verification(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", domain.ReasonCustomerNotFound)
	if err != nil {
		return err
	}
	var v audit.Verification
	if entry := r.URL.Query().Get("anchor"); entry != "" {
		// anchor is the customer's signed entry of an anchor file
		// (`rapport audit anchor`): the head the stream had then.
		head, err := s.cfg.Auditor.ParseAnchorEntry(entry)
		if err == nil && head.CustomerID != id {
			err = fmt.Errorf("%w: the entry is for customer %s", audit.ErrInvalidAnchor, head.CustomerID)
		}
		if errors.Is(err, audit.ErrInvalidAnchor) {
			return invalidFields(FieldError{Field: "anchor", Message: "must be this customer's entry of an anchor this service signed: " + err.Error()})
		}
		if err != nil {
			return err
		}
		v, err = s.cfg.Auditor.VerifyAnchored(r.Context(), id, head)
		if err != nil {
			return auditError(err)
		}
	} else if v, err = s.cfg.Auditor.Verify(r.Context(), id); err != nil {
		return auditError(err)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
