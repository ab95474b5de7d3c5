package http

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Role is what an API key may do. PRODUCT.md: writer for apps, analyst,
// auditor, admin; admin may do everything.
type Role string

const (
	RoleWriter  Role = "writer"
	RoleAnalyst Role = "analyst"
	RoleAuditor Role = "auditor"
	RoleAdmin   Role = "admin"
)

// Roles lists every role.
func Roles() []Role { return []Role{RoleWriter, RoleAnalyst, RoleAuditor, RoleAdmin} }

// Principal is the caller, as its API key says.
type Principal struct {
	// Name is the key's name: the actor recorded on events.
	Name  string
	Roles []Role
}

func (p Principal) has(allowed []Role) bool {
	if slices.Contains(p.Roles, RoleAdmin) || len(allowed) == 0 {
		return true
	}
	for _, r := range p.Roles {
		if slices.Contains(allowed, r) {
			return true
		}
	}
	return false
}

// ErrUnauthenticated is what an Authenticator returns for a key it does
// not accept (unknown or revoked).
var ErrUnauthenticated = errors.New("http: invalid API key")

// Authenticator checks an API key.
type Authenticator interface {
	Authenticate(ctx context.Context, key string) (Principal, error)
}

// handlerFunc is a route handler; its error becomes a problem answer.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// Route is one entry of the route table.
type Route struct {
	// Name identifies the route in metrics, logs and the OpenAPI document.
	Name   string
	Method string
	// Path is the gorilla/mux template.
	Path string
	// Public routes need no key; the others need one with one of Roles
	// (empty Roles: any role). Admin passes everywhere.
	Public  bool
	Roles   []Role
	handler handlerFunc
}

type contextKey int

const (
	requestIDKey contextKey = iota
	correlationIDKey
	principalKey
)

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

func correlationIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(correlationIDKey).(string)
	return id
}

func principalFrom(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey).(Principal)
	return p
}

// validHeaderID accepts ids that are safe to log and echo.
func validHeaderID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if c < '!' || c > '~' {
			return false
		}
	}
	return true
}

// withRequestIDs takes X-Request-ID and X-Correlation-ID from the client
// (or makes them) and echoes them, so a request can be followed through
// logs and into the events it caused.
func withRequestIDs(w http.ResponseWriter, r *http.Request) *http.Request {
	requestID := r.Header.Get("X-Request-ID")
	if !validHeaderID(requestID) {
		requestID = uuid.NewString()
	}
	correlationID := r.Header.Get("X-Correlation-ID")
	if !validHeaderID(correlationID) {
		correlationID = requestID
	}
	w.Header().Set("X-Request-ID", requestID)
	w.Header().Set("X-Correlation-ID", correlationID)
	ctx := context.WithValue(r.Context(), requestIDKey, requestID)
	ctx = context.WithValue(ctx, correlationIDKey, correlationID)
	return r.WithContext(ctx)
}

// statusRecorder remembers the status for logs and metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (flushing
// and deadlines for streams).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// wrap gives a route its middleware: ids, recovery, logging, metrics,
// authentication, authorisation and the rate limit.
func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r = withRequestIDs(w, r)
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				s.logger.ErrorContext(r.Context(), "http: panic", "panic", v, "stack", string(debug.Stack()))
				if rec.status == 0 {
					s.writeError(rec, r, fmt.Errorf("panic: %v", v))
				}
			}
			elapsed := time.Since(start)
			s.metrics.observe(rt.Name, r.Method, rec.status, elapsed)
			s.logger.InfoContext(r.Context(), "http request",
				"method", r.Method, "route", rt.Name, "path", r.URL.Path, "status", rec.status,
				"duration_ms", float64(elapsed.Microseconds())/1000,
				"actor", principalFrom(r.Context()).Name,
				"request_id", requestIDFrom(r.Context()), "correlation_id", correlationIDFrom(r.Context()))
		}()
		if !rt.Public {
			var err error
			if r, err = s.authorize(rec, r, rt); err != nil {
				s.writeError(rec, r, err)
				return
			}
		}
		if err := rt.handler(rec, r); err != nil {
			s.writeError(rec, r, err)
		}
	})
}

