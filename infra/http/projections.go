package http

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/projections"
)

// Projections reports on and controls the projectors, and lets queries
// wait for them (projections.Engine).
type Projections interface {
	Status(ctx context.Context) ([]projections.Status, error)
	RequestRebuild(ctx context.Context, name string) error
	WaitForPosition(ctx context.Context, position eventstore.Position, names ...string) error
}

// ParkedRetrier is implemented by a Projections that parks streams (the
// engine): POST /v1/projections/{name}/parked/{stream}/retry calls it. It
// is a separate interface so that test doubles of Projections need not.
type ParkedRetrier interface {
	RetryParked(ctx context.Context, name, stream string) error
}

// StaleReporter is implemented by a Projections that parks streams (the
// engine): it names the projectors whose rows for a stream are stale.
type StaleReporter interface {
	StaleFor(ctx context.Context, stream string, names ...string) ([]string, error)
}

// staleFor says whether what the projectors hold of customer id is stale:
// one of them parked the customer's stream, so its rows keep their last
// good state (PRODUCT.md, Operational guarantees: they say stale: true).
func (s *Server) staleFor(r *http.Request, id uuid.UUID, projectors ...string) (bool, error) {
	return s.staleStream(r, domain.StreamName(id), projectors...)
}

// staleStream is staleFor for any stream (a goal's).
func (s *Server) staleStream(r *http.Request, stream string, projectors ...string) (bool, error) {
	sr, ok := s.cfg.Projections.(StaleReporter)
	if !ok {
		return false, nil
	}
	stale, err := sr.StaleFor(r.Context(), stream, projectors...)
	return len(stale) > 0, err
}

func (s *Server) projectionRoutes() []Route {
	if s.cfg.Projections == nil {
		return nil
	}
	admin := []Role{RoleAdmin}
	return []Route{
		{Name: "listProjections", Method: http.MethodGet, Path: "/v1/projections", Roles: admin, handler: s.listProjections},
		{Name: "rebuildProjection", Method: http.MethodPost, Path: "/v1/projections/{name}/rebuild", Roles: admin, handler: s.rebuildProjection},
		{Name: "retryParkedStream", Method: http.MethodPost, Path: "/v1/projections/{name}/parked/{stream}/retry", Roles: admin, handler: s.retryParkedStream},
	}
}

// awaitPosition makes a query read its client's own writes: with
// min_position=N it waits, at most MinPositionWait, until the projectors
// the query reads from have applied the log up to N; otherwise it answers
// 503 with Retry-After.
func (s *Server) awaitPosition(r *http.Request, projectors ...string) error {
	raw := r.URL.Query().Get("min_position")
	if raw == "" {
		return nil
	}
	position, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return invalidFields(FieldError{Field: "min_position", Message: "must be a position returned by a command (a whole number)"})
	}
	if s.cfg.Projections == nil {
		return newProblem(http.StatusServiceUnavailable, "not_caught_up", "no projector runs in this process")
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.MinPositionWait)
	defer cancel()
	err = s.cfg.Projections.WaitForPosition(ctx, eventstore.Position(position), projectors...)
	var late *projections.NotCaughtUpError
	if errors.As(err, &late) {
		p := newProblem(http.StatusServiceUnavailable, "not_caught_up", late.Error())
		p.retryAfter = max(1, int(math.Ceil(late.RetryAfter.Seconds())))
		return p
	}
	return err
}

// projectionView is one projector's status as the API shows it.
type projectionView struct {
	Name          string           `json:"name"`
	Generation    int              `json:"generation"`
	Version       int              `json:"version"`
	State         string           `json:"state"`
	Checkpoint    uint64           `json:"checkpoint"`
	Head          uint64           `json:"head"`
	LagEvents     int64            `json:"lag_events"`
	LagEstimated  bool             `json:"lag_estimated"`
	LagSeconds    float64          `json:"lag_seconds"`
	EventsApplied int64            `json:"events_applied"`
	Owner         string           `json:"owner,omitempty"`
	Rebuild       *rebuildView     `json:"rebuild,omitempty"`
	RebuildError  string           `json:"rebuild_error,omitempty"`
	Error         *projectionError `json:"error,omitempty"`
	// Degraded: some streams are parked; their customers' rows are stale.
	Degraded bool         `json:"degraded"`
	Parked   []parkedView `json:"parked"`
}

// parkedView is a parked stream: a customer whose event the projector
// could not apply; its rows keep their last good state.
type parkedView struct {
	Stream         string    `json:"stream"`
	Generation     int       `json:"generation"`
	Position       uint64    `json:"position"`
	Revision       uint64    `json:"revision"`
	EventID        string    `json:"event_id,omitempty"`
	EventType      string    `json:"event_type"`
	Message        string    `json:"message"`
	ParkedAt       time.Time `json:"parked_at"`
	LastAttemptAt  time.Time `json:"last_attempt_at"`
	Attempts       int       `json:"attempts"`
	Waiting        int64     `json:"waiting"`
	RetryRequested bool      `json:"retry_requested"`
}

