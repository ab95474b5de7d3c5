package pgboot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The layout of Config.DataDir.
const (
	pgdataName = "pgdata"       // the PostgreSQL data directory
	logName    = "postgres.log" // the server log, appended to by every start
	lockName   = "lock"         // flock'ed while a caller checks, inits or starts the cluster
	markerName = "initialized"  // written once initdb and our set-up succeeded
	confName   = "pgboot.conf"  // in pgdata; included by postgresql.conf, rewritten at every start

	// installLockName, in os.TempDir(), is flock'ed while PostgreSQL is
	// being installed.
	installLockName = "pgboot-install.lock"
)

// maxSocketPath is the longest Unix socket path Linux accepts (sun_path is
// 108 bytes with the NUL). PostgreSQL refuses to start when it cannot make
// any socket in unix_socket_directories, so a longer path means no socket.
const maxSocketPath = 107

// cluster is a dev cluster: where it lives and which OS user runs it.
type cluster struct {
	dataDir string  // Config.DataDir as given: what Server and messages name
	root    string  // where the files are: DataDir, or what it links to (see relocate)
	pgdata  string  // root/pgdata
	logFile string  // root/postgres.log
	owner   *osUser // runs initdb, pg_ctl and postgres; nil means the current user
	log     *slog.Logger
	// setting names how the user sets DataDir, for messages.
	setting  string
	spareDir string // Config.SpareDir
}

func newCluster(cfg Config) *cluster {
	c := &cluster{dataDir: cfg.DataDir, log: cfg.Logger, setting: cfg.DataDirSetting, spareDir: cfg.SpareDir}
	root := cfg.DataDir
	if fi, err := os.Lstat(root); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if target, err := filepath.EvalSymlinks(root); err == nil {
			root = target
		}
	}
	c.setRoot(root)
	return c
}

func (c *cluster) setRoot(root string) {
	c.root = root
	c.pgdata = filepath.Join(root, pgdataName)
	c.logFile = filepath.Join(root, logName)
}

