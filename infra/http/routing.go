package http

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/routing"
)

// RoutingCommands sets the complaint routing rules (commands.Routing).
type RoutingCommands interface {
	Set(ctx context.Context, req commands.RoutingRequest) (commands.RoutingResult, error)
}

// RoutingQueries reads the rules' versions (routing.Queries).
type RoutingQueries interface {
	Versions(ctx context.Context) ([]routing.Version, error)
}

// routingRoutes lists /v1/routing/complaints: only admins read and set the
// rules.
func (s *Server) routingRoutes() []Route {
	if s.cfg.Routing == nil || s.cfg.RoutingRules == nil {
		return nil
	}
	admin := []Role{RoleAdmin}
	return []Route{
		{Name: "getComplaintRouting", Method: http.MethodGet, Path: "/v1/routing/complaints", Roles: admin, handler: s.getRouting},
		{Name: "setComplaintRouting", Method: http.MethodPut, Path: "/v1/routing/complaints", Roles: admin, handler: s.setRouting},
	}
}

// routingBody is PUT /v1/routing/complaints's body.
type routingBody struct {
	Rules []domain.RoutingRule `json:"rules"`
}

// routingVersionView is one version of the rules (openapi
// ComplaintRoutingVersion).
type routingVersionView struct {
	Version  int                  `json:"version"`
	Rules    []domain.RoutingRule `json:"rules"`
	SetBy    string               `json:"set_by"`
	SetAt    time.Time            `json:"set_at"`
	Position uint64               `json:"position"`
}

// routingView is the rules in force and every version before them
// (openapi ComplaintRouting): version 0 with no rules before the first.
type routingView struct {
	routingVersionView
	SetBy    *string              `json:"set_by"`
	SetAt    *time.Time           `json:"set_at"`
	Versions []routingVersionView `json:"versions"`
	// Changed (PUT only) says that the PUT made a new version.
	Changed *bool `json:"changed,omitempty"`
}

func (s *Server) routingView(ctx context.Context) (routingView, error) {
	versions, err := s.cfg.RoutingRules.Versions(ctx)
	if err != nil {
		return routingView{}, err
	}
	v := routingView{routingVersionView: routingVersionView{Rules: []domain.RoutingRule{}}, Versions: []routingVersionView{}}
	for _, ver := range versions {
		rv := routingVersionView{Version: ver.Version, Rules: ver.Rules, SetBy: ver.SetBy, SetAt: ver.SetAt.UTC(), Position: uint64(ver.Position)}
		if rv.Rules == nil {
			rv.Rules = []domain.RoutingRule{}
		}
		v.Versions = append(v.Versions, rv)
		v.routingVersionView = rv
		v.SetBy, v.SetAt = &v.Versions[len(v.Versions)-1].SetBy, &v.Versions[len(v.Versions)-1].SetAt
	}
	return v, nil
}

func (s *Server) getRouting(w http.ResponseWriter, r *http.Request) error {
	v, err := s.routingView(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(uint64(v.Version)))
	writeJSON(w, http.StatusOK, v)
	return nil
}

// setRouting records the rules as the next version (If-Match: the version
// it replaces); the same rules again make no version.
func (s *Server) setRouting(w http.ResponseWriter, r *http.Request) error {
	var body routingBody
	if _, err := decodeBody(r, s.cfg.MaxBodyBytes, &body); err != nil {
		return err
	}
	principal := principalFrom(r.Context())
	req := commands.RoutingRequest{
		Command:       domain.SetComplaintRouting{Rules: body.Rules},
		CommandID:     uuid.New(),
		Actor:         principal.Name,
		CorrelationID: correlationIDFrom(r.Context()),
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if !validHeaderID(key) {
			return invalidFields(FieldError{Field: "Idempotency-Key", Message: "must be 1 to 128 printable ASCII characters"})
		}
		req.CommandID = commands.CommandID(principal.Name, key)
	}
	if values := r.Header.Values("If-Match"); len(values) > 0 {
		star, versions, ok := parseIfMatch(strings.Join(values, ","))
		if !ok || (!star && len(versions) > 1) {
			return invalidFields(FieldError{Field: "If-Match", Message: `must be * or the ETag of the version replaced, such as "3"`})
		}
		if !star {
			if len(versions) == 0 {
				return newProblem(http.StatusPreconditionFailed, "revision_mismatch", "the condition names no version that can match (a weak tag W/\"…\" never matches)")
			}
			expected := int(min(versions[0], 1<<31))
			req.ExpectedVersion = &expected
		}
	}
	res, err := s.cfg.Routing.Set(r.Context(), req)
	if err != nil {
		return err
	}
	v, err := s.routingView(r.Context())
	if err != nil {
		return err
	}
	v.Changed = &res.Appended
	w.Header().Set("ETag", etag(uint64(res.Version)))
	writeJSON(w, http.StatusOK, v)
	return nil
}
