// Package bench drives a realistic load over HTTP against a running Rapport
// and reports what it measured, with baselines measured in the same run:
//
//   - the load: N concurrent clients, each owning the customers it
//     registers, send a mix of commands (mostly contacts and complaint
//     lifecycle steps on existing customers, some registrations, follow-ups,
//     surveys, profile and team changes, churn and win-back, purchases and
//     refunds, loyalty awards and redemptions, a few of them above the
//     balance, which the rules refuse with 409 insufficient_points) for a duration
//     or a number of commands; commands/s overall and latency p50/p95/p99
//     per command type;
//   - projection lag: one accepted command in LagSampleEvery is followed, on
//     its own goroutine, by a query with min_position=<its position>; the
//     lag is the time from the command's answer to the query's 200, i.e.
//     until the read model reflects the command (one query round trip
//     included, reported beside it);
//   - verification: every accepted command's event is read back from the
//     event store (GET /v1/customers/{id}/events) at the revision the answer
//     reported, with the expected type, position and correlation id; every
//     touched customer is read back from the read models (the directory's
//     revision, every revision in the audit history) once the projections
//     have passed the last position; and the engine's reconciliation
//     (projections.Engine.Verify) compares each projector with the log. Zero
//     lost is the only pass;
//   - a baseline: one-statement single-event INSERT transactions straight
//     against the same PostgreSQL, at the same concurrency, with a payload
//     the size of a typical stored event, into a scratch table the bench
//     creates and drops; the report gives Rapport's throughput as a ratio of
//     it;
//   - rebuild throughput (every projector from position 0, through
//     Engine.Rebuild) and the audit replay time of the largest customer.
//
// The package is driven by `rapport bench` and by its own smoke test
// against the in-process service (infra/app/apptest); infra/app never
// imports it.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/projections"
)

// Config configures a run.
type Config struct {
	// URL is the service's base URL (http://localhost:8080).
	URL string
	// Key is the API key of the load: it needs the writer role (or admin).
	Key string
	// AuditKey reads the event log, the audit history and the read models
	// for verification and lag: it needs the auditor role (or admin).
	// Default Key.
	AuditKey string

	// Clients is the number of concurrent clients. Default 16.
	Clients int
	// Duration bounds the load; Commands bounds the commands sent. The load
	// ends at the first bound reached; with neither, it lasts 60 s.
	Duration time.Duration
	Commands int64
	// Seed makes the mix of commands reproducible. Default: from the clock.
	Seed uint64
	// LagSampleEvery follows one accepted command in this many with a
	// min_position query. Default 10; negative: no lag samples.
	LagSampleEvery int

	// The service's stores, for the parts that do not go through HTTP.
	// Each one left nil skips what needs it (and the report says so).
	//
	// Engine verifies the read models against the log (Verify), waits for
	// the projections (WaitForPosition) and rebuilds them (Rebuild).
	Engine *projections.Engine
	// Store is the event store, read to size a typical event.
	Store eventstore.Store
	// Pool is the service's PostgreSQL, where the baseline runs.
	Pool *pgxpool.Pool
	// EventStore names the event store kind for the report ("postgres",
	// "esdb://…"; credentials are removed).
	EventStore string

	// BaselineDuration is how long the baseline runs. Default 10 s;
	// negative skips it.
	BaselineDuration time.Duration
	// SkipRebuild skips the rebuild measurement (it rebuilds every
	// projector of the service it runs against); RebuildOnly, when not
	// empty, rebuilds only the projectors named.
	SkipRebuild bool
	RebuildOnly []string

	// HTTPClient sends the requests. Default: a client with enough idle
	// connections for the clients and a 60 s timeout.
	HTTPClient *http.Client
	// Progress receives progress bars (stderr); nil draws none.
	Progress io.Writer
	// Log receives one line per phase; nil is silent.
	Log io.Writer
	// OnPhase, if set, is called as each phase ("load", "verify",
	// "baseline", "audit", "rebuild") begins and ends: a test profiles the
	// load alone with it.
	OnPhase func(phase string, begin bool)

	// Rate, when positive, offers the commands at this constant rate per
	// second (an open loop, openloop.go) instead of each client sending
	// its next command as soon as the previous one is answered; Clients
	// then bounds the commands in flight.
	Rate float64
	// RebuildTogether rebuilds every projector at once instead of one
	// after the other, and reports log events/s and projector-events/s.
	RebuildTogether bool
}

