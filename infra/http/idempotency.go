package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
)

// IdempotencyStore keeps the first answer to each Idempotency-Key, scoped
// to the API key that sent it, for at least 24 hours: across restarts and
// however many other commands the customer gets (infra/postgres
// implements it). The state cache of the command side only remembers a
// customer's last commands; this is what makes a late retry safe.
type IdempotencyStore interface {
	// Claim takes the key for a request with this fingerprint, or reports
	// who holds it and, once they finished, their answer. A claim whose
	// holder did not answer within lease may be taken over by the same
	// request.
	Claim(ctx context.Context, scope, key string, fingerprint []byte, lease time.Duration) (IdempotencyClaim, error)
	// Complete records the answer of the run that holds claim.
	Complete(ctx context.Context, scope, key string, claim uuid.UUID, answer StoredAnswer) error
	// Release gives the key up without an answer, so that a retry runs the
	// request again.
	Release(ctx context.Context, scope, key string, claim uuid.UUID) error
}

// IdempotencyClaim is what IdempotencyStore.Claim found.
type IdempotencyClaim struct {
	// Claim is set when the caller now holds the key and must Complete or
	// Release it.
	Claim uuid.UUID
	// Fingerprint is that of the request holding the key.
	Fingerprint []byte
	// Answer is the first answer, once that request finished.
	Answer *StoredAnswer
}

// StoredAnswer is a command's answer as it was sent.
type StoredAnswer struct {
	Status int
	Header map[string]string
	Body   []byte
}

// replayedHeaders are the headers of a command's answer that a replay
// repeats; the others (request ids, rate limits) belong to the retry.
var replayedHeaders = []string{"Content-Type", "Cache-Control", "Location", "ETag"}

// commandFingerprint identifies a request as parsed: the route, the path's
// values (UUIDs in canonical form, so an upper-case id is the same
// request) and the body re-encoded from its decoded value (so key order,
// whitespace and escapes do not matter). A retry must match it.
func commandFingerprint(r *http.Request, body any) ([]byte, error) {
	h := sha256.New()
	route := r.Method + " " + r.URL.Path
	if current := mux.CurrentRoute(r); current != nil && current.GetName() != "" {
		route = current.GetName()
	}
	h.Write([]byte(route))
	vars := mux.Vars(r)
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		value := vars[name]
		if id, err := uuid.Parse(value); err == nil {
			value = id.String()
		}
		h.Write([]byte("\x00" + name + "=" + value))
	}
	canonical, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	h.Write([]byte("\x00"))
	h.Write(canonical)
	return h.Sum(nil), nil
}

// answerRecorder captures an answer so that it can be stored before it is
// sent.
type answerRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newAnswerRecorder() *answerRecorder { return &answerRecorder{header: http.Header{}} }

func (a *answerRecorder) Header() http.Header { return a.header }
func (a *answerRecorder) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return a.body.Write(b)
}
func (a *answerRecorder) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}

func (a *answerRecorder) stored() StoredAnswer {
	st := StoredAnswer{Status: a.status, Header: map[string]string{}, Body: a.body.Bytes()}
	for _, name := range replayedHeaders {
		if v := a.header.Get(name); v != "" {
			st.Header[name] = v
		}
	}
	return st
}

func writeStored(w http.ResponseWriter, a StoredAnswer) {
	for name, v := range a.Header {
		w.Header().Set(name, v)
	}
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

// finalAnswer says whether an answer is the command's outcome, to be
// replayed to every retry: a success, or a refusal that the same request
// would get again. A failure a retry may cure (the store unreachable, a
// timeout, too many concurrent writers, an erasure not yet completed) is
// not kept: the retry runs the command again, which is safe because the
// command's event ids derive from the key.
func finalAnswer(err error) bool {
	var (
		de       *domain.Error
		mismatch *commands.RevisionMismatchError
		p        *Problem
	)
	switch {
	case err == nil:
		return true
	case errors.As(err, &de), errors.As(err, &mismatch), errors.Is(err, commands.ErrIdempotencyKeyReused):
		return true
	case errors.As(err, &p):
		return p.Status < 500
	}
	return false
}

func keyReusedProblem() *Problem {
	p := newProblem(http.StatusUnprocessableEntity, "idempotency_key_reused",
		"this Idempotency-Key was already used with a different request (another route, customer or body); use a new key for a new request")
	p.Errors = []FieldError{{Field: "Idempotency-Key", Message: "was already used with a different request"}}
	return p
}

// idempotent runs a command at most once per (API key, Idempotency-Key):
// the first request runs it and its answer is stored; a retry of the same
// request gets that answer; another request with the key is 422; a retry
// while the first still runs waits for its answer, at most
// IdempotencyWait, and then answers 409 idempotency_in_flight.
func (s *Server) idempotent(w http.ResponseWriter, r *http.Request, scope, key string, fingerprint []byte, run func(ctx context.Context, w http.ResponseWriter) error) error {
	ctx := r.Context()
	deadline := time.Now().Add(s.cfg.IdempotencyWait)
	poll := 10 * time.Millisecond
	for {
		c, err := s.cfg.Idempotency.Claim(ctx, scope, key, fingerprint, s.cfg.IdempotencyLease)
		if err != nil {
			p := newProblem(http.StatusServiceUnavailable, "store_unavailable", "the idempotency keys cannot be read; the command was not run, retry it with the same Idempotency-Key")
			p.retryAfter, p.cause = 2, err
			return p
		}
		switch {
		case c.Claim != uuid.Nil:
			return s.runClaimed(w, r, scope, key, c.Claim, run)
		case !bytes.Equal(c.Fingerprint, fingerprint):
			return keyReusedProblem()
		case c.Answer != nil:
			writeStored(w, *c.Answer)
			return nil
		}
		if !time.Now().Before(deadline) {
			p := newProblem(http.StatusConflict, "idempotency_in_flight", "a request with this Idempotency-Key is still running; retry it to get its answer")
			p.retryAfter = 1
			return p
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(poll, time.Until(deadline))):
		}
		poll = min(2*poll, 200*time.Millisecond)
	}
}

// runClaimed runs the command of a claimed key to its end even if the
// client goes away (the command's own timeout bounds it), then stores a
// final answer or releases the key.
func (s *Server) runClaimed(w http.ResponseWriter, r *http.Request, scope, key string, claim uuid.UUID, run func(ctx context.Context, w http.ResponseWriter) error) error {
	ctx := context.WithoutCancel(r.Context())
	rec := newAnswerRecorder()
	err := run(ctx, rec)
	if err != nil {
		s.writeError(rec, r, err)
	}
	if finalAnswer(err) {
		if err := s.cfg.Idempotency.Complete(ctx, scope, key, claim, rec.stored()); err != nil {
			// The command's outcome stands; a retry after the lease runs
			// it again, and the command side recognises it.
			s.logger.WarnContext(ctx, "http: record idempotent answer", "err", err)
		}
	} else if err := s.cfg.Idempotency.Release(ctx, scope, key, claim); err != nil {
		s.logger.WarnContext(ctx, "http: release idempotency key", "err", err)
	}
	for name, values := range rec.header {
		w.Header()[name] = values
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
	return nil
}
