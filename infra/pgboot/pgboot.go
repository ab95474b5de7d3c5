// Package pgboot finds or starts the PostgreSQL server that Rapport uses in
// development and tests, so that `make run` and `make test` work on a fresh
// machine that has nothing but Go, as well as on a machine that already runs
// PostgreSQL.
//
// Ensure tries, in order:
//
//	a. DATABASE_URL (Config.DatabaseURL), when set: it must answer, and
//	   nothing else is tried, so that a wrong URL is an error rather than
//	   being silently replaced by another server;
//	b. a server on localhost:5432 that lets us in without a password as
//	   "postgres" or as the current OS user (a server that answers but wants
//	   a password, like the distribution's, is passed over with an
//	   informational note);
//	c. a dev cluster of our own in Config.DataDir, made with the installed
//	   initdb and started with pg_ctl on 127.0.0.1 with trust auth: it
//	   listens on loopback only and its socket is inside its data directory,
//	   so only processes of this machine reach it (fine for a developer's
//	   machine or CI, not for a host shared with untrusted users). A
//	   cluster already running there is reused; a file lock
//	   makes sure that of many processes starting at once exactly one
//	   initialises and starts it. As root, the cluster runs as the
//	   "postgres" user (or "nobody"), since PostgreSQL refuses to run as
//	   root. That choice is made after step d, which is what creates
//	   "postgres" on a fresh machine; a cluster whose files belong to
//	   another user than the one chosen is handed over to it (as root) or
//	   refused with the chown to run (otherwise). When that user cannot
//	   reach DataDir (a checkout under /root), the cluster lives in
//	   Config.SpareDir and DataDir links to it;
//	d. when no server binaries are installed and we are root on Debian or
//	   Ubuntu, `apt-get install postgresql`, then c. The distribution's own
//	   cluster is not used: its TCP access wants a password;
//	e. otherwise an error (ErrNoPostgres) that says what to install or set.
//
// A dev cluster stays running after the process that started it exits, so
// the next `make run` or test run starts in milliseconds; Server.Stop stops
// it explicitly and Server.StopHint says how to stop it from a shell.
package pgboot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoPostgres is returned (wrapped, with what was tried and what to do)
// when no server could be found, started or installed.
var ErrNoPostgres = errors.New("pgboot: no PostgreSQL server found and none could be started")

// Server is a PostgreSQL server that answers and lets us create databases.
type Server struct {
	// URL points at the server's maintenance database ("postgres") as a
	// role that may create databases. With DATABASE_URL it is that URL,
	// unchanged.
	URL string
	// Source says which step found the server: "DATABASE_URL",
	// "localhost:5432", "dev cluster at <dir>", or "installed and started
	// PostgreSQL <n> …" when step d ran.
	Source string
	// Started is true when this call started the server, and so Stop would
	// stop it. It is false when the server was already running, even if it
	// is our dev cluster that an earlier call started.
	Started bool
	// DataDir is the dev cluster's directory (Config.DataDir), or empty
	// when the server is not a dev cluster.
	DataDir string
	// Version is the server's major version, e.g. 15.
	Version int

	stop func(context.Context) error
}

// Stop stops the server if this Ensure call started it, and does nothing
// otherwise: a server we found is someone else's to stop. Stopping a shared
// dev cluster disconnects every process that uses it.
func (s *Server) Stop(ctx context.Context) error {
	if s == nil || !s.Started || s.stop == nil {
		return nil
	}
	return s.stop(ctx)
}

// StopHint returns a shell command that stops the dev cluster, whoever
// started it, or "" when the server is not a dev cluster. It signals the
// postmaster instead of running pg_ctl because, when we were root, pg_ctl
// would have to be run as the cluster's owner.
func (s *Server) StopHint() string {
	if s == nil || s.DataDir == "" {
		return ""
	}
	pidFile := filepath.Join(s.DataDir, "pgdata", "postmaster.pid")
	return fmt.Sprintf("kill -INT $(head -n1 %s)", shellQuote(pidFile))
}

