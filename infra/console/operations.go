package console

import (
	"errors"
	"net/http"
	"net/url"

	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/projections"
)

type operationsData struct {
	Statuses []projections.Status
	// Parked are every projection's parked streams.
	Parked  []parkedRow
	Message string
	// Webhooks are the subscriptions with their delivery health (GET
	// /v1/webhooks and each one's delivery log), when the service has
	// webhooks.
	ShowWebhooks bool
	Webhooks     []webhookHealth
}

type parkedRow struct {
	Projection string
	projections.Parked
}

// operations shows every projector: checkpoint, head, lag, state and its
// parked streams, with the rebuild and retry actions (GET
// /v1/projections' status).
func (c *Console) operations(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	var d operationsData
	jobs := []func() error{func() (err error) { d.Statuses, err = c.cfg.Projections.Status(r.Context()); return }}
	if c.cfg.Webhooks != nil {
		d.ShowWebhooks = true
		jobs = append(jobs, func() (err error) { d.Webhooks, err = c.webhookHealths(r.Context()); return })
	}
	if err := parallel(jobs...); err != nil {
		return err
	}
	panels, err := c.panels(r, s, PageOperations)
	if err != nil {
		return err
	}
	st := d.Statuses
	for _, p := range st {
		for _, k := range p.Parked {
			d.Parked = append(d.Parked, parkedRow{Projection: p.Name, Parked: k})
		}
	}
	switch r.URL.Query().Get("done") {
	case "rebuild":
		d.Message = "Rebuild requested for " + r.URL.Query().Get("name") + "."
	case "retry":
		d.Message = "Retried the parked stream " + r.URL.Query().Get("stream") + " of " + r.URL.Query().Get("name") + "."
	case "queued":
		d.Message = "The retry of " + r.URL.Query().Get("stream") + " is queued for the process that runs " + r.URL.Query().Get("name") + "."
	}
	c.render(w, r, http.StatusOK, "operations", &view{Title: "Operations", S: s, Data: d, Panels: panels})
	return nil
}

func (c *Console) known(r *http.Request, name string) error {
	st, err := c.cfg.Projections.Status(r.Context())
	if err != nil {
		return err
	}
	for _, p := range st {
		if p.Name == name {
			return nil
		}
	}
	return rhttp.NotFound("projection_not_found", "no projector is named "+name)
}

// rebuild asks for a projection's rebuild, as POST
// /v1/projections/{name}/rebuild does, and goes back to the list.
func (c *Console) rebuild(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	name := r.PathValue("name")
	if err := c.known(r, name); err != nil {
		return err
	}
	if err := c.cfg.Projections.RequestRebuild(r.Context(), name); err != nil {
		return err
	}
	http.Redirect(w, r, "/console/operations?"+url.Values{"done": {"rebuild"}, "name": {name}}.Encode(), http.StatusSeeOther)
	return nil
}

// retryParked retries a parked stream, as POST
// /v1/projections/{name}/parked/{stream}/retry does.
func (c *Console) retryParked(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	name, stream := r.PathValue("name"), r.PathValue("stream")
	if err := c.known(r, name); err != nil {
		return err
	}
	retrier, ok := c.cfg.Projections.(rhttp.ParkedRetrier)
	if !ok {
		return rhttp.NotFound("stream_not_parked", "this service does not park streams")
	}
	done := "retry"
	err := retrier.RetryParked(r.Context(), name, stream)
	var still *projections.StillParkedError
	switch {
	case errors.Is(err, projections.ErrNotParked):
		return rhttp.NotFound("stream_not_parked", "projector "+name+" has no parked stream "+stream)
	case errors.As(err, &still), errors.Is(err, projections.ErrStillParked):
		return rhttp.Conflict("still_parked", err.Error())
	case errors.Is(err, projections.ErrRetryQueued):
		done = "queued"
	case err != nil:
		return err
	}
	http.Redirect(w, r, "/console/operations?"+url.Values{"done": {done}, "name": {name}, "stream": {stream}}.Encode(), http.StatusSeeOther)
	return nil
}
