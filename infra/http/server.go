// Package http is Rapport's HTTP interface: the command and query API
// under /v1, problem+json errors, API-key authentication with roles, rate
// limits, metrics and health. It translates between HTTP and the
// application layer and holds no business rule.
package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/mux"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rapport-crm/rapport/commands"
)

// Config configures the server. Zero values take the documented defaults.
type Config struct {
	// Addr is where to listen. Default ":8080".
	Addr string
	// Commands handles every command.
	Commands commands.Handler
	// Auditor answers the auditors' endpoints over the event log.
	Auditor Auditor
	// Customers reads the customer directory and scores churn risk.
	Customers CustomerQueries
	// Contacts, Complaints and Surveys read a customer's contacts and
	// follow-ups, complaints and surveys; each serves its routes when set.
	// Lifecycles, which says whether a customer exists (their 404s), is
	// required with any of them.
	Contacts   ContactQueries
	Complaints ComplaintQueries
	Surveys    SurveyQueries
	Lifecycles LifecycleQueries
	// Analytics answers the analysts' figures.
	Analytics AnalyticsQueries
	// Work answers the work queues (/v1/work/*); they are served when set.
	Work WorkQueries
	// History reads the audit-history read model.
	History HistoryQueries
	// Projections reports on and controls the projectors and serves
	// min_position waits.
	Projections Projections
	// Keys authenticates API keys.
	Keys Authenticator
	// Idempotency keeps the first answer to each Idempotency-Key; without
	// it, only the command side's cache of recent commands recognises a
	// retry.
	Idempotency IdempotencyStore
	// IdempotencyWait bounds how long a retry waits for the first request
	// with its key to finish before it answers 409 idempotency_in_flight.
	// Default 5 s.
	IdempotencyWait time.Duration
	// IdempotencyLease is how long a request may hold its key without
	// answering before a retry takes over (its process died). It must
	// exceed the longest command. Default 1 minute.
	IdempotencyLease time.Duration
	// Readiness lists what /readyz checks.
	Readiness []Check
	// Registry receives the HTTP metrics and is served at /metrics.
	Registry *prometheus.Registry
	// PublicMetrics serves /metrics without a key (for a scraper inside
	// the network). Default false: /metrics needs an admin key.
	PublicMetrics bool
	// MaxBodyBytes bounds request bodies. Default 1 MiB.
	MaxBodyBytes int64
	// RateLimit is each key's sustained requests per second, RateBurst its
	// burst. Defaults 200 and 400.
	RateLimit float64
	RateBurst int
	// AuthFailureRate is how many unknown or revoked API keys a client
	// address may send per second, AuthFailureBurst how many at once, before
	// its requests are 429 without asking the key store: a flood of bad
	// keys must not load the database for everyone. The address is the
	// connection's (no proxy header is trusted). Defaults 1 and 20.
	// AuthFailureAddresses bounds how many addresses are tracked (default
	// 10 000; the idle ones are forgotten first).
	AuthFailureRate      float64
	AuthFailureBurst     int
	AuthFailureAddresses int
	// MinPositionWait bounds how long a query waits for min_position.
	// Default 5 s.
	MinPositionWait time.Duration
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout bound
	// slow clients. Defaults 5 s, 30 s, 60 s, 120 s. Streaming answers
	// extend their own write deadline.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	Logger            *slog.Logger
	// Goals reads and judges goals and GoalCommands handles their
	// commands: the /v1/goals routes are served when both are set.
	// GoalAuditor reads a goal's history (GET /v1/goals/{id}/history).
	Goals        GoalQueries
	GoalCommands GoalHandler
	GoalAuditor  GoalAuditor
	// Console, when set, serves the web console under /console/
	// (infra/console); it authenticates with its own session cookies.
	Console http.Handler
	// Staff computes the staff scorecards (GET /v1/analytics/staff, served
	// when set).
	Staff StaffQueries
	// Value answers customers' value (RFM), loyalty points and the value
	// figures; they are served when set.
	Value ValueQueries
	// Feed reads the change feed (GET /v1/feed); served when set.
	Feed FeedQueries
	// Routing sets and RoutingRules reads the complaint routing rules
	// (/v1/routing/complaints, admin); served when both are set.
	Routing      RoutingCommands
	RoutingRules RoutingQueries
	// Webhooks manages webhook subscriptions (/v1/webhooks, admin).
	Webhooks WebhookAdmin
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.RateLimit == 0 {
		c.RateLimit = 200
	}
	if c.RateBurst == 0 {
		c.RateBurst = 400
	}
	if c.AuthFailureRate == 0 {
		c.AuthFailureRate = 1
	}
	if c.AuthFailureBurst == 0 {
		c.AuthFailureBurst = 20
	}
	if c.AuthFailureAddresses == 0 {
		c.AuthFailureAddresses = 10_000
	}
	if c.MinPositionWait == 0 {
		c.MinPositionWait = 5 * time.Second
	}
	if c.IdempotencyWait == 0 {
		c.IdempotencyWait = 5 * time.Second
	}
	if c.IdempotencyLease == 0 {
		c.IdempotencyLease = time.Minute
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = 5 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 60 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 120 * time.Second
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Commands == nil:
		return errors.New("http: Commands is required")
	case c.Keys == nil:
		return errors.New("http: Keys is required")
	case c.MaxBodyBytes < 1 || c.RateLimit <= 0 || c.RateBurst < 1:
		return errors.New("http: MaxBodyBytes, RateLimit and RateBurst must be positive")
	case c.AuthFailureRate <= 0 || c.AuthFailureBurst < 1 || c.AuthFailureAddresses < 1:
		return errors.New("http: AuthFailureRate, AuthFailureBurst and AuthFailureAddresses must be positive")
	case (c.Contacts != nil || c.Complaints != nil || c.Surveys != nil) && c.Lifecycles == nil:
		return errors.New("http: Lifecycles is required with Contacts, Complaints or Surveys")
	}
	return nil
}