// Ensure finds or starts a PostgreSQL server as described in the package
// documentation and returns it. It is safe to call from many goroutines and
// processes at once with the same Config.
func Ensure(ctx context.Context, cfg Config) (*Server, error) {
	return ensure(ctx, cfg, host{finder: newBinFinder(cfg.BinDir), inst: aptInstaller{disabled: cfg.NoInstall}, lookupUser: user.Lookup})
}

// host is what Ensure finds on the machine: server binaries, a way to
// install them, and the OS users. Tests replace it to simulate machines
// without PostgreSQL, or with it but without a "postgres" user yet.
type host struct {
	finder     binFinder
	inst       installer
	lookupUser func(name string) (*user.User, error)
}

// ensure is Ensure on a host that tests can replace.
func ensure(ctx context.Context, cfg Config, h host) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	srv, localNote, err := findServer(ctx, cfg)
	if srv != nil || err != nil {
		return srv, err
	}
	// c and d. A dev cluster of our own.
	return ensureCluster(ctx, cfg, h, localNote)
}

// Available reports whether Ensure with cfg would have a server, without
// starting one: DATABASE_URL answers, a server on LocalAddr lets us in, the
// dev cluster runs, or server binaries are installed. When Ensure would
// install them (step d) Available does, because that is the part that takes
// long or fails. It returns where the server will come from, or the error
// Ensure would return, so that a long job can fail before it begins.
func Available(ctx context.Context, cfg Config) (string, error) {
	return available(ctx, cfg, host{finder: newBinFinder(cfg.BinDir), inst: aptInstaller{disabled: cfg.NoInstall}, lookupUser: user.Lookup})
}

func available(ctx context.Context, cfg Config, h host) (string, error) {
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	cfg.setDefaults()
	srv, localNote, err := findServer(ctx, cfg)
	if err != nil {
		return "", err
	}
	if srv != nil {
		return srv.Source, nil
	}
	c := newCluster(cfg)
	if srv := c.reuse(ctx); srv != nil {
		return srv.Source, nil
	}
	bins, installed, err := findOrInstall(ctx, h, cfg.Logger, localNote)
	if err != nil {
		return "", err
	}
	how := "installed"
	if installed != "" {
		how = "just installed (" + installed + ")"
	}
	return fmt.Sprintf("a dev cluster in %s, to be started with PostgreSQL %s, %s in %s", cfg.DataDir, bins[0].Version, how, bins[0].Dir), nil
}

// findServer is steps a and b: DATABASE_URL, else a server on LocalAddr.
// With neither, it returns no server and, for the error of step e, a note
// on what LocalAddr answered.
func findServer(ctx context.Context, cfg Config) (*Server, string, error) {
	log := cfg.Logger
	// a. DATABASE_URL.
	if cfg.DatabaseURL != "" {
		info, err := probe(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, "", fmt.Errorf("pgboot: DATABASE_URL is set but its server cannot be used (unset it to let pgboot find or start one): %w", err)
		}
		if info.Major < MinMajorVersion {
			return nil, "", fmt.Errorf("pgboot: DATABASE_URL points at PostgreSQL %d; %d or newer is needed", info.Major, MinMajorVersion)
		}
		log.Info("pgboot: using DATABASE_URL", "url", Redact(cfg.DatabaseURL), "version", info.Major)
		return &Server{URL: cfg.DatabaseURL, Source: "DATABASE_URL", Version: info.Major}, "", nil
	}

	// b. A server on localhost:5432.
	if cfg.SkipLocal {
		return nil, fmt.Sprintf("%s was not tried (Config.SkipLocal)", cfg.LocalAddr), nil
	}
	srv, note := tryLocal(ctx, cfg.LocalAddr, log)
	return srv, note, nil
}