// ensureCluster is steps c and d: reuse the dev cluster if it runs, else
// find or install binaries, choose who runs the cluster (only now: when we
// are root, the "postgres" user may have come with the installation), and
// under the cluster's lock repair, initialise and start it as needed.
func ensureCluster(ctx context.Context, cfg Config, h host, localNote string) (*Server, error) {
	c := newCluster(cfg)
	// Without the lock first: when many test processes start at once, all
	// but the first find the cluster running and need not queue up.
	if srv := c.reuse(ctx); srv != nil {
		return srv, nil
	}
	bins, installed, err := findOrInstall(ctx, h, c.log, localNote)
	if err != nil {
		return nil, err
	}
	if err := c.chooseOwner(h.lookupUser); err != nil {
		return nil, err
	}
	if err := c.prepareRoot(); err != nil {
		return nil, err
	}
	lock, srv, err := c.lockOrReuse(ctx)
	if err != nil || srv != nil {
		return srv, err
	}
	defer lock.close()
	if c.owner != nil {
		if err := c.repairOwnership(); err != nil {
			return nil, err
		}
	}

	bin, err := c.pickBinaries(bins, cfg.Ephemeral)
	if err != nil {
		return nil, err
	}
	if !c.initialized() {
		if err := c.initdb(ctx, bin, cfg); err != nil {
			return nil, err
		}
	}
	srv, err = c.start(ctx, bin, cfg)
	if err != nil && cfg.Ephemeral && !c.postmasterAlive() {
		// An ephemeral cluster runs without fsync, so a machine crash can
		// leave it unable to start. Its data is meant to be lost: make it
		// again rather than fail every test run until someone deletes it.
		c.log.Warn("pgboot: the ephemeral cluster does not start; making it again", "dir", c.dataDir, "err", err)
		if err = os.Remove(filepath.Join(c.root, markerName)); err == nil {
			if err = c.initdb(ctx, bin, cfg); err == nil {
				srv, err = c.start(ctx, bin, cfg)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if installed != "" {
		srv.Source = fmt.Sprintf("installed and started PostgreSQL %s (%s); dev cluster at %s", bin.Version, installed, c.dataDir)
	}
	return srv, nil
}

// findOrInstall returns the installed server binaries, installing them
// (step d) when there are none. Installing takes a machine-wide lock, so
// that of many processes that find nothing at once, one runs apt-get and
// the others wait for it and then find what it installed; apt-get run
// concurrently fails on its own locks rather than wait.
func findOrInstall(ctx context.Context, h host, log *slog.Logger, localNote string) (bins []binDir, installed string, err error) {
	bins, skipped := h.finder.find(ctx)
	if len(bins) > 0 {
		return bins, "", nil
	}
	ok, why := h.inst.plan()
	if !ok {
		return nil, "", noServerError(localNote, skipped, "PostgreSQL was not installed automatically: "+why)
	}
	lock, err := waitLock(ctx, filepath.Join(os.TempDir(), installLockName))
	if err != nil {
		return nil, "", err
	}
	defer lock.close()
	if bins, skipped = h.finder.find(ctx); len(bins) > 0 {
		return bins, "", nil // another process installed them while we waited
	}
	desc, err := h.inst.install(ctx, log)
	if err != nil {
		return nil, "", noServerError(localNote, skipped, fmt.Sprintf("installing PostgreSQL automatically failed: %v", err))
	}
	if bins, skipped = h.finder.find(ctx); len(bins) == 0 {
		return nil, "", noServerError(localNote, skipped, desc+" succeeded, yet no server binaries were found afterwards")
	}
	return bins, desc, nil
}

// lockOrReuse takes the cluster's lock, unless the cluster starts answering
// while we wait for it: then it returns the cluster instead. Without that,
// the callers queued behind the one starting the cluster would go through
// the lock one poll interval at a time.
func (c *cluster) lockOrReuse(ctx context.Context) (*fileLock, *Server, error) {
	lock, err := openLock(filepath.Join(c.root, lockName))
	if err != nil {
		return nil, nil, err
	}
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		locked, err := lock.tryLock()
		if err != nil {
			lock.close()
			return nil, nil, err
		}
		// Checked also once we hold the lock: whoever held it before us may
		// just have started the cluster.
		if srv := c.reuse(ctx); srv != nil {
			lock.close()
			return nil, srv, nil
		}
		if locked {
			return lock, nil, nil
		}
		select {
		case <-ctx.Done():
			lock.close()
			return nil, nil, fmt.Errorf("pgboot: waiting for %s (another process is starting the cluster): %w", lock.path, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// url is the dev cluster's maintenance database URL. sslmode=disable
// because the cluster has no certificate: asking for TLS would only cost
// a round trip on every connection.
func (c *cluster) url(port int) string {
	return serverURLFor(superuser, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), url.Values{"sslmode": {"disable"}})
}

// reuse returns the dev cluster if a server started from its data directory
// answers. The port comes from postmaster.pid, so it does not matter which
// port the cluster was given when it started. The server's data_directory is
// checked so that a stale postmaster.pid cannot make us use another server
// that happens to have taken its port.
func (c *cluster) reuse(ctx context.Context) *Server {
	port, ok := postmasterPort(filepath.Join(c.pgdata, "postmaster.pid"))
	if !ok {
		return nil
	}
	u := c.url(port)
	conn, err := connect(ctx, u)
	if err != nil {
		c.log.Debug("pgboot: the dev cluster's postmaster.pid is stale or the server is not ready", "dir", c.dataDir, "err", err)
		return nil
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var versionNum int
	var dataDir string
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, current_setting('data_directory')`).Scan(&versionNum, &dataDir)
	if err != nil || !samePath(dataDir, c.pgdata) {
		c.log.Debug("pgboot: the server on the dev cluster's port is another one", "dir", c.root, "port", port, "data_directory", dataDir, "err", err)
		return nil
	}
	c.log.Info("pgboot: using the running dev cluster", "url", u, "dir", c.dataDir)
	return &Server{URL: u, Source: c.source(), DataDir: c.dataDir, Version: versionNum / 10000}
}

// postmasterPort reads the port (the fourth line) of a postmaster.pid file.
func postmasterPort(pidFile string) (int, bool) {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) < 4 {
		return 0, false // still being written by a starting postmaster
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err != nil || port < 1 || port > 65535 {
		return 0, false
	}
	return port, true
}

// postmasterAlive reports whether the process named in postmaster.pid
// exists, in which case pgdata must not be touched.
func (c *cluster) postmasterAlive() bool {
	data, err := os.ReadFile(filepath.Join(c.pgdata, "postmaster.pid"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// samePath reports whether a and b name the same directory.
func samePath(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

// initialized reports whether pgdata holds a cluster that our initdb
// finished setting up. A pgdata without the marker is the remains of an
// initdb that was killed, and is made again.
func (c *cluster) initialized() bool {
	_, err1 := os.Stat(filepath.Join(c.root, markerName))
	_, err2 := os.Stat(filepath.Join(c.pgdata, "PG_VERSION"))
	return err1 == nil && err2 == nil
}

// pickBinaries chooses the binaries that can run the existing cluster, whose
// files only the major version that created them can read. An ephemeral
// cluster made by a version that is gone is simply made again; a durable one
// is the user's data, so we ask instead of deleting it.
func (c *cluster) pickBinaries(bins []binDir, ephemeral bool) (binDir, error) {
	if !c.initialized() {
		return bins[0], nil
	}
	data, err := os.ReadFile(filepath.Join(c.pgdata, "PG_VERSION"))
	if err != nil {
		return binDir{}, fmt.Errorf("pgboot: read cluster version: %w", err)
	}
	major, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return binDir{}, fmt.Errorf("pgboot: %s/PG_VERSION holds %q, not a version", c.pgdata, data)
	}
	var have []string
	for _, b := range bins {
		if b.Major == major {
			return b, nil
		}
		have = append(have, b.Version)
	}
	if ephemeral {
		c.log.Warn(fmt.Sprintf("pgboot: the ephemeral cluster in %s was made by PostgreSQL %d, which is no longer installed; making it again with %s", c.root, major, bins[0].Version))
		if err := os.Remove(filepath.Join(c.root, markerName)); err != nil {
			return binDir{}, fmt.Errorf("pgboot: %w", err)
		}
		return bins[0], nil
	}
	return binDir{}, fmt.Errorf("pgboot: the dev cluster in %s was made by PostgreSQL %d, but only %s is installed; install PostgreSQL %d again, or delete %s to start afresh (its data will be lost)",
		c.dataDir, major, strings.Join(have, ", "), major, c.dataDir)
}

// initdb makes the cluster: trust auth (it only listens on loopback and on a
// socket inside pgdata), UTF8, and the C locale so that sorting does not
// depend on the machine. Ephemeral clusters skip the final fsync of initdb.
func (c *cluster) initdb(ctx context.Context, bin binDir, cfg Config) error {
	start := time.Now()
	if err := os.RemoveAll(c.pgdata); err != nil {
		return fmt.Errorf("pgboot: remove the remains of an unfinished initdb: %w", err)
	}
	args := []string{"-D", c.pgdata, "--username=" + superuser, "--auth=trust", "--encoding=UTF8", "--locale=C"}
	if cfg.Ephemeral {
		args = append(args, "--no-sync")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if out, err := c.command(ctx, bin.path("initdb"), args...).CombinedOutput(); err != nil {
		return fmt.Errorf("pgboot: initdb -D %s (as %s) failed: %w\n%s", c.pgdata, c.ownerName(), err, lastLines(out, 20))
	}
	include := "\n# Added by pgboot: the settings it rewrites before every start.\ninclude_if_exists = '" + confName + "'\n"
	if err := appendFile(filepath.Join(c.pgdata, "postgresql.conf"), include); err != nil {
		return err
	}
	if err := c.writeOwnedFile(filepath.Join(c.root, markerName), "PostgreSQL "+bin.Version+"\n"); err != nil {
		return err
	}
	c.log.Info("pgboot: initialised a PostgreSQL cluster", "version", bin.Version, "pgdata", c.pgdata, "owner", c.ownerName(), "took", since(start))
	return nil
}

// confParams are the settings pgboot owns; see renderConf.
type confParams struct {
	Port           int
	SocketDir      string // "" for no Unix socket
	MaxConnections int
	Ephemeral      bool
}

// renderConf writes the settings file that postgresql.conf includes. They
// are written at every start rather than passed with pg_ctl -o, which goes
// through a shell and would need quoting for paths.
func renderConf(p confParams) string {
	var b strings.Builder
	b.WriteString("# Written by pgboot before every start of this cluster: edits are lost.\n")
	b.WriteString("listen_addresses = '127.0.0.1'\n")
	fmt.Fprintf(&b, "port = %d\n", p.Port)
	fmt.Fprintf(&b, "unix_socket_directories = %s\n", quoteConf(p.SocketDir))
	fmt.Fprintf(&b, "max_connections = %d\n", p.MaxConnections)
	if p.Ephemeral {
		b.WriteString("# Ephemeral: a crash may lose or corrupt data, which tests do not care about.\n")
		b.WriteString("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
	}
	return b.String()
}

func quoteConf(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// socketDir is pgdata when the socket path fits, else "" (TCP only). The
// socket lives in pgdata so that it can never collide with a system server's
// socket in /var/run/postgresql, which the owner may not even write to.
func (c *cluster) socketDir(port int) string {
	if len(filepath.Join(c.pgdata, ".s.PGSQL."+strconv.Itoa(port))) > maxSocketPath {
		return ""
	}
	return c.pgdata
}

// start writes the settings and starts the server with pg_ctl, trying
// another port if the chosen one is taken meanwhile.
func (c *cluster) start(ctx context.Context, bin binDir, cfg Config) (*Server, error) {
	began := time.Now()
	preferred := cfg.Port
	var port int
	for attempt := 1; ; attempt++ {
		var err error
		if port, err = choosePort(preferred); err != nil {
			return nil, err
		}
		if port != cfg.Port {
			c.log.Warn(fmt.Sprintf("pgboot: port %d is taken; the dev cluster will listen on %d", cfg.Port, port))
		}
		conf := renderConf(confParams{Port: port, SocketDir: c.socketDir(port), MaxConnections: cfg.MaxConnections, Ephemeral: cfg.Ephemeral})
		if err := c.writeOwnedFile(filepath.Join(c.pgdata, confName), conf); err != nil {
			return nil, err
		}
		serverLog, err := c.pgCtlStart(ctx, bin, cfg.StartTimeout)
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(serverLog, "Address already in use") {
			return nil, err
		}
		preferred = 0 // someone took the port between our check and the start
	}

	u := c.url(port)
	info, err := probe(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("pgboot: the dev cluster started but does not answer (server log: %s): %w", c.logFile, err)
	}
	c.log.Info("pgboot: started a PostgreSQL dev cluster", "version", bin.Version, "url", u, "dir", c.dataDir,
		"log", c.logFile, "owner", c.ownerName(), "ephemeral", cfg.Ephemeral, "took", since(began))
	timeout := cfg.StartTimeout
	return &Server{
		URL:     u,
		Source:  c.source(),
		Started: true,
		DataDir: c.dataDir,
		Version: info.Major,
		stop:    func(ctx context.Context) error { return c.stop(ctx, bin, timeout) },
	}, nil
}

// choosePort returns preferred if nothing listens on it at 127.0.0.1, else a
// port the kernel says is free.
func choosePort(preferred int) (int, error) {
	if preferred > 0 {
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(preferred))); err == nil {
			l.Close()
			return preferred, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgboot: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pgCtlStart runs pg_ctl start and waits until the server accepts
// connections. On failure it returns what this start wrote to the server
// log, so that the error shows the server's own reason. pg_ctl's output goes
// to a file, not a pipe: a pipe would keep Wait waiting if the server ever
// inherited it. Setsid keeps the server out of our terminal's process group,
// so that Ctrl-C on one `go test` does not kill the cluster other test
// processes share.
func (c *cluster) pgCtlStart(ctx context.Context, bin binDir, timeout time.Duration) (serverLog string, err error) {
	logOffset := int64(0)
	if fi, err := os.Stat(c.logFile); err == nil {
		logOffset = fi.Size()
	}
	out, err := os.CreateTemp("", "pgboot-pg_ctl-*.out")
	if err != nil {
		return "", fmt.Errorf("pgboot: %w", err)
	}
	defer os.Remove(out.Name())
	defer out.Close()

	cmd := c.command(ctx, bin.path("pg_ctl"), "start", "-D", c.pgdata, "-l", c.logFile, "-w", "-t", seconds(timeout))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr.Setsid = true
	if runErr := cmd.Run(); runErr != nil {
		pgCtlOut, _ := os.ReadFile(out.Name())
		serverLog = readFrom(c.logFile, logOffset)
		return serverLog, fmt.Errorf("pgboot: pg_ctl start -D %s (as %s) failed: %w\n%s\nserver log %s:\n%s",
			c.pgdata, c.ownerName(), runErr, lastLines(pgCtlOut, 10), c.logFile, lastLines([]byte(serverLog), 20))
	}
	return "", nil
}

// stop stops the server (fast mode: sessions are disconnected, nothing is
// lost) and waits until it is down.
func (c *cluster) stop(ctx context.Context, bin binDir, timeout time.Duration) error {
	began := time.Now()
	out, err := c.command(ctx, bin.path("pg_ctl"), "stop", "-D", c.pgdata, "-m", "fast", "-w", "-t", seconds(timeout)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgboot: pg_ctl stop -D %s failed: %w\n%s", c.pgdata, err, lastLines(out, 10))
	}
	c.log.Info("pgboot: stopped the PostgreSQL dev cluster", "dir", c.dataDir, "took", since(began))
	return nil
}

// command prepares a PostgreSQL program to run as the cluster's owner, in
// DataDir (the owner may not be able to enter our working directory), with
// an environment that cannot redirect it: no PG* variables (PGDATA, PGPORT…)
// and English messages, which start's retry looks for.
func (c *cluster) command(ctx context.Context, program string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Dir = c.root
	cmd.Env = childEnv(os.Environ(), c.owner != nil, c.root)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if c.owner != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.owner.uid, Gid: c.owner.gid, Groups: c.owner.groups}
	}
	return cmd
}

func childEnv(environ []string, switchUser bool, home string) []string {
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "PG"), strings.HasPrefix(name, "LC_"), name == "LANG", name == "LANGUAGE":
			continue
		case switchUser && (name == "HOME" || name == "USER" || name == "LOGNAME"):
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C")
	if switchUser {
		env = append(env, "HOME="+home)
	}
	return env
}

// source is Server.Source for the dev cluster: DataDir, and where the
// cluster really is when DataDir links elsewhere (see relocate).
func (c *cluster) source() string {
	if c.root != c.dataDir {
		return fmt.Sprintf("dev cluster at %s (a link to %s)", c.dataDir, c.root)
	}
	return "dev cluster at " + c.dataDir
}

func (c *cluster) ownerName() string {
	if c.owner == nil {
		if u, err := user.Current(); err == nil {
			return u.Username
		}
		return strconv.Itoa(os.Getuid())
	}
	return c.owner.name
}

// writeOwnedFile writes a file of the cluster that belongs to its owner.
func (c *cluster) writeOwnedFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("pgboot: %w", err)
	}
	if c.owner != nil {
		if err := os.Chown(path, int(c.owner.uid), int(c.owner.gid)); err != nil {
			return fmt.Errorf("pgboot: %w", err)
		}
	}
	return nil
}

func appendFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgboot: %w", err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return fmt.Errorf("pgboot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pgboot: %w", err)
	}
	return nil
}

// readFrom returns what path holds after offset, at most 64 KiB of it.
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	data, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	return string(data)
}

// lastLines returns the last n lines of out, indented, for error messages.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(bytes.TrimSpace(out)), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\t" + strings.Join(lines, "\n\t")
}

func seconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second)))
}
