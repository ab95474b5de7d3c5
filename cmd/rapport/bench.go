package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rapport-crm/rapport/cmd/rapport/internal/bench"
	"github.com/rapport-crm/rapport/infra/postgres"
)

const benchSummary = `Drives a realistic load over HTTP against a running Rapport (registrations, contacts and
follow-ups, complaints through their lifecycle, surveys, churn and win-back, purchases and
refunds, loyalty awards and redemptions) with concurrent clients, then verifies that every
accepted command is in the event store and in every read model (zero lost is the only pass:
exit status 3 and a FAIL line otherwise). It reports
commands/s, latency per command, projection lag, a raw PostgreSQL INSERT baseline measured in
the same run, rebuild throughput and the audit replay time of the largest customer, as
Markdown on stdout and as JSON in --out.

Against ` + "`make run`" + ` it needs no flags: the URL, the admin key and the stores come from
.data/dev.json. Elsewhere pass --url and --key, and DATABASE_URL, RAPPORT_EVENT_STORE and
RAPPORT_MASTER_KEY as the service has them for verification, baseline and rebuild.
Note the service's per-key rate limit (RAPPORT_RATE_LIMIT, default 200/s): raise it on the
service, or the bench measures the limiter.`

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("bench", benchSummary, stderr)
	// Of the service's settings, only those that locate its stores.
	var f serviceFlags
	all := flag.NewFlagSet("service", flag.ContinueOnError)
	f.register(all, true)
	for _, name := range []string{"database-url", "event-store", "master-key"} {
		fl := all.Lookup(name)
		fs.Var(fl.Value, fl.Name, fl.Usage)
	}
	var o benchOptions
	fs.StringVar(&o.url, "url", envString("RAPPORT_URL", ""), "the service's base URL; default the development instance's (.data/dev.json), else http://localhost:8080 [RAPPORT_URL]")
	fs.StringVar(&o.key, "key", envString("RAPPORT_KEY", ""), "API key of the load, with the writer role (or admin); default the development instance's admin key [RAPPORT_KEY]")
	fs.StringVar(&o.auditKey, "audit-key", envString("RAPPORT_AUDIT_KEY", ""), "API key that reads events, history and read models for verification, with the auditor role (or admin); default --key [RAPPORT_AUDIT_KEY]")
	fs.IntVar(&o.clients, "clients", envInt("RAPPORT_BENCH_CLIENTS", 16), "concurrent clients [RAPPORT_BENCH_CLIENTS]")
	fs.DurationVar(&o.duration, "duration", envDuration("RAPPORT_BENCH_DURATION", 60*time.Second), "how long the load lasts; with --commands and no --duration, the count alone bounds it [RAPPORT_BENCH_DURATION]")
	fs.Int64Var(&o.commands, "commands", 0, "send this many commands (accepted, refused or rate-limited), then stop")
	fs.Float64Var(&o.rate, "rate", 0, "offer the commands at this constant rate per second (an open loop: latency from each command's due instant, late sends counted); 0: each client sends as soon as it is answered. --clients bounds the commands in flight")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed of the command mix; 0 picks one from the clock (the report prints it)")
	fs.IntVar(&o.lagEvery, "lag-every", 10, "follow one accepted command in this many with a min_position query to measure projection lag; 0: none")
	fs.DurationVar(&o.baseline, "baseline-duration", 10*time.Second, "how long the raw PostgreSQL INSERT baseline runs; 0 skips it")
	rebuildTogether := fs.Bool("rebuild-together", false, "rebuild every projector at once (log events/s and projector-events/s) instead of one after the other")
	fs.BoolVar(&o.noRebuild, "no-rebuild", false, "skip the rebuild measurement (which rebuilds every projector of the target, without downtime)")
	fs.BoolVar(&o.httpOnly, "http-only", false, "do not open the service's stores: skip Engine.Verify, the baseline and the rebuild")
	fs.StringVar(&o.out, "out", "", "the JSON results file; default bench-results/<UTC timestamp>.json; - for none")
	fs.StringVar(&o.devFile, "dev-file", devInfoPath(), "the file the development instance (rapport dev) writes: the defaults of the URL, the key and the stores")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench takes no arguments, got %q", fs.Args())
	}
	explicit := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { explicit[fl.Name] = true })
	dev, devErr := readDevInfo(o.devFile)
	resolveBenchTarget(&o, &f, explicit, dev, devErr == nil)
	if o.key == "" {
		return fmt.Errorf("no API key: pass --key or set RAPPORT_KEY (against `rapport dev` the bench uses its admin key from %s)", o.devFile)
	}
	if o.commands > 0 && !explicit["duration"] && os.Getenv("RAPPORT_BENCH_DURATION") == "" {
		o.duration = 0
	}

	cfg := bench.Config{
		URL:              o.url,
		Key:              o.key,
		AuditKey:         o.auditKey,
		Clients:          o.clients,
		Duration:         o.duration,
		Commands:         o.commands,
		Rate:             o.rate,
		Seed:             o.seed,
		LagSampleEvery:   o.lagEvery,
		BaselineDuration: o.baseline,
		SkipRebuild:      o.noRebuild,
		RebuildTogether:  *rebuildTogether,
		EventStore:       f.eventStore,
		Progress:         stderr,
		Log:              stderr,
	}
	if o.lagEvery <= 0 {
		cfg.LagSampleEvery = -1
	}
	if o.baseline <= 0 {
		cfg.BaselineDuration = -1
	}
	if !o.httpOnly {
		closeStores, err := openBenchStores(ctx, &f, &cfg, stderr)
		if err != nil {
			return err
		}
		defer closeStores()
	}

	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if err := res.WriteMarkdown(stdout); err != nil {
		return err
	}
	if o.out != "-" {
		path := o.out
		if path == "" {
			path = filepath.Join("bench-results", res.Run.StartedAt.Format("20060102T150405Z")+".json")
		}
		if err := writeBenchJSON(path, res); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: results written to %s\n", path)
	}
	if !res.Pass {
		return exitError(3)
	}
	return nil
}

