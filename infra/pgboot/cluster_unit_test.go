package pgboot

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRenderConf(t *testing.T) {
	durable := renderConf(confParams{Port: 55432, SocketDir: "/tmp/it's/pgdata", MaxConnections: 200})
	for _, want := range []string{
		"listen_addresses = '127.0.0.1'\n",
		"port = 55432\n",
		"unix_socket_directories = '/tmp/it''s/pgdata'\n",
		"max_connections = 200\n",
	} {
		if !strings.Contains(durable, want) {
			t.Errorf("renderConf() lacks %q:\n%s", want, durable)
		}
	}
	if strings.Contains(durable, "fsync") || strings.Contains(durable, "synchronous_commit") || strings.Contains(durable, "full_page_writes") {
		t.Errorf("a durable cluster must keep durability on:\n%s", durable)
	}

	ephemeral := renderConf(confParams{Port: 1, MaxConnections: 5, Ephemeral: true})
	for _, want := range []string{"fsync = off\n", "synchronous_commit = off\n", "full_page_writes = off\n", "unix_socket_directories = ''\n"} {
		if !strings.Contains(ephemeral, want) {
			t.Errorf("ephemeral renderConf() lacks %q:\n%s", want, ephemeral)
		}
	}
}

func TestSocketDirFallsBackToTCPWhenTooLong(t *testing.T) {
	short := &cluster{pgdata: "/tmp/rapport-pgtest-0/pgdata"}
	if got := short.socketDir(55432); got != short.pgdata {
		t.Errorf("socketDir = %q, want %q", got, short.pgdata)
	}
	long := &cluster{pgdata: "/tmp/" + strings.Repeat("d", 90) + "/pgdata"}
	if got := long.socketDir(55432); got != "" {
		t.Errorf("socketDir = %q, want none for a path longer than sun_path", got)
	}
}

func TestPostmasterPort(t *testing.T) {
	dir := t.TempDir()
	write := func(content string) string {
		p := filepath.Join(dir, "postmaster.pid")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if port, ok := postmasterPort(write("4242\n/tmp/x/pgdata\n1700000000\n55433\n/tmp/x/pgdata\n127.0.0.1\n  1234   5678\nready   \n")); !ok || port != 55433 {
		t.Errorf("postmasterPort = %d, %v; want 55433", port, ok)
	}
	if _, ok := postmasterPort(write("4242\n/tmp/x/pgdata\n")); ok {
		t.Error("postmasterPort accepted a file still being written")
	}
	if _, ok := postmasterPort(filepath.Join(dir, "missing")); ok {
		t.Error("postmasterPort accepted a missing file")
	}
}

func TestChildEnv(t *testing.T) {
	in := []string{"PATH=/usr/bin", "PGDATA=/elsewhere", "PGPORT=1", "LANG=de_DE.UTF-8", "LC_MESSAGES=fr_FR", "HOME=/root", "USER=root", "GOFLAGS=-x"}
	got := childEnv(in, true, "/tmp/cluster")
	want := []string{"PATH=/usr/bin", "GOFLAGS=-x", "LC_ALL=C", "HOME=/tmp/cluster"}
	if !slices.Equal(got, want) {
		t.Errorf("childEnv(as another user) = %q, want %q", got, want)
	}
	got = childEnv(in, false, "/tmp/cluster")
	want = []string{"PATH=/usr/bin", "HOME=/root", "USER=root", "GOFLAGS=-x", "LC_ALL=C"}
	if !slices.Equal(got, want) {
		t.Errorf("childEnv(as ourselves) = %q, want %q", got, want)
	}
}

func TestSearchable(t *testing.T) {
	pg := &osUser{name: "postgres", uid: 101, gid: 104, groups: []uint32{104, 110}}
	tests := []struct {
		perm     os.FileMode
		uid, gid uint32
		want     bool
	}{
		{0o700, 0, 0, false},  // a root-only t.TempDir()
		{0o755, 0, 0, true},   // /tmp-like
		{0o1777, 0, 0, true},  // /tmp itself
		{0o700, 101, 0, true}, // owned by postgres
		{0o750, 0, 110, true}, // through a supplementary group
		{0o750, 0, 5, false},
		{0o644, 101, 0, false}, // owner without x
	}
	for _, tt := range tests {
		if got := searchable(tt.perm, tt.uid, tt.gid, pg); got != tt.want {
			t.Errorf("searchable(%o, uid %d, gid %d) = %v, want %v", tt.perm, tt.uid, tt.gid, got, tt.want)
		}
	}
}

func TestStopHint(t *testing.T) {
	if got := (&Server{URL: "postgres://x"}).StopHint(); got != "" {
		t.Errorf("StopHint for a server that is not a dev cluster = %q, want none", got)
	}
	got := (&Server{DataDir: "/tmp/rapport-pgtest-0"}).StopHint()
	if want := "kill -INT $(head -n1 /tmp/rapport-pgtest-0/pgdata/postmaster.pid)"; got != want {
		t.Errorf("StopHint = %q, want %q", got, want)
	}
	got = (&Server{DataDir: "/tmp/with space"}).StopHint()
	if want := "kill -INT $(head -n1 '/tmp/with space/pgdata/postmaster.pid')"; got != want {
		t.Errorf("StopHint = %q, want %q", got, want)
	}
}

func TestStopOnlyWhatWeStarted(t *testing.T) {
	calls := 0
	stop := func(context.Context) error { calls++; return nil }
	found := &Server{Started: false, stop: stop}
	if err := found.Stop(t.Context()); err != nil || calls != 0 {
		t.Errorf("Stop on a server we did not start: err %v, %d stops", err, calls)
	}
	started := &Server{Started: true, stop: stop}
	if err := started.Stop(t.Context()); err != nil || calls != 1 {
		t.Errorf("Stop on a server we started: err %v, %d stops", err, calls)
	}
	var none *Server
	if err := none.Stop(t.Context()); err != nil {
		t.Errorf("Stop on nil: %v", err)
	}
}
