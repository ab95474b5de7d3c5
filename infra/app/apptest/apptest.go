// Package apptest runs the whole service for end-to-end tests: a fresh
// database, the real event store, the HTTP server on a free port, an API
// key for every role, and a client that validates every exchange against
// the OpenAPI document.
package apptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/esdb/esdbtest"
	"github.com/rapport-crm/rapport/infra/http/openapitest"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// Main is a running service under test.
type Main struct {
	*app.Main
	// URL is the HTTP server's base URL.
	URL string
	// DatabaseURL is the test's own database.
	DatabaseURL string
	// Keys holds an API key per role name (writer, analyst, auditor,
	// admin); each key is named after its role.
	Keys   map[string]string
	Client *http.Client
	// Config is what the service was opened with; Restart opens it again.
	Config app.Config
}

// MustOpen starts the service on a fresh database; it stops at cleanup.
// Options adjust the configuration before it starts.
func MustOpen(tb testing.TB, options ...func(*app.Config)) *Main {
	tb.Helper()
	master := make([]byte, 32)
	if _, err := rand.Read(master); err != nil {
		tb.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("RAPPORT_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := app.Config{
		// Many test processes share one server: keep each service's pool
		// smaller than in production.
		DatabaseURL:    withPoolSize(migratedDatabase(tb), 8),
		Addr:           "127.0.0.1:0",
		MasterKey:      master,
		ServeHTTP:      true,
		RunProjections: true,
		RateLimit:      100_000,
		RateBurst:      100_000,
		Logger:         logger,
		// The reminder scheduler reads the real clock: a test that is
		// about reminders turns it on (or runs its own with a clock).
		Reminders: app.ReminderSettings{Off: true},
	}
	for _, o := range options {
		o(&cfg)
	}
	m, err := app.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Open(ctx); err != nil {
		tb.Fatal(err)
	}
	main := &Main{Main: m, DatabaseURL: cfg.DatabaseURL, Keys: map[string]string{}, Config: cfg}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := main.Main.Close(ctx); err != nil { // the running one, after a Restart
			tb.Errorf("close: %v", err)
		}
	})
	// Every answer of every end-to-end test is checked against the OpenAPI
	// document: the document is a contract, not a brochure.
	client := &http.Client{Timeout: 30 * time.Second, Transport: openapitest.Wrap(tb, http.DefaultTransport)}
	main.Client = client
	if m.HTTP != nil {
		main.URL = m.HTTP.URL()
	}
	for _, role := range []string{"writer", "analyst", "auditor", "admin"} {
		_, secret, err := m.APIKeys.Create(ctx, role, []string{role})
		if err != nil {
			tb.Fatal(err)
		}
		main.Keys[role] = secret
	}
	if cfg.RunProjections {
		main.WaitForReadModels(tb)
	}
	return main
}

// WaitForReadModels waits until every projector has created its tables
// (its first generation is active), as MustOpen does when the service runs
// its projectors. Before that, a query of a read model answers 503
// not_caught_up; a test that is not about a cold start waits instead of
// racing the projectors.
func (m *Main) WaitForReadModels(tb testing.TB) {
	tb.Helper()
	waitForGenerations(tb, m.Engine)
}

// Restart stops the service and starts it again on the same database with
// the same configuration, as a redeployment would: nothing held in memory
// survives, the API keys do. Options adjust the configuration first.
func (m *Main) Restart(tb testing.TB, options ...func(*app.Config)) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Main.Close(ctx); err != nil {
		tb.Fatalf("restart: close: %v", err)
	}
	cfg := m.Config
	for _, o := range options {
		o(&cfg)
	}
	next, err := app.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := next.Open(ctx); err != nil {
		tb.Fatalf("restart: open: %v", err)
	}
	// The cleanup of MustOpen closes m.Main: the running one from now on.
	m.Main, m.Config = next, cfg
	if next.HTTP != nil {
		m.URL = next.HTTP.URL()
	}
}

// Response is an HTTP answer, read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Map decodes the body as a JSON object.
func (r *Response) Map(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	r.JSON(tb, &m)
	return m
}

