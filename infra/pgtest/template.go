package pgtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rapport-crm/rapport/infra/pgboot"
)

// templatePrefix starts the name of every template database. A template
// is a cache: it is kept for later test processes and runs (one per key,
// so one per version of what prepare builds), and dropping one costs only
// the next test process the time to build it again:
//
//	psql -h 127.0.0.1 -U postgres -c 'DROP DATABASE rapport_tpl_…'
const templatePrefix = "rapport_tpl_"

// templates remembers, per process, the templates known to exist.
var templates sync.Map // template name → struct{}

// NewDatabaseFrom is NewDatabase for a database that starts as a copy of a
// template instead of empty: the template named by key is built once per
// server, by prepare on a new database of its own, and every later call
// of any test process copies it (CREATE DATABASE … TEMPLATE), which is
// much cheaper than running prepare again. key must change whenever what
// prepare builds does (a digest of the migrations, say); at most 40 bytes
// of letters, digits and underscores. prepare must close its connections
// to the database before it returns.
//
// The copy is dropped when the test finishes, as with NewDatabase; the
// template stays (see templatePrefix).
func NewDatabaseFrom(tb testing.TB, key string, prepare func(ctx context.Context, dbURL string) error) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ensureTimeout)
	defer cancel()
	template := templatePrefix + key
	if !validKey(key) {
		tb.Fatalf("pgtest: template key %q: want 1 to 40 letters, digits or underscores", key)
	}
	name := dbPrefix + randomSuffix()
	var srv *pgboot.Server
	for attempt := 1; ; attempt++ {
		var err error
		if srv, err = server(ctx); err != nil {
			tb.Fatal(err)
		}
		if err = ensureTemplate(ctx, srv, template, prepare); err == nil {
			err = copyDatabase(ctx, srv.URL, template, name)
		}
		if err == nil {
			break
		}
		var pgErr *pgconn.PgError
		if attempt < 3 && errors.As(err, &pgErr) && pgErr.Code == "3D000" {
			// invalid_catalog_name: the template was dropped since we
			// saw it; build it again.
			templates.Delete(template)
			continue
		}
		tb.Fatalf("pgtest: on %s: database from template %s: %v", srv.Source, template, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pgboot.DropDatabase(ctx, srv.URL, name); err != nil {
			tb.Errorf("pgtest: database %s was left behind: %v", name, err)
		}
	})
	dbURL, err := pgboot.DatabaseURL(srv.URL, name)
	if err != nil {
		tb.Fatal(err)
	}
	return dbURL
}

// templateBuild serialises the builds of one process: its tests wait for
// the one build instead of each making its own.
var templateBuild sync.Mutex

// ensureTemplate builds template on srv unless it exists. The build runs
// on a database of its own, renamed to template once prepare succeeded,
// so that no process ever copies a half-built template; when another
// process renamed its build first, ours is dropped.
func ensureTemplate(ctx context.Context, srv *pgboot.Server, template string, prepare func(context.Context, string) error) error {
	if _, ok := templates.Load(template); ok {
		return nil
	}
	templateBuild.Lock()
	defer templateBuild.Unlock()
	if _, ok := templates.Load(template); ok {
		return nil
	}
	conn, err := pgx.Connect(ctx, srv.URL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, template).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		build := "rapport_tplbuild_" + randomSuffix()
		dbURL, err := pgboot.CreateDatabase(ctx, srv.URL, build)
		if err != nil {
			return err
		}
		if err := prepare(ctx, dbURL); err != nil {
			_ = pgboot.DropDatabase(context.WithoutCancel(ctx), srv.URL, build)
			return fmt.Errorf("prepare: %w", err)
		}
		rename := "ALTER DATABASE " + pgx.Identifier{build}.Sanitize() + " RENAME TO " + pgx.Identifier{template}.Sanitize()
		err = retryInUse(ctx, func() error { _, err := conn.Exec(ctx, rename); return err })
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "42P04": // duplicate_database: another process was first
			_ = pgboot.DropDatabase(context.WithoutCancel(ctx), srv.URL, build)
		case err != nil:
			_ = pgboot.DropDatabase(context.WithoutCancel(ctx), srv.URL, build)
			return fmt.Errorf("rename %s to %s: %w", build, template, err)
		}
	}
	templates.Store(template, struct{}{})
	return nil
}

// copyDatabase creates name as a copy of template.
func copyDatabase(ctx context.Context, serverURL, template, name string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	create := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	return retryInUse(ctx, func() error { _, err := conn.Exec(ctx, create); return err })
}

// retryInUse runs f again, for a few seconds, while it fails with
// object_in_use: a session on the database that has just closed (the
// server ends its backend a moment after the client hangs up).
func retryInUse(ctx context.Context, f func() error) error {
	for delay := 10 * time.Millisecond; ; delay *= 2 {
		err := f()
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || delay > 5*time.Second {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
	}
}

func validKey(key string) bool {
	if key == "" || len(key) > 40 {
		return false
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