// benchOptions are the bench's own flags.
type benchOptions struct {
	url, key, auditKey string
	clients            int
	duration           time.Duration
	commands           int64
	rate               float64
	seed               uint64
	lagEvery           int
	baseline           time.Duration
	noRebuild          bool
	httpOnly           bool
	out                string
	devFile            string
}

// resolveBenchTarget fills what was not given. The URL and the key: a flag,
// else the environment, else the development instance's (.data/dev.json),
// else http://localhost:8080. The stores (database, event store, master
// key): a flag, else — when the bench targets the development instance —
// that instance's, else the environment (already in f).
func resolveBenchTarget(o *benchOptions, f *serviceFlags, explicit map[string]bool, dev devInfo, haveDev bool) {
	if o.url == "" {
		if haveDev && dev.URL != "" {
			o.url = dev.URL
		} else {
			o.url = "http://localhost:8080"
		}
	}
	o.url = strings.TrimRight(o.url, "/")
	targetsDev := haveDev && sameService(o.url, dev.URL)
	if o.key == "" && targetsDev {
		o.key = dev.AdminKey
	}
	if o.auditKey == "" {
		o.auditKey = o.key
	}
	if !targetsDev {
		return
	}
	if !explicit["database-url"] && dev.DatabaseURL != "" {
		f.databaseURL = dev.DatabaseURL
	}
	if !explicit["event-store"] && dev.EventStore != "" {
		f.eventStore = dev.EventStore
	}
	if !explicit["master-key"] && dev.MasterKey != "" {
		f.masterKey = dev.MasterKey
	}
}

// sameService compares two base URLs, taking localhost, 127.0.0.1 and [::1]
// for the same host.
func sameService(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimRight(strings.ToLower(s), "/")
		for _, h := range []string{"://127.0.0.1:", "://[::1]:", "://0.0.0.0:"} {
			s = strings.Replace(s, h, "://localhost:", 1)
		}
		return s
	}
	return b != "" && norm(a) == norm(b)
}

// openBenchStores opens what the bench needs beside HTTP: the whole
// service's stores when the database and the master key are known (for
// Engine.Verify, the rebuild and the baseline), the database alone when only
// it is (the baseline), or nothing.
func openBenchStores(ctx context.Context, f *serviceFlags, cfg *bench.Config, stderr io.Writer) (func(), error) {
	switch {
	case f.databaseURL != "" && f.masterKey != "":
		m, err := openTool(ctx, f, stderr)
		if err != nil {
			return nil, fmt.Errorf("bench: open the service's stores: %w", err)
		}
		cfg.Engine, cfg.Store, cfg.Pool = m.Engine, m.Store, m.Pool
		return func() { _ = m.Close(context.WithoutCancel(ctx)) }, nil
	case f.databaseURL != "":
		fmt.Fprintln(stderr, "bench: no master key (RAPPORT_MASTER_KEY): Engine.Verify and the rebuild are skipped")
		pool, err := postgres.OpenPool(ctx, f.databaseURL)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		cfg.Pool = pool
		return pool.Close, nil
	default:
		fmt.Fprintln(stderr, "bench: no database (DATABASE_URL): Engine.Verify, the baseline and the rebuild are skipped")
		return func() {}, nil
	}
}

func writeBenchJSON(path string, res *bench.Result) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
