// Package pgtest gives each test its own empty PostgreSQL database, so that
// tests and test packages (which `go test ./...` runs as parallel processes)
// never see each other's data and leave nothing behind.
//
// The server comes from pgboot.Ensure with pgboot.TestConfig, once per test
// process:
// DATABASE_URL if set, else a server on localhost:5432 that lets us in
// without a password, else a throwaway cluster shared by every test process
// of the current OS user, in pgboot.DefaultDataDir("rapport-pgtest")
// (/tmp/rapport-pgtest-<uid>, listening on 127.0.0.1:55433 unless that port
// is taken; psql -h 127.0.0.1 -p 55433 -U postgres looks inside). That
// cluster runs with durability off and is left running after the tests, so
// the next run needs no start-up; it is meant to be lost, and the one line
// printed when it is started says how to stop it:
//
//	kill -INT $(head -n1 /tmp/rapport-pgtest-$(id -u)/pgdata/postmaster.pid)
//
// and `rm -rf /tmp/rapport-pgtest-$(id -u)` deletes it.
//
// Every database a test gets is dropped when the test ends. The one kind
// kept is the template NewDatabaseFrom copies (rapport_tpl_…, one per
// version of what it holds): a cache for later runs, free to drop.
//
// When no server can be found or started, tests fail with pgboot's message
// saying what to install or set: a test that needs a database and silently
// skips would make a green run that tested nothing.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/infra/pgboot"
)

const (
	// dbPrefix starts every test database's name, so that leftovers of a
	// killed test run are easy to recognise and drop.
	dbPrefix = "rapport_test_"
	// ensureTimeout covers the worst case: installing PostgreSQL with apt-get.
	ensureTimeout = 10 * time.Minute
	// retryAfter is how long a failure to get a server is remembered. Long
	// enough that the tests of one package run fail fast with the same
	// message instead of each retrying everything; short enough that an
	// error is not final for a long-running process.
	retryAfter = 30 * time.Second
	// poolMaxConns bounds each NewPool: many test processes with many
	// parallel tests share one server, whose max_connections is 200.
	poolMaxConns = 4
)

// shared is the per-process server: Ensure runs once per test binary, not
// once per test, but a failure is retried after retryAfter.
var shared struct {
	mu     sync.Mutex
	srv    *pgboot.Server
	err    error
	failed time.Time
}

// server returns the process's server, finding or starting it on first use.
// Callers that arrive while another is in Ensure wait for its result.
func server(ctx context.Context) (*pgboot.Server, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		return shared.srv, nil
	}
	if shared.err != nil && time.Since(shared.failed) < retryAfter {
		return nil, shared.err
	}
	cfg := pgboot.TestConfig()
	// Only warnings: the normal case needs no words, and passing tests'
	// output is hidden anyway.
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := pgboot.Ensure(ctx, cfg)
	if err != nil {
		shared.err, shared.failed = err, time.Now()
		return nil, err
	}
	if srv.Started {
		fmt.Fprintf(os.Stderr, "pgtest: started a throwaway PostgreSQL %d for tests at %s; it stays up for later runs (stop it: %s)\n",
			srv.Version, srv.DataDir, srv.StopHint())
	}
	shared.srv, shared.err = srv, nil
	return srv, nil
}

// forget drops the cached server after it stopped answering (someone
// stopped the shared cluster between two tests), so that the next call
// finds or starts one again.
func forget(srv *pgboot.Server) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == srv {
		shared.srv = nil
	}
}

// NewDatabase creates a new, empty database with a unique name
// (rapport_test_<random>) and returns its URL. The database is dropped when
// the test and its subtests finish, even if connections to it are still
// open. If no server can be found or started, the test fails with what to
// install or set.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ensureTimeout)
	defer cancel()

	name := dbPrefix + randomSuffix()
	srv, dbURL, err := createDatabase(ctx, name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// Not the test's context: it is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pgboot.DropDatabase(ctx, srv.URL, name); err != nil {
			tb.Errorf("pgtest: database %s was left behind: %v", name, err)
		}
	})
	return dbURL
}

// createDatabase creates name on the process's server. If the server has
// gone away since it was found, it is found or started once more.
func createDatabase(ctx context.Context, name string) (*pgboot.Server, string, error) {
	for attempt := 1; ; attempt++ {
		srv, err := server(ctx)
		if err != nil {
			return nil, "", err
		}
		dbURL, err := pgboot.CreateDatabase(ctx, srv.URL, name)
		if err == nil {
			return srv, dbURL, nil
		}
		if attempt == 2 || serverAnswered(err) {
			return nil, "", fmt.Errorf("pgtest: on %s: %w", srv.Source, err)
		}
		forget(srv)
	}
}

// NewPool returns a pool on a new database from NewDatabase, closed when the
// test finishes. It holds at most 4 connections, because every test process
// shares one server; a test that needs more makes its own pool from
// NewDatabase's URL.
func NewPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	dbURL := NewDatabase(tb)
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	cfg.MaxConns = poolMaxConns
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("pgtest: open pool on %s: %v", pgboot.Redact(dbURL), err)
	}
	// Registered after NewDatabase's cleanup, so it runs before it: the
	// pool is closed before its database is dropped.
	tb.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		tb.Fatalf("pgtest: ping %s: %v", pgboot.Redact(dbURL), err)
	}
	return pool
}

// serverAnswered reports whether err is the server's own refusal (so
// retrying elsewhere would not help) rather than a failure to reach it.
func serverAnswered(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}

// randomSuffix is 64 random bits in hex: enough that parallel test
// processes never pick the same name.
func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
