package pgboot

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults used by Config.setDefaults. They are exported so that callers (and
// their documentation) can name them instead of repeating the numbers.
const (
	// DefaultPort is the dev cluster's port. It is not 5432 so that a dev
	// cluster never fights with a distribution's own server for the port.
	DefaultPort = 55432
	// DefaultLocalAddr is where step b looks for an existing server.
	DefaultLocalAddr = "localhost:5432"
	// DefaultMaxConnections is generous because every test package runs in
	// its own process with its own pools, all against the one shared cluster.
	DefaultMaxConnections = 200
	// DefaultStartTimeout bounds initdb and pg_ctl start each. A cold initdb
	// takes a second or two; the margin is for slow CI disks.
	DefaultStartTimeout = 2 * time.Minute
	// DefaultSpareDir is where a dev cluster lives when we are root and the
	// user that runs PostgreSQL cannot reach DataDir (see Config.SpareDir).
	DefaultSpareDir = "/var/lib/pgboot"
	// MinMajorVersion is the oldest PostgreSQL we use: DROP DATABASE … WITH
	// (FORCE), which tests rely on to clean up, arrived in 13.
	MinMajorVersion = 13
	// superuser is the role initdb creates in a dev cluster and the first
	// role tried on localhost. Using the conventional name keeps URLs the
	// same whichever OS user created the cluster.
	superuser = "postgres"
	// maintenanceDB is the database every server URL points to: it exists on
	// every cluster and is meant for exactly this kind of administrative use.
	maintenanceDB = "postgres"
)

// Config says where Ensure may look for a server and how to start one. The
// zero value is usable: every field has a default (see setDefaults).
type Config struct {
	// DatabaseURL, when not empty, is the only server Ensure considers (step
	// a): it is verified to answer and returned, and no fallback happens if
	// it does not, because a URL the user set and that silently got ignored
	// would be worse than an error. Callers pass os.Getenv("DATABASE_URL").
	// Both postgres:// URLs and keyword/value strings are accepted.
	DatabaseURL string

	// LocalAddr is the host:port of the already-running server tried in
	// step b (DefaultLocalAddr when empty).
	LocalAddr string
	// SkipLocal skips step b, forcing a dev cluster even when a server
	// answers on LocalAddr. Tests use it to exercise the dev cluster path.
	SkipLocal bool

	// DataDir is the directory that holds the dev cluster of step c: the
	// PostgreSQL data directory (DataDir/pgdata), the server log
	// (DataDir/postgres.log) and the lock file that serialises concurrent
	// callers (DataDir/lock). It must be an absolute path. When empty it is
	// a directory under os.TempDir() named after the OS user id, so that
	// users of one machine do not share a cluster.
	//
	// When we are root, PostgreSQL runs as another user, which must be able
	// to reach DataDir. If it cannot (a checkout under /root, which is
	// 0700) and DataDir holds no cluster yet, the cluster is made in
	// SpareDir instead and DataDir becomes a symbolic link to it.
	DataDir string
	// DataDirSetting names, in messages, how the user sets DataDir (such as
	// "RAPPORT_DATA_DIR"); "Config.DataDir" when empty.
	DataDirSetting string
	// SpareDir is where the cluster lives when we are root and the
	// cluster's owner cannot reach DataDir: SpareDir/<base of DataDir>-<hash
	// of its path> (DefaultSpareDir when empty). It must be an absolute path.
	SpareDir string
	// Port is the TCP port the dev cluster listens on at 127.0.0.1 when we
	// start it (DefaultPort when 0). If another program holds that port, a
	// free one is used instead, because the cluster's real port is always
	// read back from its postmaster.pid: nobody needs to know it in advance.
	Port int
	// Ephemeral turns off durability (fsync, synchronous_commit,
	// full_page_writes) and syncing during initdb. It makes a test cluster
	// several times faster and is only safe for data that may be lost on a
	// crash, so it is off by default.
	Ephemeral bool
	// MaxConnections is the dev cluster's max_connections
	// (DefaultMaxConnections when 0).
	MaxConnections int
	// BinDir, when not empty, is tried before every other place where
	// initdb, pg_ctl and postgres may be found.
	BinDir string
	// NoInstall forbids step d (installing PostgreSQL with apt-get when no
	// binaries are found and we are root on Debian or Ubuntu).
	NoInstall bool
	// StartTimeout bounds initdb and server start-up each
	// (DefaultStartTimeout when 0).
	StartTimeout time.Duration

	// Logger receives what Ensure does: which server it chose, and what it
	// initialised, started or installed and where. Nil means slog.Default().
	Logger *slog.Logger
}

// setDefaults fills every empty field with its documented default.
func (c *Config) setDefaults() {
	if c.LocalAddr == "" {
		c.LocalAddr = DefaultLocalAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir("rapport-postgres")
	}
	if c.DataDirSetting == "" {
		c.DataDirSetting = "Config.DataDir"
	}
	if c.SpareDir == "" {
		c.SpareDir = DefaultSpareDir
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// TestClusterPort is the port of the tests' shared cluster (TestConfig); not
// DefaultPort, which the development cluster of `make run` uses, so that the
// two coexist.
const TestClusterPort = 55433

// TestConfig is the configuration under which Rapport's tests get their
// server: infra/pgtest, `rapport devdb` (make test) and make test's
// pre-check (cmd/pgcheck) all use it, so that they share one throwaway
// cluster per OS user, in DefaultDataDir("rapport-pgtest") on port
// TestClusterPort, with durability off. DatabaseURL is DATABASE_URL.
// Callers set Logger.
func TestConfig() Config {
	return Config{
		DatabaseURL: os.Getenv("DATABASE_URL"),
		DataDir:     DefaultDataDir("rapport-pgtest"),
		Port:        TestClusterPort,
		Ephemeral:   true,
	}
}

// DefaultDataDir returns os.TempDir()/<prefix>-<uid>. The uid keeps users of
// one machine apart: a cluster directory belongs to one OS user.
func DefaultDataDir(prefix string) string {
	return filepath.Join(os.TempDir(), prefix+"-"+strconv.Itoa(os.Getuid()))
}

// Validate reports the first field that cannot work. Empty fields are valid:
// they mean "use the default".
func (c Config) Validate() error {
	var errs []error
	if c.DatabaseURL != "" {
		if _, err := pgconn.ParseConfig(c.DatabaseURL); err != nil {
			errs = append(errs, fmt.Errorf("DATABASE_URL is not a valid connection string: %w", err))
		}
	}
	if c.LocalAddr != "" {
		if _, port, err := net.SplitHostPort(c.LocalAddr); err != nil {
			errs = append(errs, fmt.Errorf("LocalAddr %q is not host:port: %w", c.LocalAddr, err))
		} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("LocalAddr %q has no valid port", c.LocalAddr))
		}
	}
	if c.DataDir != "" && !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("DataDir %q must be an absolute path", c.DataDir))
	}
	if c.SpareDir != "" && !filepath.IsAbs(c.SpareDir) {
		errs = append(errs, fmt.Errorf("SpareDir %q must be an absolute path", c.SpareDir))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("Port %d is outside 1-65535 (0 means %d)", c.Port, DefaultPort))
	}
	if c.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("MaxConnections %d is negative", c.MaxConnections))
	}
	if c.BinDir != "" && !filepath.IsAbs(c.BinDir) {
		errs = append(errs, fmt.Errorf("BinDir %q must be an absolute path", c.BinDir))
	}
	if c.StartTimeout < 0 {
		errs = append(errs, fmt.Errorf("StartTimeout %s is negative", c.StartTimeout))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("pgboot: invalid Config: %w", errors.Join(errs...))
}