// tryLocal returns the server at addr if one answers and lets us in without
// a password, trying the roles that local trust or peer-like setups usually
// grant: "postgres", then the OS user. When it returns nil, note says why,
// for the error of step e.
func tryLocal(ctx context.Context, addr string, log *slog.Logger) (*Server, string) {
	var refusals []string
	for _, role := range localRoles() {
		// Loopback needs no TLS, and TLS costs a tenth of the CPU of a busy
		// service here (a Debian server offers it by default).
		connString := serverURLFor(role, addr, url.Values{"sslmode": {"disable"}})
		info, err := probe(ctx, connString)
		switch {
		case err != nil && !answered(err):
			if errors.Is(err, syscall.ECONNREFUSED) {
				log.Debug("pgboot: nothing listens on "+addr, "err", err)
				return nil, "nothing answers on " + addr
			}
			log.Warn("pgboot: the server on "+addr+" cannot be reached; not using it", "err", err)
			return nil, fmt.Sprintf("the server on %s cannot be reached: %v", addr, err)
		case err != nil:
			refusals = append(refusals, fmt.Sprintf("as %q: %v", role, innermost(err)))
		case info.Major < MinMajorVersion:
			log.Warn(fmt.Sprintf("pgboot: the server on %s is PostgreSQL %d; %d or newer is needed, not using it", addr, info.Major, MinMajorVersion))
			return nil, fmt.Sprintf("the server on %s is PostgreSQL %d, older than %d", addr, info.Major, MinMajorVersion)
		case !info.CanCreateDB:
			refusals = append(refusals, fmt.Sprintf("as %q: the role may not create databases", role))
		default:
			log.Info("pgboot: using the PostgreSQL server on "+addr, "url", connString, "version", info.Major)
			return &Server{URL: connString, Source: addr, Version: info.Major}, ""
		}
	}
	note := fmt.Sprintf("a server answers on %s but we cannot use it without a password (%s)", addr, strings.Join(refusals, "; "))
	// Info, not a warning: this is the normal case on a machine with the
	// distribution's server (its TCP access wants a password), and pgboot
	// handles it. Only the roles are logged, not the refusals, which read
	// like a failure.
	log.Info(fmt.Sprintf("pgboot: the PostgreSQL server on %s wants a password, so pgboot uses a dev cluster of its own instead (to use that server, set DATABASE_URL with a password)", addr),
		"roles tried", strings.Join(localRoles(), ","))
	return nil, note
}

// localRoles are the roles step b tries, without duplicates.
func localRoles() []string {
	roles := []string{superuser}
	if u, err := user.Current(); err == nil && u.Username != "" && u.Username != superuser {
		roles = append(roles, u.Username)
	}
	return roles
}

// innermost returns the server's own message for a login refusal, which is
// what a person needs, without pgx's wrapping.
func innermost(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr
	}
	return err
}

// noServerError builds the error of step e from what every step saw.
func noServerError(localNote string, skipped []string, installNote string) error {
	var b strings.Builder
	b.WriteString("\n  - DATABASE_URL is not set")
	b.WriteString("\n  - " + localNote)
	fmt.Fprintf(&b, "\n  - no PostgreSQL %d+ server binaries (initdb, pg_ctl, postgres) were found via pg_config --bindir, PATH or %s",
		MinMajorVersion, strings.Join(defaultBinGlobs, ", "))
	for _, s := range skipped {
		b.WriteString("\n    (passed over " + s + ")")
	}
	b.WriteString("\n  - " + installNote)
	fmt.Fprintf(&b, "\nTo fix this, do one of:"+
		"\n  - install PostgreSQL %d or newer: sudo apt-get install postgresql (Debian, Ubuntu),"+
		" sudo dnf install postgresql-server (Fedora), brew install postgresql (macOS);"+
		"\n  - set DATABASE_URL to a server where you may create databases,"+
		" e.g. DATABASE_URL=postgres://user:password@host:5432/postgres", MinMajorVersion)
	return fmt.Errorf("%w:%s", ErrNoPostgres, b.String())
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// since formats the time elapsed since start for logs.
func since(start time.Time) string {
	return time.Since(start).Round(time.Millisecond).String()
}
