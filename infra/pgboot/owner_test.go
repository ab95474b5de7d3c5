package pgboot

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// These tests are about who runs the cluster when we are root: the
// "postgres" user, which only exists once PostgreSQL is installed.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("only root runs PostgreSQL as another user; as any other user the cluster is simply ours")
	}
}

// withoutPostgresUser is a user lookup on a machine where PostgreSQL was
// never installed, so that no "postgres" user exists, until installed()
// says otherwise.
func withoutPostgresUser(installed func() bool) func(string) (*user.User, error) {
	return func(name string) (*user.User, error) {
		if name == "postgres" && !installed() {
			return nil, user.UnknownUserError(name)
		}
		return user.Lookup(name)
	}
}

func uidOf(t *testing.T, name string) int {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	return uid
}

// The first `make test` on a fresh Debian root: no PostgreSQL, so no
// "postgres" user, until apt-get installs both. The cluster must belong to
// the user that exists after the install, or every later run fails.
func TestEnsureChoosesTheOwnerAfterInstalling(t *testing.T) {
	requireRoot(t)
	real := installedBinaries(t) // makes the real "postgres" user exist, too
	lib := filepath.Join(reachableTempDir(t), "lib", "postgresql")
	finder := binFinder{pathEnv: t.TempDir(), globs: []string{filepath.Join(lib, "*", "bin")}}
	installed := false
	inst := fakeInstaller{do: func(context.Context) (string, error) {
		bin := filepath.Join(lib, strconv.Itoa(real.Major), "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			return "", err
		}
		for _, p := range serverPrograms {
			if err := os.Symlink(real.path(p), filepath.Join(bin, p)); err != nil {
				return "", err
			}
		}
		installed = true // apt-get creates the postgres user with the package
		return "fake install", nil
	}}
	h := host{finder: finder, inst: inst, lookupUser: withoutPostgresUser(func() bool { return installed })}
	dir := clusterDir(t)
	cfg := Config{SkipLocal: true, DataDir: dir, Port: freePort(t), Ephemeral: true, Logger: testLogger(t)}

	first, err := ensure(t.Context(), cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := queryOwner(t, filepath.Join(dir, "pgdata")), uidOf(t, "postgres"); got != want {
		t.Errorf("the cluster made while installing belongs to uid %d, want postgres (%d)", got, want)
	}
	if err := first.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}

	// The next run (the postgres user exists from the start now).
	second, err := ensure(t.Context(), cfg, h)
	if err != nil {
		t.Fatalf("the run after the install: %v", err)
	}
	if !second.Started {
		t.Errorf("second Ensure = %+v, want it started", second)
	}
	if err := second.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// A cluster made before the "postgres" user existed (as "nobody", say, by
// an older pgboot, or with binaries built from source) is handed to the
// user that runs it now, with its data: for `make run` it is the user's.
func TestEnsureRepairsAClusterOwnedByAnotherUser(t *testing.T) {
	requireRoot(t)
	installedBinaries(t)
	ctx := t.Context()
	dir := clusterDir(t)
	cfg := Config{SkipLocal: true, DataDir: dir, Port: freePort(t), Logger: testLogger(t)} // durable: the data must survive
	before := host{finder: newBinFinder(""), inst: fakeInstaller{}, lookupUser: withoutPostgresUser(func() bool { return false })}
	srv, err := ensure(ctx, cfg, before)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := queryOwner(t, filepath.Join(dir, "pgdata")), uidOf(t, "nobody"); got != want {
		t.Fatalf("set-up: pgdata belongs to uid %d, want nobody (%d)", got, want)
	}
	if _, err := CreateDatabase(ctx, srv.URL, "canary"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	after := host{finder: newBinFinder(""), inst: fakeInstaller{}, lookupUser: user.Lookup}
	srv, err = ensure(ctx, cfg, after)
	if err != nil {
		t.Fatalf("Ensure on a cluster of another user: %v", err)
	}
	defer srv.Stop(context.WithoutCancel(ctx))
	pg := uidOf(t, "postgres")
	for _, p := range []string{".", "pgdata", "postgres.log", "pgdata/PG_VERSION", "pgdata/global/pg_control"} {
		if got := queryOwner(t, filepath.Join(dir, p)); got != pg {
			t.Errorf("%s belongs to uid %d after the repair, want postgres (%d)", p, got, pg)
		}
	}
	conn, err := pgx.Connect(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var canaries int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = 'canary'").Scan(&canaries); err != nil || canaries != 1 {
		t.Errorf("after the repair: %d canary databases, %v; want the data kept", canaries, err)
	}
}

// `make run` from a clone under /root: root's home is 0700, so the
// "postgres" user cannot reach .data/postgres. The cluster then lives where
// it can, and DataDir links to it.
func TestEnsureRelocatesAClusterItsOwnerCannotReach(t *testing.T) {
	requireRoot(t)
	installedBinaries(t)
	ctx := t.Context()
	home := t.TempDir() // 0700, root's: like /root
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, "rapport", ".data", "postgres")
	spare := reachableTempDir(t)
	cfg := Config{SkipLocal: true, DataDir: dir, SpareDir: spare, DataDirSetting: "RAPPORT_DATA_DIR", Port: freePort(t), Logger: testLogger(t)}
	// An earlier run that failed on the unreachable directory left its lock.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	srv, err := Ensure(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopDevCluster(t, dir) })
	target, err := filepath.EvalSymlinks(dir)
	if err != nil || filepath.Dir(target) != spare || !strings.HasPrefix(filepath.Base(target), "postgres-") {
		t.Errorf("DataDir resolves to %q (%v), want a directory postgres-<hash> in SpareDir %s", target, err, spare)
	}
	if !srv.Started || srv.DataDir != dir || srv.Source != "dev cluster at "+dir+" (a link to "+target+")" {
		t.Errorf("Ensure = %+v, want a started cluster named after DataDir %s and where it is", srv, dir)
	}
	if got, want := queryOwner(t, filepath.Join(target, "pgdata")), uidOf(t, "postgres"); got != want {
		t.Errorf("pgdata belongs to uid %d, want postgres (%d)", got, want)
	}
	reused, err := Ensure(ctx, cfg)
	if err != nil || reused.Started || reused.URL != srv.URL {
		t.Errorf("second Ensure = %+v, %v; want the running cluster", reused, err)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := Ensure(ctx, cfg)
	if err != nil || !again.Started {
		t.Fatalf("Ensure after Stop = %+v, %v; want the relocated cluster started again", again, err)
	}
	if err := again.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// A DataDir that already holds something is not moved: the error names
	// the setting that puts the cluster elsewhere.
	occupied := filepath.Join(home, "other", "postgres")
	if err := os.MkdirAll(filepath.Join(occupied, "pgdata"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = occupied
	_, err = Ensure(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "cannot reach") || !strings.Contains(err.Error(), "Set RAPPORT_DATA_DIR to a directory") {
		t.Errorf("Ensure on an occupied unreachable DataDir = %v, want the reason and the setting", err)
	} else {
		t.Logf("the message: %v", err)
	}
}
