package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/rapport-crm/rapport/cmd/rapport/internal/progress"
	"github.com/rapport-crm/rapport/projections"
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
	// Together: every projector was rebuilt at once (--rebuild-together);
	// Seconds is then the wall time from the first request until the last
	// generation served, LogEvents the log's events each rebuild went
	// through, LogEventsPerSecond their rate (the figure that does not
	// grow with the number of projectors) and EventsPerSecond the
	// projector-events per second.
	Together           bool    `json:"together,omitempty"`
	LogEvents          int64   `json:"log_events,omitempty"`
	LogEventsPerSecond float64 `json:"log_events_per_second,omitempty"`
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
	if r.cfg.RebuildTogether {
		return r.rebuildTogether(ctx, statuses)
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

// rebuildTogether rebuilds every projector at once, as an operator
// rebuilding after an upgrade would (POST …/rebuild for each), and reports
// the log's events per second of wall time and the projector-events per
// second. Whether the projectors share one read of the log is the engine's
// doing (projections.SharedReader; RAPPORT_BENCH_PRIVATE=1 in the process
// that runs the projectors gives each its own, for A/B runs).
func (r *runner) rebuildTogether(ctx context.Context, statuses []projections.Status) (*RebuildResult, error) {
	res := &RebuildResult{Together: true, Mode: "every projector at once through Engine.Rebuild (requested from the process that runs the projectors, or run here when none does); seconds = wall time from the first request until the last new generation served"}
	var names []string
	for _, st := range statuses {
		if len(r.cfg.RebuildOnly) == 0 || slices.Contains(r.cfg.RebuildOnly, st.Name) {
			names = append(names, st.Name)
		}
	}
	report, finish := progressFor(r.cfg.Progress, fmt.Sprintf("rebuild %d projectors together", len(names)))
	var (
		mu   sync.Mutex
		done = map[string]int64{}
		wg   sync.WaitGroup
	)
	errs := make([]error, len(names))
	walls := make([]time.Duration, len(names))
	start := time.Now()
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.cfg.Engine.Rebuild(ctx, name, func(d, t int64) {
				mu.Lock()
				defer mu.Unlock()
				done[name] = d
				var sum int64
				for _, v := range done {
					sum += v
				}
				report(sum, t*int64(len(names)))
			})
			walls[i] = time.Since(start)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	finish()
	for i, err := range errs {
		if err != nil {
			if ctx.Err() != nil {
				return nil, errInterrupted
			}
			return nil, fmt.Errorf("bench: rebuild %s: %w", names[i], err)
		}
	}
	for i, name := range names {
		p := ProjectorRebuild{Name: name, Events: done[name], Seconds: round3(walls[i].Seconds())}
		if r.cfg.Pool != nil {
			var build float64
			if err := r.cfg.Pool.QueryRow(ctx, `SELECT generation, events_applied, extract(epoch FROM activated_at - created_at)::float8
				FROM projections.generations WHERE projector = $1 AND state = 'active'`, name).Scan(&p.Generation, &p.Events, &build); err == nil {
				p.BuildSeconds = round3(build)
			}
		}
		if walls[i] > 0 {
			p.EventsPerSecond = float64(p.Events) / walls[i].Seconds()
		}
		res.Projectors = append(res.Projectors, p)
		res.Events += p.Events
		res.LogEvents = max(res.LogEvents, p.Events)
	}
	res.Seconds = round3(elapsed.Seconds())
	if elapsed > 0 {
		res.EventsPerSecond = float64(res.Events) / elapsed.Seconds()
		res.LogEventsPerSecond = float64(res.LogEvents) / elapsed.Seconds()
	}
	res.Mode += fmt.Sprintf("; %d log events at %.0f log events/s, %.0f projector-events/s", res.LogEvents, res.LogEventsPerSecond, res.EventsPerSecond)
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