type rebuildView struct {
	Generation int    `json:"generation"`
	Version    int    `json:"version"`
	Checkpoint uint64 `json:"checkpoint"`
	Done       int64  `json:"done"`
	Total      int64  `json:"total"`
}

type projectionError struct {
	Position  uint64    `json:"position"`
	Stream    string    `json:"stream"`
	Revision  uint64    `json:"revision"`
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	Message   string    `json:"message"`
	At        time.Time `json:"at"`
}

func viewOf(st projections.Status) projectionView {
	v := projectionView{
		Name: st.Name, Generation: st.Generation, Version: st.Version, State: st.State,
		Checkpoint: uint64(st.Checkpoint), Head: uint64(st.Head), LagEvents: st.LagEvents, LagEstimated: st.LagEstimated,
		LagSeconds: st.LagSeconds, EventsApplied: st.EventsApplied, Owner: st.Owner, RebuildError: st.RebuildError,
	}
	v.Parked = make([]parkedView, len(st.Parked))
	for i, p := range st.Parked {
		v.Parked[i] = parkedView{Stream: p.Stream, Generation: p.Generation, Position: uint64(p.Position), Revision: p.Revision,
			EventType: p.EventType, Message: p.Err, ParkedAt: p.ParkedAt, LastAttemptAt: p.LastAttemptAt, Attempts: p.Attempts,
			Waiting: p.Waiting, RetryRequested: p.RetryRequested}
		if p.EventID != uuid.Nil {
			v.Parked[i].EventID = p.EventID.String()
		}
		if p.Generation == st.Generation {
			v.Degraded = true
		}
	}
	if rb := st.Rebuild; rb != nil {
		v.Rebuild = &rebuildView{Generation: rb.Generation, Version: rb.Version, Checkpoint: uint64(rb.Checkpoint), Done: rb.Done, Total: rb.Total}
	}
	if p := st.Poison; p != nil {
		v.Error = &projectionError{Position: uint64(p.Position), Stream: p.Stream, Revision: p.Revision, EventID: p.EventID.String(), EventType: p.EventType, Message: p.Err, At: p.At}
	}
	return v
}

func (s *Server) listProjections(w http.ResponseWriter, r *http.Request) error {
	statuses, err := s.cfg.Projections.Status(r.Context())
	if err != nil {
		return err
	}
	items := make([]projectionView, len(statuses))
	for i, st := range statuses {
		items[i] = viewOf(st)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
	return nil
}

// projectionStatus is the status of the projector named name, or a 404.
func (s *Server) projectionStatus(r *http.Request, name string) (*projections.Status, error) {
	statuses, err := s.cfg.Projections.Status(r.Context())
	if err != nil {
		return nil, err
	}
	for i := range statuses {
		if statuses[i].Name == name {
			return &statuses[i], nil
		}
	}
	return nil, newProblem(http.StatusNotFound, "projection_not_found", "no projector is named "+strconv.Quote(name))
}

// retryParkedStream retries a parked stream after a fix: 200 with the
// projection's status once its waiting events are applied, 202 when the
// process running the projector will do it, 409 still_parked when applying
// fails again (one more attempt counted), 404 when the stream is not
// parked.
func (s *Server) retryParkedStream(w http.ResponseWriter, r *http.Request) error {
	name, stream := mux.Vars(r)["name"], mux.Vars(r)["stream"]
	if _, err := s.projectionStatus(r, name); err != nil {
		return err
	}
	retrier, ok := s.cfg.Projections.(ParkedRetrier)
	if !ok {
		return newProblem(http.StatusNotFound, "stream_not_parked", "this service does not park streams")
	}
	status := http.StatusOK
	err := retrier.RetryParked(r.Context(), name, stream)
	var still *projections.StillParkedError
	switch {
	case errors.Is(err, projections.ErrNotParked):
		return newProblem(http.StatusNotFound, "stream_not_parked", "projector "+strconv.Quote(name)+" has no parked stream "+strconv.Quote(stream))
	case errors.As(err, &still):
		return newProblem(http.StatusConflict, "still_parked", still.Error())
	case errors.Is(err, projections.ErrStillParked):
		return newProblem(http.StatusConflict, "still_parked", err.Error())
	case errors.Is(err, projections.ErrRetryQueued):
		status = http.StatusAccepted
	case err != nil:
		return err
	}
	st, err := s.projectionStatus(r, name)
	if err != nil {
		return err
	}
	writeJSON(w, status, viewOf(*st))
	return nil
}

func (s *Server) rebuildProjection(w http.ResponseWriter, r *http.Request) error {
	name := mux.Vars(r)["name"]
	status := func() (*projections.Status, error) {
		statuses, err := s.cfg.Projections.Status(r.Context())
		if err != nil {
			return nil, err
		}
		for i := range statuses {
			if statuses[i].Name == name {
				return &statuses[i], nil
			}
		}
		return nil, newProblem(http.StatusNotFound, "projection_not_found", "no projector is named "+strconv.Quote(name))
	}
	if _, err := status(); err != nil {
		return err
	}
	if err := s.cfg.Projections.RequestRebuild(r.Context(), name); err != nil {
		return err
	}
	st, err := status()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, viewOf(*st))
	return nil
}
