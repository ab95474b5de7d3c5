package pgtest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/pgboot"
)

// PrivateServer is a PostgreSQL cluster of one test's own, for tests that
// stop and start the database (fault tests) without disturbing the shared
// server every other test uses.
type PrivateServer struct {
	tb      testing.TB
	cfg     pgboot.Config
	current *pgboot.Server
	// URL is the cluster's maintenance database URL; it stays the same
	// across restarts.
	URL string
}

// NewPrivateServer starts a throwaway cluster in a temporary directory; it
// is stopped and deleted when the test ends.
func NewPrivateServer(tb testing.TB) *PrivateServer {
	tb.Helper()
	dir := tb.TempDir()
	// PostgreSQL may run as another user (root cannot run it): open the
	// directories up so that it reaches its data directory.
	for p := dir; p != filepath.Clean(os.TempDir()) && p != filepath.Dir(p); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	s := &PrivateServer{tb: tb, cfg: pgboot.Config{
		DataDir:   filepath.Join(dir, "cluster"),
		Port:      freePort(tb),
		SkipLocal: true,
		Ephemeral: true,
		NoInstall: false,
	}}
	s.Start()
	tb.Cleanup(func() { s.Stop() })
	return s
}

// Start starts the cluster (again), on the same port.
func (s *PrivateServer) Start() {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ensureTimeout)
	defer cancel()
	srv, err := pgboot.Ensure(ctx, s.cfg)
	if err != nil {
		s.tb.Fatalf("pgtest: start private cluster: %v", err)
	}
	s.current, s.URL = srv, srv.URL
}

// Stop stops the cluster; connections to it break.
func (s *PrivateServer) Stop() {
	s.tb.Helper()
	if s.current == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.current.Stop(ctx); err != nil {
		s.tb.Errorf("pgtest: stop private cluster: %v", err)
	}
	s.current = nil
}

// NewDatabase creates a database on the private cluster and returns its URL.
func (s *PrivateServer) NewDatabase() string {
	s.tb.Helper()
	url, err := pgboot.CreateDatabase(context.Background(), s.URL, "rapport_"+randomSuffix())
	if err != nil {
		s.tb.Fatal(err)
	}
	return url
}

// freePort asks the kernel for a port nobody listens on.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