// Request describes a request for Do.
type Request struct {
	Method string
	Path   string
	// Key is the API key; empty sends none.
	Key string
	// Body is sent as JSON unless it is a []byte or string (sent as is).
	Body any
	// Header adds headers; Content-Type defaults to application/json when
	// there is a body.
	Header map[string]string
}

// Do sends a request and reads the whole answer.
func (m *Main) Do(tb testing.TB, req Request) *Response {
	tb.Helper()
	var body io.Reader
	switch b := req.Body.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(b)
	case string:
		body = bytes.NewReader([]byte(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		body = bytes.NewReader(raw)
	}
	r, err := http.NewRequest(req.Method, m.URL+req.Path, body)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if req.Key != "" {
		r.Header.Set("Authorization", "Bearer "+req.Key)
	}
	for k, v := range req.Header {
		r.Header.Set(k, v)
	}
	resp, err := m.Client.Do(r)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// Post sends a JSON body as the writer.
func (m *Main) Post(tb testing.TB, path string, body any) *Response {
	tb.Helper()
	return m.Do(tb, Request{Method: http.MethodPost, Path: path, Key: m.Keys["writer"], Body: body})
}

// Get reads as the given role.
func (m *Main) Get(tb testing.TB, role, path string) *Response {
	tb.Helper()
	return m.Do(tb, Request{Method: http.MethodGet, Path: path, Key: m.Keys[role]})
}

// WithEventStoreDB runs the service against EventStoreDB — the
// protocol-faithful test server of infra/esdb/esdbtest, driven through the
// official client — instead of the embedded Postgres store.
func WithEventStoreDB(tb testing.TB) func(*app.Config) {
	server := esdbtest.Start(tb)
	return func(c *app.Config) { c.EventStore = server.ConnectionString() }
}

// Stores lists the event stores every end-to-end behaviour must hold on.
var Stores = []struct {
	Name   string
	Option func(testing.TB) func(*app.Config)
}{
	{"postgres", func(testing.TB) func(*app.Config) { return func(*app.Config) {} }},
	{"eventstoredb", WithEventStoreDB},
}

// ForEachStore runs test against a service on each event store.
func ForEachStore(t *testing.T, test func(t *testing.T, m *Main)) {
	for _, store := range Stores {
		t.Run(store.Name, func(t *testing.T) {
			test(t, MustOpen(t, store.Option(t)))
		})
	}
}

// migratedDatabase is a new database holding the migrated schema and
// nothing else, as a first start's migrations leave it: a copy of a
// template migrated once per version of the migrations (the service's
// own Migrate then finds nothing to do), which is much cheaper than
// migrating each test's database from nothing. The migrations themselves
// are tested on empty databases (infra/postgres).
func migratedDatabase(tb testing.TB) string {
	tb.Helper()
	return pgtest.NewDatabaseFrom(tb, "migrated_"+postgres.MigrationsDigest(), func(ctx context.Context, dbURL string) error {
		pool, err := postgres.OpenPool(ctx, withPoolSize(dbURL, 2))
		if err != nil {
			return err
		}
		defer pool.Close()
		return postgres.Migrate(ctx, pool, nil)
	})
}

// withPoolSize sets pool_max_conns on a database URL.
func withPoolSize(dbURL string, n int) string {
	sep := "?"
	if strings.Contains(dbURL, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%spool_max_conns=%d", dbURL, sep, n)
}

// UpgradeToKeyed does what the first start of the keyed service on a
// legacy log does: the keyed-since mark is written at the head of the log,
// so that the unkeyed events written so far (legacy codecs in tests) stand
// for those written before the upgrade. It restarts the service, so
// m.Store and m.Codec change; call it before any keyed event exists (else
// the mark is re-created and reported, as after its removal).
func (m *Main) UpgradeToKeyed(tb testing.TB) {
	tb.Helper()
	if _, err := m.Pool.Exec(context.Background(), `DELETE FROM rapport.keyed_since`); err != nil {
		tb.Fatal(err)
	}
	m.Restart(tb)
}
