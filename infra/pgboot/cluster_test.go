package pgboot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// These tests start real clusters from the installed PostgreSQL binaries in
// temporary directories, on free ports, with SkipLocal so that a server on
// localhost:5432 does not stand in for the dev cluster. Like `make test`,
// they install PostgreSQL (as root on Debian) if it is missing, and fail if
// it cannot be had.

const (
	helperDirEnv   = "PGBOOT_TEST_HELPER_DATADIR"
	helperPortEnv  = "PGBOOT_TEST_HELPER_PORT"
	helperCallsEnv = "PGBOOT_TEST_HELPER_CALLS"
)

// TestMain doubles as the child process of the concurrency test: with
// helperDirEnv set, the test binary calls Ensure from several goroutines
// and prints one JSON result per call instead of running tests.
func TestMain(m *testing.M) {
	if dir := os.Getenv(helperDirEnv); dir != "" {
		os.Exit(ensureHelper(dir))
	}
	os.Exit(m.Run())
}

type helperResult struct {
	Started bool
	URL     string
	Source  string
	Err     string
}

func ensureHelper(dir string) int {
	port, _ := strconv.Atoi(os.Getenv(helperPortEnv))
	calls, _ := strconv.Atoi(os.Getenv(helperCallsEnv))
	results := make([]helperResult, calls)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			srv, err := Ensure(context.Background(), Config{
				DataDir: dir, Port: port, SkipLocal: true, Ephemeral: true,
				Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
			})
			if err != nil {
				results[i].Err = err.Error()
				return
			}
			results[i] = helperResult{Started: srv.Started, URL: srv.URL, Source: srv.Source}
		})
	}
	wg.Wait()
	enc := json.NewEncoder(os.Stdout)
	for _, r := range results {
		if err := enc.Encode(r); err != nil {
			return 1
		}
	}
	return 0
}

// reachableTempDir is t.TempDir() opened up so that the user PostgreSQL runs
// as when we are root ("postgres") can reach it: t.TempDir() makes its
// directories 0700.
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for p := dir; p != filepath.Clean(os.TempDir()) && p != filepath.Dir(p); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// clusterDir is a DataDir for one test; the cluster in it is stopped when
// the test ends, whoever started it.
func clusterDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(reachableTempDir(t), "cluster")
	t.Cleanup(func() { stopDevCluster(t, dir) })
	return dir
}

