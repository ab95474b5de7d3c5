// Package app assembles Rapport from its parts: the database, the event
// store chosen by configuration, the command side, the projections and the
// HTTP server. The rapport command and the end-to-end tests both run the
// service through Main, so that what is tested is what runs.
package app

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/esdb"
	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/infra/postgres"
	"github.com/rapport-crm/rapport/infra/webhooks"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/audit"
	rcadence "github.com/rapport-crm/rapport/readmodels/cadence"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/history"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
	"github.com/rapport-crm/rapport/readmodels/risk"
	"github.com/rapport-crm/rapport/readmodels/sla"
	"github.com/rapport-crm/rapport/readmodels/surveys"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// Config is the service's configuration; cmd/rapport fills it from flags
// and environment variables, which document each field.
type Config struct {
	// DatabaseURL is the PostgreSQL database for read models, keys and
	// (with the embedded store) events.
	DatabaseURL string
	// EventStore is "postgres" (embedded, the default) or an EventStoreDB
	// connection string (esdb://…).
	EventStore string
	// Addr is the HTTP listen address.
	Addr string
	// MasterKey wraps the customers' data keys: 32 bytes.
	MasterKey []byte
	// HTTP limits; zero values take the http package's defaults.
	PublicMetrics   bool
	RateLimit       float64
	RateBurst       int
	MaxBodyBytes    int64
	MinPositionWait time.Duration
	// IdempotencyWait bounds how long a retry waits for the first request
	// with its Idempotency-Key before answering 409 (default 5 s).
	IdempotencyWait time.Duration
	// IdempotencyRetention is how long Idempotency-Keys are kept: at least
	// 24 hours (PRODUCT.md), the default.
	IdempotencyRetention time.Duration
	// CommandTimeout bounds each command (default 10 s).
	CommandTimeout time.Duration
	// ReadModels tunes what the read models compute.
	ReadModels ReadModelSettings
	// ServeHTTP starts the HTTP server (false for `rapport project`).
	ServeHTTP bool
	// RunProjections runs the projectors in this process (serve and
	// project do; the tools do not, they only read their status).
	RunProjections bool
	Logger         *slog.Logger
	// Loyalty is the points policy: points per whole currency unit and
	// months of validity (zero fields: 1 point, 12 months).
	Loyalty domain.LoyaltyPolicy
	// Console configures the web console's sessions (and what other
	// features add to it).
	Console ConsoleSettings
	// PrivateReaders gives each projector its own read of the log instead
	// of the shared reader (projections.Config.PrivateReaders): only for
	// A/B measurements (RAPPORT_BENCH_PRIVATE=1).
	PrivateReaders bool
	// Committers bounds the embedded event store's append transactions in
	// flight; beyond it appends commit together (postgres.EventStoreConfig).
	// 0: the store's default; negative: no group commit.
	Committers int
	// Webhooks configures the webhook deliverer.
	Webhooks WebhookSettings
	// Reminders configures the reminder scheduler.
	Reminders ReminderSettings
	// Brokers are the URLs of the brokers the change feed is published to
	// (nats://… JetStream, amqp://… RabbitMQ).
	Brokers []string
}

func (c *Config) setDefaults() {
	if c.EventStore == "" {
		c.EventStore = "postgres"
	}
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = 10 * time.Second
	}
	if c.IdempotencyRetention == 0 {
		c.IdempotencyRetention = MinIdempotencyRetention
	}
	c.ReadModels.setDefaults()
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.DatabaseURL == "":
		return errors.New("app: DATABASE_URL is required")
	case len(c.MasterKey) != 32:
		return fmt.Errorf("app: the master key must be 32 bytes (base64 of 32 random bytes), got %d", len(c.MasterKey))
	case c.IdempotencyRetention < MinIdempotencyRetention:
		return fmt.Errorf("app: Idempotency-Keys must be kept at least %s, not %s", MinIdempotencyRetention, c.IdempotencyRetention)
	case c.EventStore != "postgres" && !strings.HasPrefix(c.EventStore, "esdb://") && !strings.HasPrefix(c.EventStore, "esdb+discover://"):
		return fmt.Errorf("app: unknown event store %q: use postgres or an esdb:// URL", c.EventStore)
	}
	// Zero cadences are the defaults (setDefaults); anything else must be
	// whole days.
	cadence := c.ReadModels.Cadence
	cadence.SetDefaults()
	if err := cadence.Validate(); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if n := c.ReadModels.MaxOutboundPerWeek; n != 0 {
		if err := rcadence.ValidMaxOutbound(n); err != nil {
			return fmt.Errorf("app: %w", err)
		}
	}
	return nil
}

