package http

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/webhooks"
)

// WebhookAdmin manages webhook subscriptions (infra/webhooks).
type WebhookAdmin interface {
	Create(ctx context.Context, n webhooks.NewSubscription) (webhooks.Created, error)
	List(ctx context.Context) ([]webhooks.Subscription, error)
	Get(ctx context.Context, id uuid.UUID) (webhooks.Subscription, error)
	Delete(ctx context.Context, id uuid.UUID) error
	RotateSecret(ctx context.Context, id uuid.UUID) (webhooks.Created, error)
	Enable(ctx context.Context, id uuid.UUID) (webhooks.Subscription, error)
	Disable(ctx context.Context, id uuid.UUID) (webhooks.Subscription, error)
	Replay(ctx context.Context, id uuid.UUID, from uint64) (int64, error)
	Deliveries(ctx context.Context, id uuid.UUID, f webhooks.DeliveryFilter) ([]webhooks.Delivery, error)
}

const reasonWebhookNotFound = "webhook_not_found"

func (s *Server) webhookRoutes() []Route {
	if s.cfg.Webhooks == nil {
		return nil
	}
	admin := []Role{RoleAdmin}
	return []Route{
		{Name: "createWebhook", Method: http.MethodPost, Path: "/v1/webhooks", Roles: admin, handler: s.createWebhook},
		{Name: "listWebhooks", Method: http.MethodGet, Path: "/v1/webhooks", Roles: admin, handler: s.listWebhooks},
		{Name: "getWebhook", Method: http.MethodGet, Path: "/v1/webhooks/{id}", Roles: admin, handler: s.webhookAction(s.cfg.Webhooks.Get)},
		{Name: "deleteWebhook", Method: http.MethodDelete, Path: "/v1/webhooks/{id}", Roles: admin, handler: s.deleteWebhook},
		{Name: "rotateWebhookSecret", Method: http.MethodPost, Path: "/v1/webhooks/{id}/secret", Roles: admin, handler: s.rotateWebhookSecret},
		{Name: "enableWebhook", Method: http.MethodPost, Path: "/v1/webhooks/{id}/enable", Roles: admin, handler: s.webhookAction(s.cfg.Webhooks.Enable)},
		{Name: "disableWebhook", Method: http.MethodPost, Path: "/v1/webhooks/{id}/disable", Roles: admin, handler: s.webhookAction(s.cfg.Webhooks.Disable)},
		{Name: "listWebhookDeliveries", Method: http.MethodGet, Path: "/v1/webhooks/{id}/deliveries", Roles: admin, handler: s.webhookDeliveries},
		{Name: "replayWebhook", Method: http.MethodPost, Path: "/v1/webhooks/{id}/replay", Roles: admin, handler: s.replayWebhook},
	}
}

// webhookError turns the store's errors into problems.
func webhookError(err error) error {
	var invalid *webhooks.InvalidError
	switch {
	case errors.Is(err, webhooks.ErrNotFound):
		return newProblem(http.StatusNotFound, reasonWebhookNotFound, "no such webhook subscription")
	case errors.As(err, &invalid):
		return invalidFields(FieldError{Field: invalid.Field, Message: invalid.Message})
	}
	return err
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		URL         *string  `json:"url"`
		EventTypes  []string `json:"event_types"`
		Description string   `json:"description"`
	}
	if _, err := decodeBody(r, s.cfg.MaxBodyBytes, &body); err != nil {
		return err
	}
	var p fieldParser
	if body.URL == nil || *body.URL == "" {
		p.fail("url", "is required")
	}
	if domain.HasRefusedControl(body.Description) {
		p.fail("description", "must not contain control characters")
	}
	if err := p.err(); err != nil {
		return err
	}
	created, err := s.cfg.Webhooks.Create(r.Context(), webhooks.NewSubscription{URL: *body.URL, EventTypes: body.EventTypes, Description: body.Description})
	if err != nil {
		return webhookError(err)
	}
	w.Header().Set("Location", "/v1/webhooks/"+created.ID.String())
	writeJSON(w, http.StatusCreated, created)
	return nil
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	subs, err := s.cfg.Webhooks.List(r.Context())
	if err != nil {
		return err
	}
	if subs == nil {
		subs = []webhooks.Subscription{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": subs})
	return nil
}

// webhookAction answers a subscription after an action on it by id.
func (s *Server) webhookAction(act func(context.Context, uuid.UUID) (webhooks.Subscription, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, "id", reasonWebhookNotFound)
		if err != nil {
			return err
		}
		sub, err := act(r.Context(), id)
		if err != nil {
			return webhookError(err)
		}
		writeJSON(w, http.StatusOK, sub)
		return nil
	}
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", reasonWebhookNotFound)
	if err != nil {
		return err
	}
	if err := s.cfg.Webhooks.Delete(r.Context(), id); err != nil {
		return webhookError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", reasonWebhookNotFound)
	if err != nil {
		return err
	}
	created, err := s.cfg.Webhooks.RotateSecret(r.Context(), id)
	if err != nil {
		return webhookError(err)
	}
	writeJSON(w, http.StatusOK, created)
	return nil
}

func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", reasonWebhookNotFound)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var p fieldParser
	f := webhooks.DeliveryFilter{State: q.Get("state")}
	if f.State != "" && f.State != "pending" && f.State != "delivered" {
		p.fail("state", "must be pending or delivered")
	}
	if raw := q.Get("before"); raw != "" {
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || v < 1 {
			p.fail("before", "must be a delivery id")
		}
		f.Before = v
	}
	f.Limit = p.int("limit", q.Get("limit"), 1, 500, 100)
	if err := p.err(); err != nil {
		return err
	}
	items, err := s.cfg.Webhooks.Deliveries(r.Context(), id, f)
	if err != nil {
		return webhookError(err)
	}
	if items == nil {
		items = []webhooks.Delivery{}
	}
	var next *int64
	if len(items) == f.Limit {
		n := items[len(items)-1].ID
		next = &n
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_before": next})
	return nil
}

func (s *Server) replayWebhook(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", reasonWebhookNotFound)
	if err != nil {
		return err
	}
	var body struct {
		FromPosition *uint64 `json:"from_position"`
	}
	if _, err := decodeBody(r, s.cfg.MaxBodyBytes, &body); err != nil {
		return err
	}
	if body.FromPosition == nil {
		return invalidFields(FieldError{Field: "from_position", Message: "is required (0 replays the whole feed)"})
	}
	n, err := s.cfg.Webhooks.Replay(r.Context(), id, *body.FromPosition)
	if err != nil {
		return webhookError(err)
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"queued": n})
	return nil
}
