package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/app"
	rcadence "github.com/rapport-crm/rapport/readmodels/cadence"
	"github.com/rapport-crm/rapport/readmodels/risk"
	"github.com/rapport-crm/rapport/readmodels/sla"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// flagSet returns a flag set whose usage lists each flag with the
// environment variable that also sets it.
func flagSet(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: rapport %s [flags]\n\n%s\n\nFlags (each also read from the environment variable in brackets):\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses args with fs accepting flags anywhere among the
// positional arguments, as people type them (`audit replay ID --as-of T`):
// the standard library stops at the first positional argument and would
// take every later flag for one. "--" ends the flags; what follows it is
// positional even when it looks like a flag. Afterwards fs.Args() holds the
// positional arguments, in order. Every subcommand parses with it except
// devdb, whose arguments after the first are the command it runs.
func parseArgs(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	// Parsing just "--" and the positional arguments leaves the flags as
	// they are and makes fs.Args() return the positional arguments.
	return fs.Parse(append([]string{"--"}, positional...))
}

// The settings of the development instance. `rapport dev` (make run) keeps
// its cluster, its master key and dev.json in RAPPORT_DATA_DIR (default
// .data in the working directory), and every tool (audit, projections,
// apikey, migrate, seed, bench) reads dev.json from there when DATABASE_URL
// and the other settings are not given: one variable points them all at
// one instance.
const (
	dataDirEnv     = "RAPPORT_DATA_DIR"
	defaultDataDir = ".data"
	devInfoName    = "dev.json"
)

// devDataDir is RAPPORT_DATA_DIR, else .data.
func devDataDir() string { return envString(dataDirEnv, defaultDataDir) }

// devInfoPath is where `rapport dev` writes its settings and the tools read
// them.
func devInfoPath() string { return filepath.Join(devDataDir(), devInfoName) }

// loadDevInfo reads the development instance's settings. When there are
// none, hint says where they were looked for and how to point the tools at
// them, for errors about a missing setting.
func loadDevInfo() (info devInfo, hint string, err error) {
	path := devInfoPath()
	info, err = readDevInfo(path)
	if err != nil {
		abs, _ := filepath.Abs(path)
		if errors.Is(err, os.ErrNotExist) {
			hint = fmt.Sprintf("no development instance's settings either: %s does not exist (start one with `make run`, and run the tools in the same directory or with %s set as it had)", abs, dataDirEnv)
		} else {
			hint = fmt.Sprintf("the development instance's settings in %s cannot be read: %v", abs, err)
		}
	}
	return info, hint, err
}

// openTool opens the service's stores without serving HTTP. Without a
// database (DATABASE_URL or --database-url) it opens the development
// instance's, with its master key and event store, from its settings
// (devInfoPath); the settings of another database are never mixed with it.
func openTool(ctx context.Context, f *serviceFlags, stderr io.Writer) (*app.Main, error) {
	hint := ""
	if f.databaseURL == "" {
		info, why, err := loadDevInfo()
		hint = why
		if err == nil {
			f.databaseURL = info.DatabaseURL
			if f.masterKey == "" {
				f.masterKey = info.MasterKey
			}
			if f.eventStore == "postgres" && info.EventStore != "" {
				f.eventStore = info.EventStore
			}
		}
	}
	if f.databaseURL == "" {
		return nil, fmt.Errorf("no database: set DATABASE_URL; %s", hint)
	}
	if f.logLevel == "info" {
		f.logLevel = "warn" // a tool's output is its answer, not logs
	}
	logger, err := f.logger(stderr)
	if err != nil {
		return nil, err
	}
	cfg, err := f.appConfig(logger)
	if err != nil {
		if hint != "" {
			return nil, fmt.Errorf("%w; %s", err, hint)
		}
		return nil, err
	}
	cfg.ServeHTTP, cfg.RunProjections = false, false
	m, err := app.New(cfg)
	if err != nil {
		return nil, err
	}
	return m, m.Open(ctx)
}

func envString(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return fallback
}

func envBool(name string, fallback bool) bool {
	if v, err := strconv.ParseBool(os.Getenv(name)); err == nil {
		return v
	}
	return fallback
}

func envFloat(name string, fallback float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return fallback
}

func envInt(name string, fallback int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return fallback
}

func envDuration(name string, fallback time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return fallback
}

// serviceFlags are the settings of a running service (serve, dev, project).
type serviceFlags struct {
	databaseURL     string
	eventStore      string
	addr            string
	masterKey       string
	publicMetrics   bool
	rateLimit       float64
	rateBurst       int
	maxBodyBytes    int
	minPositionWait time.Duration
	commandTimeout  time.Duration
	slaTargets      string
	riskWeights     string
	cadence         string
	maxOutbound     int
	logLevel        string
	logFormat       string
	shutdownTimeout time.Duration
	// The web console's sessions.
	consoleSecureCookies   bool
	consoleSessionIdle     time.Duration
	consoleSessionLifetime time.Duration
	committers             int
	// Loyalty points: per whole currency unit of a purchase, and months of
	// validity.
	loyaltyPointsPerUnit  int
	loyaltyValidityMonths int
	webhookTargets        string
	webhookTimeout        time.Duration
	reminders             bool
	reminderInterval      time.Duration
	reminderBackfill      time.Duration
	brokers               string
}

func (f *serviceFlags) register(fs *flag.FlagSet, withDatabase bool) {
	if withDatabase {
		fs.StringVar(&f.databaseURL, "database-url", envString("DATABASE_URL", ""), "PostgreSQL URL for read models, keys and the embedded event store [DATABASE_URL]")
	}
	fs.StringVar(&f.eventStore, "event-store", envString("RAPPORT_EVENT_STORE", "postgres"), "event store: postgres (embedded) or an EventStoreDB URL such as esdb://localhost:2113?tls=false [RAPPORT_EVENT_STORE]")
	fs.StringVar(&f.addr, "addr", envString("RAPPORT_ADDR", ":8080"), "HTTP listen address [RAPPORT_ADDR]")
	fs.StringVar(&f.masterKey, "master-key", envString("RAPPORT_MASTER_KEY", ""), "base64 of 32 random bytes wrapping the customers' data keys (openssl rand -base64 32) [RAPPORT_MASTER_KEY]")
	fs.BoolVar(&f.publicMetrics, "public-metrics", envBool("RAPPORT_PUBLIC_METRICS", false), "serve /metrics without an API key [RAPPORT_PUBLIC_METRICS]")
	fs.Float64Var(&f.rateLimit, "rate-limit", envFloat("RAPPORT_RATE_LIMIT", 200), "requests per second per API key, sustained [RAPPORT_RATE_LIMIT]")
	fs.IntVar(&f.rateBurst, "rate-burst", envInt("RAPPORT_RATE_BURST", 400), "requests per API key in a burst [RAPPORT_RATE_BURST]")
	fs.IntVar(&f.maxBodyBytes, "max-body-bytes", envInt("RAPPORT_MAX_BODY_BYTES", 1<<20), "largest request body accepted [RAPPORT_MAX_BODY_BYTES]")
	fs.DurationVar(&f.minPositionWait, "min-position-wait", envDuration("RAPPORT_MIN_POSITION_WAIT", 5*time.Second), "longest wait of a query for min_position [RAPPORT_MIN_POSITION_WAIT]")
	fs.DurationVar(&f.commandTimeout, "command-timeout", envDuration("RAPPORT_COMMAND_TIMEOUT", 10*time.Second), "longest a command may take, store calls included, before it answers 503 [RAPPORT_COMMAND_TIMEOUT]")
	fs.StringVar(&f.slaTargets, "sla", envString("RAPPORT_SLA", sla.Defaults().String()), "complaint SLA targets by severity, first response/resolution [RAPPORT_SLA]")
	fs.StringVar(&f.riskWeights, "risk-weights", envString("RAPPORT_RISK_WEIGHTS", risk.DefaultWeights().String()), "churn-risk points by factor, over the defaults; keys: "+strings.Join(risk.WeightKeys(), ", ")+" [RAPPORT_RISK_WEIGHTS]")
	fs.StringVar(&f.cadence, "cadence", envString("RAPPORT_CADENCE", work.DefaultCadence().String()), "contact cadence in days by tier (A, B, C, none), over the defaults: the work queue contact-due [RAPPORT_CADENCE]")
	fs.IntVar(&f.maxOutbound, "max-outbound-per-week", envInt("RAPPORT_MAX_OUTBOUND_PER_WEEK", rcadence.DefaultMaxOutboundPerWeek), "most outbound contacts of a customer in 7 days before it is over-contacted [RAPPORT_MAX_OUTBOUND_PER_WEEK]")
	fs.StringVar(&f.logLevel, "log-level", envString("RAPPORT_LOG_LEVEL", "info"), "debug, info, warn or error [RAPPORT_LOG_LEVEL]")
	fs.StringVar(&f.logFormat, "log-format", envString("RAPPORT_LOG_FORMAT", "json"), "json or text [RAPPORT_LOG_FORMAT]")
	fs.BoolVar(&f.consoleSecureCookies, "console-secure-cookies", envBool("RAPPORT_CONSOLE_SECURE_COOKIES", false), "mark the console's session cookies Secure: set it when TLS ends at a proxy in front of the service [RAPPORT_CONSOLE_SECURE_COOKIES]")
	fs.DurationVar(&f.consoleSessionIdle, "console-session-idle", envDuration("RAPPORT_CONSOLE_SESSION_IDLE", 30*time.Minute), "a console session unused this long ends [RAPPORT_CONSOLE_SESSION_IDLE]")
	fs.DurationVar(&f.consoleSessionLifetime, "console-session-lifetime", envDuration("RAPPORT_CONSOLE_SESSION_LIFETIME", 8*time.Hour), "every console session ends this long after sign-in [RAPPORT_CONSOLE_SESSION_LIFETIME]")
	fs.IntVar(&f.loyaltyPointsPerUnit, "loyalty-points-per-unit", envInt("RAPPORT_LOYALTY_POINTS_PER_UNIT", domain.DefaultPointsPerUnit), "loyalty points a purchase earns per whole currency unit of its net amount, 0 to 1000 (0: none) [RAPPORT_LOYALTY_POINTS_PER_UNIT]")
	fs.IntVar(&f.loyaltyValidityMonths, "loyalty-validity-months", envInt("RAPPORT_LOYALTY_VALIDITY_MONTHS", domain.DefaultValidityMonths), "months loyalty points stay valid after they were earned, 1 to 1200 [RAPPORT_LOYALTY_VALIDITY_MONTHS]")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", envDuration("RAPPORT_SHUTDOWN_TIMEOUT", 30*time.Second), "how long requests in flight may finish on shutdown [RAPPORT_SHUTDOWN_TIMEOUT]")
	fs.IntVar(&f.committers, "committers", envInt("RAPPORT_COMMITTERS", 0), "with the embedded event store: append transactions in flight at once, beyond which appends wait and commit together (group commit); 0: the default (8), -1: every append commits alone [RAPPORT_COMMITTERS]")
	fs.StringVar(&f.webhookTargets, "webhook-allow-targets", envString("RAPPORT_WEBHOOK_ALLOW_TARGETS", ""), "CIDR ranges webhooks may reach although private, loopback or link-local, comma-separated [RAPPORT_WEBHOOK_ALLOW_TARGETS]")
	fs.DurationVar(&f.webhookTimeout, "webhook-timeout", envDuration("RAPPORT_WEBHOOK_TIMEOUT", 10*time.Second), "longest one webhook delivery may take [RAPPORT_WEBHOOK_TIMEOUT]")
	fs.BoolVar(&f.reminders, "reminders", envBool("RAPPORT_REMINDERS", true), "run the reminder scheduler (complaint SLA at risk and breached, follow-up due, contact due: integration events in the feed); one process schedules at a time [RAPPORT_REMINDERS]")
	fs.DurationVar(&f.reminderInterval, "reminder-interval", envDuration("RAPPORT_REMINDER_INTERVAL", 5*time.Second), "time between two scans of the reminder scheduler: how late a reminder may be [RAPPORT_REMINDER_INTERVAL]")
	fs.DurationVar(&f.reminderBackfill, "reminder-backfill", envDuration("RAPPORT_REMINDER_BACKFILL", 24*time.Hour), "at the scheduler's very first start, emit the reminders whose time came within this long before (older ones never are); negative: all [RAPPORT_REMINDER_BACKFILL]")
	fs.StringVar(&f.brokers, "brokers", envString("RAPPORT_BROKERS", ""), "broker URLs the change feed is published to, comma-separated: nats://host:4222?stream=RAPPORT&subject=rapport.events, amqp://user:pass@host:5672/?exchange=rapport.events [RAPPORT_BROKERS]")
}

func (f *serviceFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", f.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(f.logFormat) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: use json or text", f.logFormat)
}

