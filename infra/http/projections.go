package http

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

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

func (s *Server) projectionRoutes() []Route {
	if s.cfg.Projections == nil {
		return nil
	}
	admin := []Role{RoleAdmin}
	return []Route{
		{Name: "listProjections", Method: http.MethodGet, Path: "/v1/projections", Roles: admin, handler: s.listProjections},
		{Name: "rebuildProjection", Method: http.MethodPost, Path: "/v1/projections/{name}/rebuild", Roles: admin, handler: s.rebuildProjection},
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