// MinIdempotencyRetention is how long PRODUCT.md promises that an
// Idempotency-Key lives.
const MinIdempotencyRetention = 24 * time.Hour

// ReadModelSettings are the configurable parts of the read models.
type ReadModelSettings struct {
	// SLA are the complaint targets by severity (default PRODUCT.md's).
	SLA sla.Targets
	// RiskWeights are the churn-risk factors' points (nil: PRODUCT.md's).
	RiskWeights *risk.Weights
	// Cadence is the contact cadence by tier (zero fields: PRODUCT.md's
	// 14, 30, 90 and 180 days).
	Cadence work.Cadence
	// MaxOutboundPerWeek is the most outbound contacts in 7 days that are
	// not over-contact (0: PRODUCT.md's 3).
	MaxOutboundPerWeek int
}

func (r *ReadModelSettings) setDefaults() {
	if r.SLA == nil {
		r.SLA = sla.Defaults()
	}
	r.Cadence.SetDefaults()
	if r.MaxOutboundPerWeek == 0 {
		r.MaxOutboundPerWeek = rcadence.DefaultMaxOutboundPerWeek
	}
}

// ParseMasterKey decodes a base64 master key.
func ParseMasterKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("app: master key is not base64: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("app: master key must decode to 32 bytes, got %d", len(key))
	}
	return key, nil
}

// Main is the running service.
type Main struct {
	cfg Config

	Pool     *pgxpool.Pool
	Store    eventstore.Store
	Keyring  *postgres.Keyring
	APIKeys  *postgres.APIKeys
	Codec    *eventcodec.Codec
	Commands commands.Handler
	// Routing sets the complaint routing rules.
	Routing  *commands.Routing
	HTTP     *rhttp.Server
	Registry *prometheus.Registry
	Engine   *projections.Engine
	// Goals handles the goal commands.
	Goals *commands.Goals
	// Webhooks keeps the webhook subscriptions; Deliverer sends them.
	Webhooks  *webhooks.Store
	Deliverer *webhooks.Deliverer

	closers         []func(context.Context) error
	projectionsDone chan struct{}
}

// New returns the service, not yet running.
func New(cfg Config) (*Main, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Main{cfg: cfg}, nil
}