// Check is one readiness check.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Server serves the API.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	router  *mux.Router
	handler http.Handler
	routes  []Route
	limiter *keyLimiter
	// authFailures limits unknown keys per client address.
	authFailures *addrLimiter
	// refusedKeys remembers the hashes of keys just refused.
	refusedKeys *expirable.LRU[[32]byte, struct{}]
	// trustedKeys remembers the hashes of keys that authenticated lately,
	// so that they pass an address refused for bad keys: behind a shared
	// NAT one misconfigured client must not lock out its neighbours. It
	// only skips the address limit; the key is still authenticated (and
	// a revocation still applies) on every request.
	trustedKeys *expirable.LRU[[32]byte, struct{}]
	metrics     *httpMetrics
	server      *http.Server
	listener    net.Listener
	// streams ends the long-lived answers (the feed's event stream) at
	// shutdown.
	streams *streamCloser
}

// NewServer builds the server; Open starts it.
func NewServer(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, router: mux.NewRouter(), limiter: newKeyLimiter(cfg.RateLimit, cfg.RateBurst),
		authFailures: newAddrLimiter(cfg.AuthFailureRate, cfg.AuthFailureBurst, cfg.AuthFailureAddresses),
		refusedKeys:  expirable.NewLRU[[32]byte, struct{}](10_000, nil, time.Minute),
		trustedKeys:  expirable.NewLRU[[32]byte, struct{}](10_000, nil, time.Hour),
		streams:      newStreamCloser()}
	var err error
	if s.metrics, err = newHTTPMetrics(cfg.Registry); err != nil {
		return nil, err
	}
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		methods := []string{rt.Method}
		if rt.Method == http.MethodGet {
			// HEAD is GET without the body (RFC 9110 §9.3.2); net/http
			// drops what the handler writes.
			methods = append(methods, http.MethodHead)
		}
		s.router.Handle(rt.Path, s.wrap(rt)).Methods(methods...).Name(rt.Name)
	}
	s.mountConsole()
	// mux would answer an unclean path (//, /./) with a redirect for every
	// method, which turns a POST into a GET in most clients; cleanPaths
	// decides instead.
	s.router.SkipClean(true)
	s.router.NotFoundHandler = s.fallback(http.StatusNotFound, "route_not_found", "no such endpoint")
	s.router.MethodNotAllowedHandler = s.methodNotAllowed()
	s.handler = s.cleanPaths(s.router)
	s.server = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	s.server.RegisterOnShutdown(s.streams.close)
	return s, nil
}

// Handler returns the server's handler, for tests that drive it directly.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes returns the route table (the role-matrix test walks it).
func (s *Server) Routes() []Route { return slices.Clone(s.routes) }

// Open starts listening and serving in the background.
func (s *Server) Open() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("http: listen on %s: %w", s.cfg.Addr, err)
	}
	s.listener = ln
	go func() {
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("http: serve", "err", err)
		}
	}()
	return nil
}

// URL is where the server listens, once open.
func (s *Server) URL() string {
	addr := s.listener.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "localhost"
	}
	return fmt.Sprintf("http://%s", net.JoinHostPort(host, fmt.Sprint(addr.Port)))
}

// Close stops accepting requests and waits, up to ctx, for those in flight.
func (s *Server) Close(ctx context.Context) error {
	if err := s.server.Shutdown(ctx); err != nil {
		return fmt.Errorf("http: shutdown: %w", err)
	}
	return nil
}

func (s *Server) fallback(status int, reason, detail string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = withRequestIDs(w, r)
		s.writeError(w, r, newProblem(status, reason, detail))
	})
}

// metricsHandler serves the Prometheus registry.
func (s *Server) metricsHandler() handlerFunc {
	h := promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{Registry: s.cfg.Registry})
	return func(w http.ResponseWriter, r *http.Request) error {
		h.ServeHTTP(w, r)
		return nil
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz answers 200 when every check passes, 503 naming those that fail.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	type result struct {
		Name  string `json:"name"`
		OK    bool   `json:"ok"`
		Error string `json:"error,omitempty"`
	}
	results := make([]result, len(s.cfg.Readiness))
	ready := true
	for i, c := range s.cfg.Readiness {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		err := c.Check(ctx)
		cancel()
		results[i] = result{Name: c.Name, OK: err == nil}
		if err != nil {
			results[i].Error = err.Error()
			ready = false
		}
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ready, "checks": results})
	return nil
}
