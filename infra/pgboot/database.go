package pgboot

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// maxIdentifierLen is PostgreSQL's NAMEDATALEN-1. Longer names are silently
// truncated by the server, which would make the URL we return point at a
// database that does not exist, so we refuse them instead.
const maxIdentifierLen = 63

// probeTimeout bounds one connection attempt while looking for a server: a
// server that takes longer than this to accept a login is not one to use.
const probeTimeout = 10 * time.Second

// DatabaseURL returns serverURL with its database replaced by name. It keeps
// the form it is given: a postgres:// URL gets a new path, a keyword/value
// string gets a dbname that overrides any earlier one (the last keyword wins
// in both libpq and pgx).
func DatabaseURL(serverURL, name string) (string, error) {
	if err := validateDatabaseName(name); err != nil {
		return "", err
	}
	if isURL(serverURL) {
		u, err := url.Parse(serverURL)
		if err != nil {
			return "", fmt.Errorf("pgboot: parse server URL: %w", redactErr(err, serverURL))
		}
		u.Path = "/" + name
		u.RawPath = "/" + url.PathEscape(name)
		return u.String(), nil
	}
	if strings.TrimSpace(serverURL) == "" {
		return "", errors.New("pgboot: empty server URL")
	}
	return serverURL + " dbname=" + quoteKeywordValue(name), nil
}

// CreateDatabase creates the database name on the server at serverURL unless
// it already exists, and returns its URL. It is idempotent, including when
// several processes race to create the same name.
func CreateDatabase(ctx context.Context, serverURL, name string) (string, error) {
	dbURL, err := DatabaseURL(serverURL, name)
	if err != nil {
		return "", err
	}
	conn, err := connect(ctx, serverURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", fmt.Errorf("pgboot: look up database %s: %w", name, err)
	}
	if exists {
		return dbURL, nil
	}
	create := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	for delay := 50 * time.Millisecond; ; delay *= 2 {
		_, err = conn.Exec(ctx, create)
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			return dbURL, nil
		case errors.As(err, &pgErr) && pgErr.Code == "42P04": // duplicate_database: another caller won the race
			return dbURL, nil
		case errors.As(err, &pgErr) && pgErr.Code == "55006" && delay < 5*time.Second:
			// object_in_use: someone is connected to the template database,
			// which CREATE DATABASE must copy. Such sessions are short-lived
			// (another CREATE DATABASE, a psql left on template1 is not), so
			// wait a little before giving up.
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("pgboot: create database %s: %w", name, err)
			case <-time.After(delay):
			}
		default:
			return "", fmt.Errorf("pgboot: create database %s: %w", name, err)
		}
	}
}

// DropDatabase drops the database name on the server at serverURL if it
// exists, disconnecting its sessions first (WITH (FORCE), PostgreSQL 13+)
// so that a test that leaked a connection still leaves nothing behind.
func DropDatabase(ctx context.Context, serverURL, name string) error {
	if err := validateDatabaseName(name); err != nil {
		return err
	}
	conn, err := connect(ctx, serverURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgboot: drop database %s: %w", name, err)
	}
	return nil
}

func validateDatabaseName(name string) error {
	switch {
	case name == "":
		return errors.New("pgboot: empty database name")
	case len(name) > maxIdentifierLen:
		return fmt.Errorf("pgboot: database name %q is longer than %d bytes", name, maxIdentifierLen)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("pgboot: database name %q contains a NUL byte", name)
	}
	return nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// quoteKeywordValue quotes v for a keyword/value connection string.
func quoteKeywordValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// serverURLFor builds the URL of the maintenance database at host:port for
// user, without a password: every server we build a URL for lets us in
// without one (trust or peer-like local rules).
func serverURLFor(user, hostPort string, query url.Values) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(user),
		Host:     hostPort,
		Path:     "/" + maintenanceDB,
		RawQuery: query.Encode(),
	}
	return u.String()
}

// connect opens one connection, bounded by probeTimeout, with errors that
// never show a password.
func connect(ctx context.Context, connString string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("pgboot: parse connection string: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgboot: connect to %s: %w", Redact(connString), err)
	}
	return conn, nil
}

// serverInfo is what a successful probe learned about a server.
type serverInfo struct {
	Major       int  // major version, e.g. 15
	CanCreateDB bool // the role we logged in as may create databases
}

// probe logs into connString and reports the server's version and whether
// our role may create databases (which tests need on every server).
func probe(ctx context.Context, connString string) (serverInfo, error) {
	conn, err := connect(ctx, connString)
	if err != nil {
		return serverInfo{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var info serverInfo
	var versionNum int
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int,
		COALESCE((SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user), false)`).
		Scan(&versionNum, &info.CanCreateDB)
	if err != nil {
		return serverInfo{}, fmt.Errorf("pgboot: query %s: %w", Redact(connString), err)
	}
	info.Major = versionNum / 10000
	return info, nil
}

// answered reports whether err came from a server that answered (and said
// no), as opposed to nothing listening or the network failing.
func answered(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}

var keywordPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// Redact returns connString with any password replaced, for logs and errors.
func Redact(connString string) string {
	if isURL(connString) {
		if u, err := url.Parse(connString); err == nil {
			return u.Redacted()
		}
		return "postgres://(unparsable URL)"
	}
	return keywordPassword.ReplaceAllString(connString, "${1}xxxxx")
}

// redactErr keeps url.Parse errors, which quote their input, from leaking a
// password.
func redactErr(err error, connString string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return errors.New(strings.ReplaceAll(err.Error(), connString, Redact(connString)))
}