// Open connects to everything and starts serving. On error, what was
// opened is closed again.
func (m *Main) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			_ = m.Close(context.WithoutCancel(ctx))
		}
	}()
	logger := m.cfg.Logger
	if m.Pool, err = postgres.OpenPool(ctx, m.cfg.DatabaseURL); err != nil {
		return err
	}
	m.closers = append(m.closers, func(context.Context) error { m.Pool.Close(); return nil })
	if err := postgres.Migrate(ctx, m.Pool, logger); err != nil {
		return err
	}
	if err := m.openEventStore(ctx); err != nil {
		return err
	}
	if m.Keyring, err = postgres.NewKeyring(m.Pool, m.cfg.MasterKey, postgres.KeyringConfig{FlushedByAppends: m.embeddedEvents()}); err != nil {
		return err
	}
	// Before anything reads or writes a key: a process with another master
	// key than the database's refuses to start.
	if err := m.Keyring.VerifyMasterKey(ctx); err != nil {
		return fmt.Errorf("app: refusing to start: %w", err)
	}
	m.watchMasterKey(ctx)
	// The chain key derives from the deployment's index secret, which the
	// database keeps wrapped by the master key: a rotation of the master
	// key re-wraps it without changing it, so chains written before the
	// rotation still verify after it.
	chainKey, err := eventcodec.DeriveChainKey(m.Keyring.IndexSecret())
	if err != nil {
		return err
	}
	// The keyed-since mark sits beside the key check, in Postgres, whatever
	// the event store: an unkeyed event after it was written without the
	// key, so a stream rewritten whole under the public rule cannot pass
	// for one written before the upgrade.
	keyedSince, err := postgres.EnsureKeyedSince(ctx, m.Pool, m.Store, chainKey, logger)
	if err != nil {
		return err
	}
	if keyedSince.Problem != "" {
		logger.Error("audit: the keyed-since mark cannot be trusted; verification rejects every unkeyed event", "problem", keyedSince.Problem)
	}
	m.Codec = eventcodec.New(domain.NewRegistry(), m.Keyring, eventcodec.WithChainKey(chainKey), eventcodec.WithKeyedSince(keyedSince))
	m.APIKeys = postgres.NewAPIKeys(m.Pool)
	m.Registry = prometheus.NewRegistry()
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := newCommandMetrics(m.Registry)
	customers, err := commands.NewCustomers(commands.Config{
		Store:   m.Store,
		Codec:   m.Codec,
		Emails:  m.emailIndex(),
		Keys:    m.Keyring,
		Metrics: metrics,
		Timeout: m.cfg.CommandTimeout,
		Logger:  logger,
		Loyalty: m.cfg.Loyalty,
	})
	if err != nil {
		return err
	}
	m.Commands = commands.Decorate(customers, commands.WithLogging(logger), commands.WithMetrics(metrics))
	m.startErasureSweep(ctx, customers)
	if err := m.openGoals(); err != nil {
		return err
	}

	projectors, err := Projectors()
	if err != nil {
		return err
	}
	projectors = m.withRouting(projectors, customers)
	if m.Engine, err = projections.New(projections.Config{
		Pool:       m.Pool,
		Store:      m.Store,
		Codec:      m.Codec,
		Projectors: projectors,
		Registerer: m.Registry,
		Logger:     logger,
		// The shared reader unless an A/B measurement asks otherwise.
		PrivateReaders: m.cfg.PrivateReaders,
	}); err != nil {
		return err
	}
	if m.cfg.RunProjections {
		m.startProjections(ctx)
	}
	if err := m.openWebhooks(ctx); err != nil {
		return err
	}
	if err := m.startBrokers(ctx); err != nil {
		return err
	}
	if err := m.startReminders(ctx); err != nil {
		return err
	}
	if !m.cfg.ServeHTTP {
		return nil
	}
	httpCfg := rhttp.Config{
		Addr:            m.cfg.Addr,
		Commands:        m.Commands,
		Auditor:         audit.New(m.Store, m.Codec),
		Customers:       m.customerQueries(),
		Contacts:        contacts.NewQueries(m.Pool),
		Complaints:      complaints.NewQueries(m.Pool, m.cfg.ReadModels.SLA),
		Surveys:         surveys.NewQueries(m.Pool),
		Lifecycles:      lifecycle.NewQueries(m.Pool),
		Analytics:       m.analyticsQueries(),
		Work:            m.workQueries(),
		History:         history.NewQueries(m.Pool),
		Value:           m.valueQueries(),
		Projections:     m.Engine,
		Keys:            apiKeyAuthenticator{m.APIKeys},
		Idempotency:     idempotencyStore{postgres.NewIdempotencyKeys(m.Pool)},
		IdempotencyWait: m.cfg.IdempotencyWait,
		// A request holds its key for at most its command's timeout; twice
		// that before a retry may take over a claim whose process died.
		IdempotencyLease: 2*m.cfg.CommandTimeout + 5*time.Second,
		Registry:         m.Registry,
		PublicMetrics:    m.cfg.PublicMetrics,
		RateLimit:        m.cfg.RateLimit,
		RateBurst:        m.cfg.RateBurst,
		MaxBodyBytes:     m.cfg.MaxBodyBytes,
		MinPositionWait:  m.cfg.MinPositionWait,
		Readiness: []rhttp.Check{
			{Name: "postgres", Check: m.Pool.Ping},
			{Name: "event store", Check: m.pingEventStore},
			{Name: "projectors", Check: m.projectorsRunning},
		},
		Logger:       logger,
		Feed:         m.feedQueries(),
		Routing:      m.Routing,
		RoutingRules: m.routingQueries(),
		Webhooks:     webhookAdmin{Store: m.Webhooks, feed: m.feedQueries(), deliverer: m.Deliverer},
	}
	m.wireGoals(&httpCfg)
	if httpCfg.Console, err = m.consoleHandler(httpCfg); err != nil {
		return err
	}
	if m.HTTP, err = rhttp.NewServer(httpCfg); err != nil {
		return err
	}
	if err := m.HTTP.Open(); err != nil {
		return err
	}
	m.closers = append(m.closers, m.HTTP.Close)
	m.startIdempotencyCleanup(ctx)
	logger.Info("rapport: serving", "url", m.HTTP.URL(), "event_store", m.eventStoreName())
	return nil
}