func stopDevCluster(t *testing.T, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newCluster(Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err := c.chooseOwner(user.Lookup); err != nil {
		t.Error(err)
		return
	}
	if c.reuse(ctx) == nil {
		return // not running
	}
	bins, _ := newBinFinder("").find(ctx)
	bin, err := c.pickBinaries(bins, true)
	if err == nil {
		err = c.stop(ctx, bin, time.Minute)
	}
	if err != nil {
		t.Errorf("stop the test cluster in %s: %v", dir, err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := choosePort(0)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(t.Context(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestEnsureStartsStopsAndReusesDevCluster(t *testing.T) {
	ctx := t.Context()
	dir := clusterDir(t)
	port := freePort(t)
	cfg := Config{SkipLocal: true, DataDir: dir, Port: port, Ephemeral: true, Logger: testLogger(t)}

	began := time.Now()
	srv, err := Ensure(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cold := time.Since(began)
	wantURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if !srv.Started || srv.URL != wantURL || srv.Source != "dev cluster at "+dir || srv.DataDir != dir || srv.Version < MinMajorVersion {
		t.Fatalf("Ensure = %+v, want a started dev cluster at %s", srv, wantURL)
	}

	conn, err := pgx.Connect(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for setting, want := range map[string]string{
		"SHOW fsync":                   "off",
		"SHOW synchronous_commit":      "off",
		"SHOW full_page_writes":        "off",
		"SHOW max_connections":         "200",
		"SHOW listen_addresses":        "127.0.0.1",
		"SHOW unix_socket_directories": filepath.Join(dir, "pgdata"),
		"SHOW server_encoding":         "UTF8",
		"SELECT current_user":          "postgres",
	} {
		if got := queryString(t, conn, setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	conn.Close(ctx)
	if _, err := os.Stat(filepath.Join(dir, "pgdata", ".s.PGSQL."+strconv.Itoa(port))); err != nil {
		t.Errorf("the Unix socket is not in pgdata: %v", err)
	}
	if os.Geteuid() == 0 {
		if owner := queryOwner(t, filepath.Join(dir, "pgdata")); owner == 0 {
			t.Errorf("pgdata is owned by root; the cluster must run as an unprivileged user")
		}
	}

	// CreateDatabase is idempotent, and its URL leads to the database.
	began = time.Now()
	dbURL, err := CreateDatabase(ctx, srv.URL, "pgboot_it")
	if err != nil {
		t.Fatal(err)
	}
	createTook := time.Since(began)
	again, err := CreateDatabase(ctx, srv.URL, "pgboot_it")
	if err != nil || again != dbURL {
		t.Fatalf("second CreateDatabase = %q, %v; want %q", again, err, dbURL)
	}
	dbConn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, dbConn, "SELECT current_database()"); got != "pgboot_it" {
		t.Errorf("current_database() = %q", got)
	}
	// DropDatabase disconnects dbConn (WITH (FORCE)) and tolerates a repeat.
	if err := DropDatabase(ctx, srv.URL, "pgboot_it"); err != nil {
		t.Fatal(err)
	}
	if err := DropDatabase(ctx, srv.URL, "pgboot_it"); err != nil {
		t.Fatal(err)
	}
	dbConn.Close(ctx)

	// A second Ensure reuses the running cluster, and its Stop leaves it be.
	began = time.Now()
	reused, err := Ensure(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	reuseTook := time.Since(began)
	if reused.Started || reused.URL != srv.URL || reused.Source != srv.Source {
		t.Fatalf("second Ensure = %+v, want the running cluster, not started by it", reused)
	}
	if err := reused.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := probe(ctx, srv.URL); err != nil {
		t.Fatalf("Stop of a reused server stopped it: %v", err)
	}

	// Step b finds the same server when it is the one on LocalAddr.
	local, err := Ensure(ctx, Config{LocalAddr: fmt.Sprintf("localhost:%d", port), DataDir: filepath.Join(dir, "unused"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if local.Started || local.Source != fmt.Sprintf("localhost:%d", port) || local.URL != fmt.Sprintf("postgres://postgres@localhost:%d/postgres?sslmode=disable", port) {
		t.Errorf("Ensure with LocalAddr = %+v, want the server found on localhost", local)
	}

	// Stop stops what we started.
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := probe(ctx, srv.URL); err == nil {
		t.Fatal("the cluster still answers after Stop")
	}

	// Starting it again skips initdb; without Ephemeral, durability is on.
	cfg.Ephemeral = false
	began = time.Now()
	warm, err := Ensure(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	warmTook := time.Since(began)
	if !warm.Started {
		t.Errorf("Ensure after Stop = %+v, want it started again", warm)
	}
	conn, err = pgx.Connect(ctx, warm.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, setting := range []string{"SHOW fsync", "SHOW synchronous_commit", "SHOW full_page_writes"} {
		if got := queryString(t, conn, setting); got != "on" {
			t.Errorf("durable cluster: %s = %q, want on", setting, got)
		}
	}
	conn.Close(ctx)
	if err := warm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("timings: cold initdb+start %s, CreateDatabase %s, reuse %s, warm start %s",
		cold.Round(time.Millisecond), createTook.Round(time.Millisecond), reuseTook.Round(time.Millisecond), warmTook.Round(time.Millisecond))
}

func queryOwner(t *testing.T, path string) int {
	t.Helper()
	out, err := exec.Command("stat", "-c", "%u", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return uid
}

func TestEnsureConcurrentProcessesStartOneCluster(t *testing.T) {
	dir := clusterDir(t)
	port := freePort(t)
	const procs, callsEach = 6, 4

	cmds := make([]*exec.Cmd, procs)
	outs := make([]*bytes.Buffer, procs)
	errs := make([]*bytes.Buffer, procs)
	for i := range cmds {
		cmd := exec.CommandContext(t.Context(), os.Args[0])
		cmd.Env = append(os.Environ(), helperDirEnv+"="+dir, helperPortEnv+"="+strconv.Itoa(port), helperCallsEnv+"="+strconv.Itoa(callsEach))
		outs[i], errs[i] = new(bytes.Buffer), new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = outs[i], errs[i]
		cmds[i] = cmd
	}
	began := time.Now()
	for _, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	var results []helperResult
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, errs[i])
		}
		sc := bufio.NewScanner(outs[i])
		for sc.Scan() {
			var r helperResult
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("helper %d printed %q: %v", i, sc.Text(), err)
			}
			results = append(results, r)
		}
	}
	took := time.Since(began)

	if len(results) != procs*callsEach {
		t.Fatalf("got %d results, want %d", len(results), procs*callsEach)
	}
	started := 0
	for i, r := range results {
		if r.Err != "" {
			t.Fatalf("call %d: %s", i, r.Err)
		}
		if r.URL != results[0].URL || r.Source != "dev cluster at "+dir {
			t.Errorf("call %d got %s (%s), call 0 got %s", i, r.URL, r.Source, results[0].URL)
		}
		if r.Started {
			started++
		}
	}
	if started != 1 {
		t.Errorf("%d of %d concurrent calls started a cluster, want exactly 1", started, len(results))
	}
	// Only the starter's log says "started"; the stderr of all helpers together
	// must show a single initdb.
	var all strings.Builder
	for _, e := range errs {
		all.Write(e.Bytes())
	}
	if n := strings.Count(all.String(), "initialised a PostgreSQL cluster"); n != 1 {
		t.Errorf("%d initdb runs, want 1:\n%s", n, all.String())
	}
	t.Logf("%d processes × %d goroutines: one cluster at %s, %s in all", procs, callsEach, results[0].URL, took.Round(time.Millisecond))
}

func TestEnsureInstallsWhenNoBinaries(t *testing.T) {
	// Step d without apt: the fake installer "installs" by linking the real
	// binaries into the directory the finder searches, as apt-get would
	// populate /usr/lib/postgresql/N/bin.
	real := installedBinaries(t)
	lib := filepath.Join(reachableTempDir(t), "lib", "postgresql")
	finder := binFinder{pathEnv: t.TempDir(), globs: []string{filepath.Join(lib, "*", "bin")}}
	installs := 0
	inst := fakeInstaller{do: func(context.Context) (string, error) {
		installs++
		bin := filepath.Join(lib, strconv.Itoa(real.Major), "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			return "", err
		}
		for _, p := range serverPrograms {
			if err := os.Symlink(real.path(p), filepath.Join(bin, p)); err != nil {
				return "", err
			}
		}
		return "fake install", nil
	}}
	dir := clusterDir(t)
	cfg := Config{SkipLocal: true, DataDir: dir, Port: freePort(t), Ephemeral: true, Logger: testLogger(t)}
	srv, err := ensure(t.Context(), cfg, host{finder: finder, inst: inst, lookupUser: user.Lookup})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.WithoutCancel(t.Context()))
	if installs != 1 || !srv.Started || !strings.HasPrefix(srv.Source, "installed and started PostgreSQL "+real.Version+" (fake install); dev cluster at "+dir) {
		t.Errorf("Ensure = %+v after %d installs, want one install then a started cluster", srv, installs)
	}
}

// installedBinaries returns the binaries Ensure would use, installing them
// the way Ensure would if there are none.
func installedBinaries(t *testing.T) binDir {
	t.Helper()
	finder := newBinFinder("")
	bins, skipped := finder.find(t.Context())
	if len(bins) == 0 {
		inst := aptInstaller{}
		ok, why := inst.plan()
		if !ok {
			t.Fatal(noServerError("(not tried by this test)", skipped, why))
		}
		if _, err := inst.install(t.Context(), testLogger(t)); err != nil {
			t.Fatal(err)
		}
		if bins, skipped = finder.find(t.Context()); len(bins) == 0 {
			t.Fatalf("no binaries after installing: %q", skipped)
		}
	}
	return bins[0]
}

func TestBrokenClusterIsRemadeOnlyWhenEphemeral(t *testing.T) {
	ctx := t.Context()
	dir := clusterDir(t)
	cfg := Config{SkipLocal: true, DataDir: dir, Port: freePort(t), Ephemeral: true, Logger: testLogger(t)}
	srv, err := Ensure(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreateDatabase(ctx, srv.URL, "canary"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// What a crash of a cluster without fsync may leave: no control file.
	if err := os.Remove(filepath.Join(dir, "pgdata", "global", "pg_control")); err != nil {
		t.Fatal(err)
	}

	durable := cfg
	durable.Ephemeral = false
	if srv, err := Ensure(ctx, durable); err == nil || !strings.Contains(err.Error(), "pg_ctl start") {
		t.Fatalf("Ensure on a broken durable cluster = %+v, %v; want pg_ctl's failure", srv, err)
	} else {
		t.Logf("broken durable cluster: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pgdata", "base")); err != nil {
		t.Fatalf("a durable cluster's data was removed: %v", err)
	}

	remade, err := Ensure(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer remade.Stop(context.WithoutCancel(ctx))
	conn, err := pgx.Connect(ctx, remade.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var canaries int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = 'canary'").Scan(&canaries); err != nil || canaries != 0 {
		t.Errorf("remade cluster: %d canary databases, %v; want a fresh cluster", canaries, err)
	}
}