func (f *serviceFlags) appConfig(logger *slog.Logger) (app.Config, error) {
	if f.masterKey == "" {
		return app.Config{}, fmt.Errorf("no master key: set RAPPORT_MASTER_KEY to base64 of 32 random bytes (openssl rand -base64 32)")
	}
	key, err := app.ParseMasterKey(f.masterKey)
	if err != nil {
		return app.Config{}, err
	}
	targets, err := sla.Parse(f.slaTargets)
	if err != nil {
		return app.Config{}, err
	}
	weights, err := risk.ParseWeights(f.riskWeights)
	if err != nil {
		return app.Config{}, err
	}
	cadence, err := work.ParseCadence(f.cadence)
	if err != nil {
		return app.Config{}, err
	}
	if err := rcadence.ValidMaxOutbound(f.maxOutbound); err != nil {
		return app.Config{}, err
	}
	loyalty, err := f.loyalty()
	if err != nil {
		return app.Config{}, err
	}
	allowTargets, err := parsePrefixes(f.webhookTargets)
	if err != nil {
		return app.Config{}, err
	}
	return app.Config{
		DatabaseURL:     f.databaseURL,
		EventStore:      f.eventStore,
		Addr:            f.addr,
		MasterKey:       key,
		PublicMetrics:   f.publicMetrics,
		RateLimit:       f.rateLimit,
		RateBurst:       f.rateBurst,
		MaxBodyBytes:    int64(f.maxBodyBytes),
		MinPositionWait: f.minPositionWait,
		CommandTimeout:  f.commandTimeout,
		ReadModels:      app.ReadModelSettings{SLA: targets, RiskWeights: &weights, Cadence: cadence, MaxOutboundPerWeek: f.maxOutbound},
		ServeHTTP:       true,
		RunProjections:  true,
		Logger:          logger,
		Console: app.ConsoleSettings{SecureCookies: f.consoleSecureCookies,
			SessionIdle: f.consoleSessionIdle, SessionLifetime: f.consoleSessionLifetime},
		PrivateReaders: os.Getenv("RAPPORT_BENCH_PRIVATE") == "1",
		Committers:     f.committers,
		Loyalty:        loyalty,
		Webhooks:       app.WebhookSettings{AllowTargets: allowTargets, Timeout: f.webhookTimeout},
		Brokers:        strings.Split(f.brokers, ","),
		Reminders:      app.ReminderSettings{Off: !f.reminders, Interval: f.reminderInterval, Backfill: f.reminderBackfill},
	}, nil
}

// loyalty is the points policy the flags give (0 points per unit earns
// none).
func (f *serviceFlags) loyalty() (domain.LoyaltyPolicy, error) {
	switch {
	case f.loyaltyPointsPerUnit < 0 || f.loyaltyPointsPerUnit > domain.MaxPointsPerUnit:
		return domain.LoyaltyPolicy{}, fmt.Errorf("loyalty points per unit %d: want 0 to %d", f.loyaltyPointsPerUnit, domain.MaxPointsPerUnit)
	case f.loyaltyValidityMonths < 1 || f.loyaltyValidityMonths > 1200:
		return domain.LoyaltyPolicy{}, fmt.Errorf("loyalty validity %d months: want 1 to 1200", f.loyaltyValidityMonths)
	}
	p := domain.LoyaltyPolicy{PointsPerUnit: int64(f.loyaltyPointsPerUnit), ValidityMonths: f.loyaltyValidityMonths}
	if p.PointsPerUnit == 0 {
		p.PointsPerUnit = -1 // the domain's zero is the default
	}
	return p, nil
}
