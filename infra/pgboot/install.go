package pgboot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"time"
)

// installer is step d. It is an interface so that tests can simulate a
// machine without PostgreSQL without installing anything.
type installer interface {
	// plan reports whether installing is possible here, and why not.
	plan() (ok bool, whyNot string)
	// install installs the server binaries and describes what it did.
	install(ctx context.Context, log *slog.Logger) (desc string, err error)
}

// aptInstaller installs the distribution's PostgreSQL on Debian and Ubuntu.
// It only runs as root: a developer who is not root is better served by an
// error that tells them the one sudo command to run than by a password
// prompt in the middle of a test run.
type aptInstaller struct{ disabled bool }

func (a aptInstaller) plan() (bool, string) {
	switch {
	case a.disabled:
		return false, "Config.NoInstall is set"
	case !fileExists("/etc/debian_version"):
		return false, "this is not Debian or Ubuntu, where pgboot knows how to install it"
	case os.Geteuid() != 0:
		return false, "not running as root (run: sudo apt-get install postgresql)"
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return false, "apt-get is not on PATH"
	}
	return true, ""
}

// aptInstallArgs is the install command. Recommends are skipped to keep the
// install small, and the dpkg lock timeout makes concurrent callers (a dev
// cluster and a test cluster being set up at once) wait for each other
// instead of failing.
var aptInstallArgs = []string{"-o", "DPkg::Lock::Timeout=600", "install", "-y", "--no-install-recommends", "postgresql"}

func (a aptInstaller) install(ctx context.Context, log *slog.Logger) (string, error) {
	began := time.Now()
	log.Info("pgboot: no PostgreSQL server binaries found; installing them with apt-get install postgresql (this takes a minute)")
	if out, err := runApt(ctx, aptInstallArgs...); err != nil {
		// Usually the package lists are missing or stale (fresh containers
		// ship without them); refresh them and try once more.
		log.Info("pgboot: apt-get install failed; running apt-get update and trying again", "err", err, "output", lastLines(out, 5))
		if out, err := runApt(ctx, "-o", "DPkg::Lock::Timeout=600", "update"); err != nil {
			return "", fmt.Errorf("apt-get update: %w\n%s", err, lastLines(out, 15))
		}
		if out, err := runApt(ctx, aptInstallArgs...); err != nil {
			return "", fmt.Errorf("apt-get install postgresql: %w\n%s", err, lastLines(out, 15))
		}
	}
	log.Info("pgboot: installed PostgreSQL with apt-get", "took", since(began))
	return "apt-get install postgresql", nil
}

func runApt(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A service that apt starts (the distribution's cluster) may inherit
	// our output; do not wait for it once apt-get itself is done.
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // apt-get succeeded; only a service it started kept the pipe
	}
	return out.Bytes(), err
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
