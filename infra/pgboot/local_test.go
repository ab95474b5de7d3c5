package pgboot

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// refusingServer listens on loopback and answers every login the way a
// server with password authentication answers a client without one.
func refusingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				be := pgproto3.NewBackend(conn, conn)
				for {
					msg, err := be.ReceiveStartupMessage()
					if err != nil {
						return
					}
					switch m := msg.(type) {
					case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
						if _, err := conn.Write([]byte("N")); err != nil {
							return
						}
						continue
					case *pgproto3.StartupMessage:
						be.Send(&pgproto3.ErrorResponse{
							Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "28P01",
							Message: `password authentication failed for user "` + m.Parameters["user"] + `"`,
						})
						_ = be.Flush()
					}
					return
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestTryLocalPassesOverServerThatWantsPassword(t *testing.T) {
	addr := refusingServer(t)
	var logs bytes.Buffer
	srv, note := tryLocal(t.Context(), addr, slog.New(slog.NewTextHandler(&logs, nil)))
	if srv != nil {
		t.Fatalf("tryLocal used a server that refused us: %+v", srv)
	}
	if !strings.Contains(note, "we cannot use it without a password") || !strings.Contains(note, "28P01") {
		t.Errorf("note = %q, want the refusal", note)
	}
	// The distribution's server on a fresh machine: the normal case, said
	// as information about what happens, never as a warning.
	if !strings.Contains(logs.String(), "level=INFO") || strings.Contains(logs.String(), "level=WARN") ||
		!strings.Contains(logs.String(), "wants a password, so pgboot uses a dev cluster of its own instead") {
		t.Errorf("want one informational note saying what happens, got:\n%s", logs.String())
	}
	// Every role was tried before giving up.
	for _, role := range localRoles() {
		if !strings.Contains(note, `as "`+role+`"`) {
			t.Errorf("note = %q, want role %q tried", note, role)
		}
	}
}

func TestTryLocalIsQuietWhenNothingListens(t *testing.T) {
	var logs bytes.Buffer
	srv, note := tryLocal(t.Context(), closedAddr(t), slog.New(slog.NewTextHandler(&logs, nil)))
	if srv != nil || !strings.Contains(note, "nothing answers") {
		t.Errorf("tryLocal = %+v, %q; want nothing", srv, note)
	}
	if logs.Len() != 0 {
		t.Errorf("want no info-level logs when nothing listens, got:\n%s", logs.String())
	}
}

func TestDatabaseURLMustAnswer(t *testing.T) {
	// A DATABASE_URL that does not answer is an error, never a silent
	// fallback to another server.
	cfg := Config{
		DatabaseURL: "postgres://postgres:s3cret@" + closedAddr(t) + "/postgres",
		Logger:      slog.New(slog.DiscardHandler),
	}
	srv, err := ensure(t.Context(), cfg, host{inst: fakeInstaller{}, lookupUser: user.Lookup})
	if err == nil {
		t.Fatalf("Ensure = %+v, want an error", srv)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "pgboot: DATABASE_URL") || errors.Is(err, ErrNoPostgres) || strings.Contains(msg, "s3cret") {
		t.Errorf("err = %v", err)
	}

	cfg.DatabaseURL = "postgres://postgres@" + refusingServer(t) + "/postgres"
	if _, err := ensure(t.Context(), cfg, host{inst: fakeInstaller{}, lookupUser: user.Lookup}); err == nil || !strings.Contains(err.Error(), "28P01") {
		t.Errorf("Ensure with a refusing DATABASE_URL = %v, want the server's refusal", err)
	}
}

// fakeInstaller is step d on a test machine: it never touches apt.
type fakeInstaller struct {
	whyNot string                                // plan refuses with this when set
	do     func(context.Context) (string, error) // install
}

func (f fakeInstaller) plan() (bool, string) {
	if f.do == nil {
		if f.whyNot == "" {
			return false, "fake installer"
		}
		return false, f.whyNot
	}
	return true, ""
}

func (f fakeInstaller) install(ctx context.Context, _ *slog.Logger) (string, error) {
	return f.do(ctx)
}

func TestNoPostgresErrorSaysWhatToDo(t *testing.T) {
	cfg := Config{
		LocalAddr: refusingServer(t),
		DataDir:   clusterDir(t),
		Logger:    slog.New(slog.DiscardHandler),
	}
	noBinaries := binFinder{pathEnv: t.TempDir()}
	_, err := ensure(t.Context(), cfg, host{finder: noBinaries, inst: fakeInstaller{whyNot: "this is not Debian or Ubuntu"}, lookupUser: user.Lookup})
	if !errors.Is(err, ErrNoPostgres) {
		t.Fatalf("Ensure = %v, want ErrNoPostgres", err)
	}
	t.Logf("the message:\n%v", err)
	for _, want := range []string{
		"pgboot: no PostgreSQL server found",
		"DATABASE_URL is not set",
		"we cannot use it without a password",
		"no PostgreSQL 13+ server binaries",
		"not installed automatically: this is not Debian or Ubuntu",
		"install PostgreSQL 13 or newer",
		"set DATABASE_URL",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	failing := fakeInstaller{do: func(context.Context) (string, error) { return "", errors.New("E: Unable to locate package postgresql") }}
	_, err = ensure(t.Context(), cfg, host{finder: noBinaries, inst: failing, lookupUser: user.Lookup})
	if !errors.Is(err, ErrNoPostgres) || !strings.Contains(err.Error(), "Unable to locate package") {
		t.Errorf("Ensure with a failing install = %v, want ErrNoPostgres with apt's reason", err)
	}
}

func TestAvailableChecksWithoutStarting(t *testing.T) {
	cfg := Config{LocalAddr: refusingServer(t), DataDir: clusterDir(t), Logger: slog.New(slog.DiscardHandler)}
	noBinaries := binFinder{pathEnv: t.TempDir()}
	_, err := available(t.Context(), cfg, host{finder: noBinaries, inst: fakeInstaller{whyNot: "not running as root"}, lookupUser: user.Lookup})
	if !errors.Is(err, ErrNoPostgres) || !strings.Contains(err.Error(), "install PostgreSQL 13 or newer") {
		t.Errorf("available without binaries = %v, want ErrNoPostgres saying what to install", err)
	}

	// With binaries it says what Ensure will start, and starts nothing.
	real := fakeInstall(t, filepath.Join(t.TempDir(), "bin"), "16.4")
	source, err := available(t.Context(), cfg, host{finder: binFinder{explicit: real}, inst: fakeInstaller{}, lookupUser: user.Lookup})
	if err != nil || !strings.Contains(source, "a dev cluster in "+cfg.DataDir+", to be started with PostgreSQL 16.4") {
		t.Errorf("available = %q, %v", source, err)
	}
	if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("available touched DataDir: %v", err)
	}

	// Installing is what it does do, since that is the part that fails.
	lib := t.TempDir()
	inst := fakeInstaller{do: func(context.Context) (string, error) {
		fakeInstall(t, filepath.Join(lib, "17", "bin"), "17.2")
		return "fake install", nil
	}}
	source, err = available(t.Context(), cfg, host{finder: binFinder{pathEnv: t.TempDir(), globs: []string{filepath.Join(lib, "*", "bin")}}, inst: inst, lookupUser: user.Lookup})
	if err != nil || !strings.Contains(source, "PostgreSQL 17.2, just installed (fake install)") {
		t.Errorf("available with an install = %q, %v", source, err)
	}
}