// authorize authenticates the key, checks its roles and spends a token of
// its rate limit.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, rt Route) (*http.Request, error) {
	key, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return r, newProblem(http.StatusUnauthorized, "unauthenticated", "send an API key: Authorization: Bearer <key>")
	}
	// A client that sent too many bad keys is refused before its key is
	// looked up: guessing or a misconfigured fleet must not cost the key
	// store a query per request. A key that authenticated lately still
	// passes, so that clients sharing the address are not locked out.
	// A key refused a moment ago is refused again from memory, at no
	// cost to anyone: secrets are random, so a refused one never becomes
	// valid (a new key is a new secret).
	hash := sha256.Sum256([]byte(key))
	if _, refused := s.refusedKeys.Get(hash); refused {
		return r, newProblem(http.StatusUnauthorized, "unauthenticated", "the API key is unknown or revoked")
	}
	addr := clientAddress(r)
	if wait, ok := s.authFailures.exhausted(addr); ok && !s.trustedKeys.Contains(hash) {
		p := newProblem(http.StatusTooManyRequests, "rate_limited", "too many unknown or revoked API keys from this address; slow down")
		p.retryAfter = int(math.Ceil(wait.Seconds()))
		return r, p
	}
	principal, err := s.cfg.Keys.Authenticate(r.Context(), key)
	if errors.Is(err, ErrUnauthenticated) {
		s.authFailures.spend(addr)
		s.refusedKeys.Add(hash, struct{}{})
		return r, newProblem(http.StatusUnauthorized, "unauthenticated", "the API key is unknown or revoked")
	}
	if err != nil {
		return r, fmt.Errorf("http: authenticate: %w", err)
	}
	s.trustedKeys.Add(hash, struct{}{})
	r = r.WithContext(context.WithValue(r.Context(), principalKey, principal))
	if !principal.has(rt.Roles) {
		roles := make([]string, len(rt.Roles))
		for i, role := range rt.Roles {
			roles[i] = string(role)
		}
		return r, newProblem(http.StatusForbidden, "forbidden", fmt.Sprintf("this endpoint needs the role %s (or admin)", strings.Join(roles, " or ")))
	}
	if wait, ok := s.limiter.allow(principal.Name); !ok {
		p := newProblem(http.StatusTooManyRequests, "rate_limited", "this API key sends too many requests; slow down")
		p.retryAfter = int(math.Ceil(wait.Seconds()))
		return r, p
	}
	return r, nil
}

// bearerToken reads "Bearer <key>". The scheme is case-insensitive (RFC
// 9110 §11.1), so "bearer" and "BEARER" work too.
func bearerToken(auth string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(auth), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// keyLimiter is a token bucket per API key.
type keyLimiter struct {
	mu       sync.Mutex
	limit    rate.Limit
	burst    int
	limiters map[string]*rate.Limiter
}

func newKeyLimiter(perSecond float64, burst int) *keyLimiter {
	return &keyLimiter{limit: rate.Limit(perSecond), burst: burst, limiters: map[string]*rate.Limiter{}}
}

// allow spends a token, or says how long until one is available.
func (k *keyLimiter) allow(key string) (time.Duration, bool) {
	k.mu.Lock()
	l, ok := k.limiters[key]
	if !ok {
		l = rate.NewLimiter(k.limit, k.burst)
		k.limiters[key] = l
	}
	k.mu.Unlock()
	res := l.Reserve()
	if delay := res.Delay(); delay > 0 {
		res.Cancel()
		return max(delay, time.Second), false
	}
	return 0, true
}

// httpMetrics counts requests per route and status and times them.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rapport_http_requests_total",
			Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rapport_http_request_duration_seconds",
			Help:    "HTTP request latency by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("http: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *httpMetrics) observe(route, method string, status int, elapsed time.Duration) {
	if status == 0 {
		status = http.StatusOK
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(elapsed.Seconds())
}
