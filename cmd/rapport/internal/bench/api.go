package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// api sends requests to the service.
type api struct {
	base     string
	key      string
	auditKey string
	client   *http.Client
	// Which per-customer read endpoints the service serves (preflight).
	directory bool // GET /v1/customers/{id}
	history   bool // GET /v1/customers/{id}/history
	loyalty   bool // GET /v1/customers/{id}/loyalty
}

// lagPath is the query that waits for a command at position to be
// reflected: the customer from the directory, else its audit history;
// empty when the service serves neither.
func (a *api) lagPath(customerID string, position uint64) string {
	switch {
	case a.directory:
		return "/v1/customers/" + customerID + "?min_position=" + strconv.FormatUint(position, 10)
	case a.history:
		return "/v1/customers/" + customerID + "/history?limit=1&min_position=" + strconv.FormatUint(position, 10)
	}
	return ""
}

// lagEndpoint names the lag query in the report.
func (a *api) lagEndpoint() string {
	switch {
	case a.directory:
		return "GET /v1/customers/{id}?min_position=N"
	case a.history:
		return "GET /v1/customers/{id}/history?limit=1&min_position=N"
	}
	return ""
}

func newAPI(cfg Config) *api {
	return &api{base: cfg.URL, key: cfg.Key, auditKey: cfg.AuditKey, client: cfg.HTTPClient}
}

func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// answer is an HTTP answer read whole.
type answer struct {
	status     int
	header     http.Header
	body       []byte
	retryAfter time.Duration
	took       time.Duration
}

// problem is the part of an RFC 9457 answer the bench looks at.
type problem struct {
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

func (a answer) problem() problem {
	var p problem
	_ = json.Unmarshal(a.body, &p)
	return p
}

// do sends one request; an error is a transport error (no answer).
func (a *api) do(ctx context.Context, method, path, key string, body []byte, header map[string]string) (answer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	ans := answer{status: resp.StatusCode, header: resp.Header, body: raw}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		ans.retryAfter = time.Duration(s) * time.Second
	}
	return ans, nil
}

// get reads with the audit key, waiting out 503s (a min_position wait that
// ran out, a store briefly away), 429s (after Retry-After) and transport
// errors until limit has passed. answer.took is the last attempt's time.
func (a *api) get(ctx context.Context, path string, limit time.Duration) (answer, error) {
	return a.read(ctx, path, nil, limit)
}

func (a *api) read(ctx context.Context, path string, header map[string]string, limit time.Duration) (answer, error) {
	deadline := time.Now().Add(limit)
	pause := 50 * time.Millisecond
	for {
		start := time.Now()
		ans, err := a.do(ctx, http.MethodGet, path, a.auditKey, nil, header)
		ans.took = time.Since(start)
		if err == nil && ans.status != http.StatusServiceUnavailable && ans.status != http.StatusTooManyRequests {
			return ans, nil
		}
		if ctx.Err() != nil {
			return ans, ctx.Err()
		}
		if time.Now().After(deadline) {
			if err != nil {
				return ans, fmt.Errorf("GET %s: %w", path, err)
			}
			return ans, nil
		}
		wait := pause
		if ans.status == http.StatusTooManyRequests && ans.retryAfter > 0 {
			wait = ans.retryAfter
		}
		if !sleep(ctx, wait) {
			return ans, ctx.Err()
		}
		pause = min(2*pause, time.Second)
	}
}

// preflight checks that the service answers and takes the keys.
func (a *api) preflight(ctx context.Context) error {
	ans, err := a.do(ctx, http.MethodGet, "/healthz", "", nil, nil)
	if err != nil {
		return fmt.Errorf("bench: the service does not answer at %s: %w (start it with `make run`, or pass --url)", a.base, err)
	}
	if ans.status != http.StatusOK {
		return fmt.Errorf("bench: %s/healthz answered %d", a.base, ans.status)
	}
	for _, k := range []struct{ name, key string }{{"--key", a.key}, {"audit key", a.auditKey}} {
		ans, err := a.do(ctx, http.MethodGet, "/openapi.json", k.key, nil, nil)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if ans.status == http.StatusUnauthorized {
			return fmt.Errorf("bench: the service does not accept the API key (%s): %s", k.name, ans.problem().Detail)
		}
	}
	// Which read endpoints exist: an unknown customer is a 404 naming the
	// customer (or an empty history) where they do, route_not_found or 405
	// where they do not.
	const nobody = "/v1/customers/00000000-0000-0000-0000-000000000000"
	for _, probe := range []struct {
		path   string
		served *bool
	}{{nobody, &a.directory}, {nobody + "/history", &a.history}, {nobody + "/loyalty", &a.loyalty}} {
		ans, err := a.do(ctx, http.MethodGet, probe.path, a.auditKey, nil, nil)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if ans.status == http.StatusForbidden || ans.status == http.StatusUnauthorized {
			return fmt.Errorf("bench: GET %s answered %d: the audit key needs the auditor or admin role (%s)", probe.path, ans.status, ans.problem().Detail)
		}
		*probe.served = !notServed(ans)
	}
	ans, err = a.do(ctx, http.MethodGet, nobody+"/events", a.auditKey, nil, nil)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if notServed(ans) {
		return errors.New("bench: the service does not serve GET /v1/customers/{id}/events, which verification reads")
	}
	return nil
}

// notServed reports an answer saying the endpoint does not exist here (as
// opposed to a resource that does not).
func notServed(ans answer) bool {
	if ans.status == http.StatusMethodNotAllowed {
		return true
	}
	return ans.status == http.StatusNotFound && ans.problem().Reason == "route_not_found"
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

var errInterrupted = errors.New("bench: interrupted")
