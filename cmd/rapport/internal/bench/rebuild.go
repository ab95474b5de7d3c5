package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/rapport-crm/rapport/cmd/rapport/internal/progress"
)

// RebuildResult is the rebuild of every projector from position 0, one
// after the other, through projections.Engine.Rebuild in the bench's
// process: when the service runs the projectors (serve, dev, the smoke
// test's in-process service), that asks the service to rebuild and follows
// the new generation until it serves readers, so the figure is the
// service's own rebuild rate, with the time to notice completion (polled
// every 200 ms) included; when no process runs a projector, the bench
// rebuilds it itself.
type RebuildResult struct {
	Mode       string             `json:"mode"`
	Projectors []ProjectorRebuild `json:"projectors"`
	// Events sums the projectors' events and Seconds their build times
	// (BuildSeconds where known, else the wall time); EventsPerSecond is
	// their ratio.
	Events          int64   `json:"events"`
	Seconds         float64 `json:"seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
}

// ProjectorRebuild is one projector's rebuild. Seconds is the wall time
// the bench saw, from the request until the new generation served;
// BuildSeconds the new generation's own life from its creation to its
// activation (projections.generations), without the time the running
// process took to notice the request or the bench to notice the end;
// EventsPerSecond uses BuildSeconds when known.
type ProjectorRebuild struct {
	Name            string  `json:"name"`
	Generation      int     `json:"generation"`
	Events          int64   `json:"events"`
	Seconds         float64 `json:"seconds"`
	BuildSeconds    float64 `json:"build_seconds,omitempty"`
	EventsPerSecond float64 `json:"events_per_second"`
}

func (r *runner) rebuild(ctx context.Context) (*RebuildResult, error) {
	statuses, err := r.cfg.Engine.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: projector status: %w", err)
	}
	res := &RebuildResult{Mode: "Engine.Rebuild from the bench process: requested from the process that runs the projectors and followed until the new generation serves (or run here when none does)"}
	var total time.Duration
	for _, st := range statuses {
		if len(r.cfg.RebuildOnly) > 0 && !slices.Contains(r.cfg.RebuildOnly, st.Name) {
			continue
		}
		var done int64
		report, finish := progressFor(r.cfg.Progress, "rebuild "+st.Name)
		start := time.Now()
		err := r.cfg.Engine.Rebuild(ctx, st.Name, func(d, t int64) {
			done = d
			report(d, t)
		})
		elapsed := time.Since(start)
		finish()
		if err != nil {
			if ctx.Err() != nil {
				return nil, errInterrupted
			}
			return nil, fmt.Errorf("bench: rebuild %s: %w", st.Name, err)
		}
		p := ProjectorRebuild{Name: st.Name, Events: done, Seconds: round3(elapsed.Seconds())}
		took := elapsed
		if r.cfg.Pool != nil {
			var applied int64
			var build float64
			err := r.cfg.Pool.QueryRow(ctx, `SELECT generation, events_applied, extract(epoch FROM activated_at - created_at)::float8
				FROM projections.generations WHERE projector = $1 AND state = 'active'`, st.Name).Scan(&p.Generation, &applied, &build)
			if err == nil && build > 0 {
				p.Events, p.BuildSeconds = applied, round3(build)
				took = time.Duration(build * float64(time.Second))
			}
		}
		if took > 0 {
			p.EventsPerSecond = float64(p.Events) / took.Seconds()
		}
		res.Projectors = append(res.Projectors, p)
		res.Events += p.Events
		total += took
	}
	res.Seconds = round3(total.Seconds())
	if total > 0 {
		res.EventsPerSecond = float64(res.Events) / total.Seconds()
	}
	return res, nil
}

func progressFor(w io.Writer, description string) (func(done, total int64), func()) {
	if w == io.Discard {
		return func(int64, int64) {}, func() {}
	}
	return progress.Rebuild(w, description)
}

// AuditResult times an auditor's replay of the largest customer touched:
// its whole event log as NDJSON, its state rebuilt from the events, and
// the verification of its hash chain.
type AuditResult struct {
	CustomerID     string  `json:"customer_id"`
	Events         int     `json:"events"`
	EventsMs       float64 `json:"events_ms"`
	EventsBytes    int     `json:"events_bytes"`
	StateMs        float64 `json:"state_ms"`
	VerificationMs float64 `json:"verification_ms"`
	Intact         *bool   `json:"intact,omitempty"`
}

func (r *runner) auditReplay(ctx context.Context, c *customer) (*AuditResult, error) {
	res := &AuditResult{CustomerID: c.id}
	ans, events, err := r.readEvents(ctx, c.id)
	res.EventsMs = ms(ans.took)
	if err != nil {
		return nil, fmt.Errorf("bench: audit replay: %w", err)
	}
	if ans.status != http.StatusOK {
		return nil, fmt.Errorf("bench: audit replay: GET /events answered %d", ans.status)
	}
	res.Events, res.EventsBytes = len(events), len(ans.body)

	ans, err = r.api.get(ctx, "/v1/customers/"+c.id+"/state", 60*time.Second)
	res.StateMs = ms(ans.took)
	if err != nil {
		return nil, fmt.Errorf("bench: audit replay: %w", err)
	}
	if ans.status != http.StatusOK {
		return nil, fmt.Errorf("bench: audit replay: GET /state answered %d", ans.status)
	}

	ans, err = r.api.get(ctx, "/v1/customers/"+c.id+"/verification", 60*time.Second)
	res.VerificationMs = ms(ans.took)
	if err == nil && ans.status == http.StatusOK {
		var v struct {
			Intact bool `json:"intact"`
		}
		if json.Unmarshal(ans.body, &v) == nil {
			res.Intact = &v.Intact
		}
	}
	return res, nil
}