func (c *Config) setDefaults() {
	if c.AuditKey == "" {
		c.AuditKey = c.Key
	}
	if c.Clients == 0 {
		c.Clients = 16
	}
	if c.Duration == 0 && c.Commands == 0 {
		c.Duration = 60 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if c.LagSampleEvery == 0 {
		c.LagSampleEvery = 10
	}
	if c.BaselineDuration == 0 {
		c.BaselineDuration = 10 * time.Second
	}
	c.URL = strings.TrimRight(c.URL, "/")
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{
			Timeout: 60 * time.Second,
			Transport: &http.Transport{
				Proxy:               http.ProxyFromEnvironment,
				MaxIdleConns:        4*c.Clients + 64,
				MaxIdleConnsPerHost: 4*c.Clients + 64,
				IdleConnTimeout:     90 * time.Second,
				DisableCompression:  true,
			},
		}
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.OnPhase == nil {
		c.OnPhase = func(string, bool) {}
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("URL is required"))
	}
	if c.Key == "" {
		errs = append(errs, errors.New("an API key is required"))
	}
	if c.Clients < 1 {
		errs = append(errs, errors.New("Clients must be at least 1"))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("Rate must not be negative"))
	}
	if c.Duration < 0 || c.Commands < 0 {
		errs = append(errs, errors.New("Duration and Commands must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// Run runs the whole bench: load, verification, baseline, rebuild and
// audit replay. It returns the results even when the verification fails
// (Result.Pass says); an error means the bench itself could not run.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, api: newAPI(cfg), runID: newRunID()}
	res := &Result{}
	res.Run = runInfo(ctx, cfg, r.runID)
	if err := r.api.preflight(ctx); err != nil {
		return nil, err
	}

	fmt.Fprintf(cfg.Log, "bench: %d clients against %s (%s)\n", cfg.Clients, cfg.URL, describeBounds(cfg))
	cfg.OnPhase("load", true)
	load, err := r.load(ctx)
	cfg.OnPhase("load", false)
	if err != nil {
		return nil, err
	}
	res.Load = load.result
	res.Lag = load.lag

	fmt.Fprintf(cfg.Log, "bench: verifying %d commands on %d customers\n", load.result.Accepted, len(load.customers))
	cfg.OnPhase("verify", true)
	res.Verification, err = r.verify(ctx, load)
	cfg.OnPhase("verify", false)
	if err != nil {
		return nil, err
	}
	res.Lag.QueryRTTP50Ms = res.Verification.queryRTT.percentile(50)

	if cfg.Pool != nil && cfg.BaselineDuration > 0 {
		fmt.Fprintf(cfg.Log, "bench: baseline, raw single-event INSERT transactions for %s\n", cfg.BaselineDuration)
		cfg.OnPhase("baseline", true)
		b, err := r.baseline(ctx)
		cfg.OnPhase("baseline", false)
		switch {
		case ctx.Err() != nil:
			return nil, errInterrupted
		case err != nil:
			// A measurement beside the load, not part of its verdict: a
			// shared server out of connections must not throw the load's
			// figures away.
			fmt.Fprintf(cfg.Log, "bench: %v\n", err)
			res.Skipped = append(res.Skipped, fmt.Sprintf("baseline: failed: %v", err))
		default:
			if b.TPS > 0 {
				b.Ratio = res.Load.CommandsPerSecond / b.TPS
			}
			res.Baseline = b
		}
	} else {
		res.Skipped = append(res.Skipped, skipReason("baseline", cfg.Pool == nil, "no database (set DATABASE_URL or run against `rapport dev`)"))
	}

	if largest := load.largest(); largest != nil {
		cfg.OnPhase("audit", true)
		res.Audit, err = r.auditReplay(ctx, largest)
		cfg.OnPhase("audit", false)
		if err != nil {
			return nil, err
		}
		if res.Audit.Intact != nil && !*res.Audit.Intact {
			res.Verification.ChainBroken = "the hash chain of customer " + largest.id + " does not verify"
		}
	}

	if cfg.Engine != nil && !cfg.SkipRebuild {
		fmt.Fprintln(cfg.Log, "bench: rebuilding every projector from position 0")
		cfg.OnPhase("rebuild", true)
		res.Rebuild, err = r.rebuild(ctx)
		cfg.OnPhase("rebuild", false)
		if err != nil {
			return nil, err
		}
		after, err := r.reconcile(ctx)
		if err != nil {
			return nil, err
		}
		res.Verification.ReconciliationAfterRebuild = after
	} else {
		res.Skipped = append(res.Skipped, skipReason("rebuild", cfg.Engine == nil, "no access to the service's stores (DATABASE_URL, RAPPORT_MASTER_KEY)"))
	}
	res.Verification.judge()
	res.Pass = res.Verification.Pass
	res.FinishedAt = time.Now().UTC()
	return res, nil
}

func skipReason(what string, missing bool, why string) string {
	if missing {
		return what + ": " + why
	}
	return what + ": skipped on request"
}

func describeBounds(cfg Config) string {
	if cfg.Rate > 0 {
		c := cfg
		c.Rate = 0
		return fmt.Sprintf("%s, offered at %.0f/s", describeBounds(c), cfg.Rate)
	}
	switch {
	case cfg.Duration > 0 && cfg.Commands > 0:
		return fmt.Sprintf("%s or %d commands", cfg.Duration, cfg.Commands)
	case cfg.Commands > 0:
		return fmt.Sprintf("%d commands", cfg.Commands)
	}
	return cfg.Duration.String()
}

// runner is one run's shared state.
type runner struct {
	cfg   Config
	api   *api
	runID string
}