func (m *Main) openEventStore(ctx context.Context) error {
	if m.cfg.EventStore != "postgres" {
		store, err := esdb.New(esdb.Config{ConnectionString: m.cfg.EventStore, Logger: m.cfg.Logger})
		if err != nil {
			return err
		}
		m.Store = store
		m.closers = append(m.closers, func(context.Context) error { return store.Close() })
		return nil
	}
	store, err := postgres.NewEventStore(m.Pool, postgres.EventStoreConfig{Logger: m.cfg.Logger, Committers: m.cfg.Committers})
	if err != nil {
		return err
	}
	m.Store = store
	m.closers = append(m.closers, func(context.Context) error { store.Close(); return nil })
	return nil
}

func (m *Main) eventStoreName() string {
	if m.cfg.EventStore == "postgres" {
		return "postgres (embedded)"
	}
	return "eventstoredb"
}

// Projectors returns every read model's projector. No setting changes
// what they build: churn risk and SLA targets are judged at query time, so
// changing them needs no rebuild.
func Projectors() ([]projections.Projector, error) {
	directory, err := customers.NewProjector(customers.Config{})
	if err != nil {
		return nil, err
	}
	projectors := []projections.Projector{directory, history.NewProjector()}
	projectors = append(projectors, activityProjectors()...)
	projectors = append(projectors, goalProjectors()...)
	projectors = append(projectors, rollupProjectors()...)
	projectors = append(projectors, valueProjectors()...)
	projectors = append(projectors, feedProjectors()...)
	return projectors, nil
}

// startProjections runs the engine until Close, which waits for it to
// commit its batches.
func (m *Main) startProjections(ctx context.Context) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	m.projectionsDone = done
	go func() {
		defer close(done)
		if err := m.Engine.Run(ctx); err != nil {
			m.cfg.Logger.Error("rapport: projections stopped", "err", err)
		}
	}()
	m.closers = append(m.closers, func(closeCtx context.Context) error {
		cancel()
		select {
		case <-done:
			return nil
		case <-closeCtx.Done():
			return fmt.Errorf("app: projections did not stop in time: %w", closeCtx.Err())
		}
	})
}

// projectorsRunning is ready when this process runs its projection
// engine. A projector with parked streams, or even one stopped on a
// message it cannot read, does not make the service unready: the API still
// serves, every other customer is current, and GET /v1/projections and the
// metrics show what is degraded.
func (m *Main) projectorsRunning(ctx context.Context) error {
	if !m.cfg.RunProjections {
		return nil // another process (rapport project) runs them
	}
	select {
	case <-m.projectionsDone:
		return errors.New("the projection engine is not running")
	default:
	}
	return nil
}

// pingEventStore checks that the event store answers a read.
func (m *Main) pingEventStore(ctx context.Context) error {
	_, err := m.Store.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
	return err
}

// Close stops serving (letting requests in flight finish) and disconnects,
// in the reverse order of Open.
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	for i := len(m.closers) - 1; i >= 0; i-- {
		if err := m.closers[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	m.closers = nil
	return errors.Join(errs...)
}

// apiKeyAuthenticator adapts the key store to the HTTP layer.
type apiKeyAuthenticator struct{ keys *postgres.APIKeys }

func (a apiKeyAuthenticator) Authenticate(ctx context.Context, secret string) (rhttp.Principal, error) {
	key, err := a.keys.Authenticate(ctx, secret)
	if errors.Is(err, postgres.ErrInvalidAPIKey) {
		return rhttp.Principal{}, rhttp.ErrUnauthenticated
	}
	if err != nil {
		return rhttp.Principal{}, err
	}
	roles := make([]rhttp.Role, len(key.Roles))
	for i, r := range key.Roles {
		roles[i] = rhttp.Role(r)
	}
	return rhttp.Principal{Name: key.Name, Roles: roles}, nil
}
