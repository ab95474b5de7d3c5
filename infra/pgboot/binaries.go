package pgboot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// serverPrograms are the executables a bin directory must hold to be used:
// initdb creates a cluster, pg_ctl starts and stops it, and pg_ctl runs the
// postgres next to it.
var serverPrograms = []string{"initdb", "pg_ctl", "postgres"}

// defaultBinGlobs are where distributions put versioned server binaries that
// are not on PATH: Debian and Ubuntu (/usr/lib/postgresql/N/bin), the PGDG
// RPMs (/usr/pgsql-N/bin) and a source build's default prefix.
var defaultBinGlobs = []string{
	"/usr/lib/postgresql/*/bin",
	"/usr/pgsql-*/bin",
	"/usr/local/pgsql/bin",
}

// binDir is a directory holding initdb, pg_ctl and postgres of one version.
type binDir struct {
	Dir     string
	Major   int    // e.g. 15
	Version string // e.g. "15.4"
}

func (b binDir) path(program string) string { return filepath.Join(b.Dir, program) }

// binFinder finds PostgreSQL server binaries. Its fields are the places it
// looks, so that tests can point it at fake installations.
type binFinder struct {
	explicit string   // Config.BinDir, tried first
	pathEnv  string   // the PATH to search for pg_config and initdb
	globs    []string // versioned directories, newest version first
}

func newBinFinder(explicit string) binFinder {
	return binFinder{explicit: explicit, pathEnv: os.Getenv("PATH"), globs: defaultBinGlobs}
}

// candidates returns the directories that hold all of serverPrograms, in the
// order they should be preferred: the explicit BinDir, `pg_config --bindir`
// (the installation the user's tools are built against), the directories of
// PATH in order (what the user chose), then the well-known versioned
// directories, newest version first. A directory reached twice (say through
// /usr/local/bin symlinks into /usr/lib/postgresql/15/bin) is kept once, at
// its first place.
func (f binFinder) candidates(ctx context.Context) []string {
	var dirs []string
	add := func(d string) {
		if d != "" && hasServerPrograms(d) {
			dirs = append(dirs, filepath.Clean(d))
		}
	}
	add(f.explicit)
	if pgConfig := lookPathIn("pg_config", f.pathEnv); pgConfig != "" {
		add(pgConfigBinDir(ctx, pgConfig))
	}
	for _, d := range filepath.SplitList(f.pathEnv) {
		if filepath.IsAbs(d) {
			add(d)
		}
	}
	for _, g := range f.globs {
		matches, _ := filepath.Glob(g)
		sortByVersionDesc(matches)
		for _, m := range matches {
			add(m)
		}
	}
	return dedupeByTarget(dirs)
}

// find returns the usable bin directories (version >= MinMajorVersion) in the
// order of candidates, and one note per directory it had to pass over, so
// that "nothing found" can say what was seen.
func (f binFinder) find(ctx context.Context) (found []binDir, skipped []string) {
	for _, d := range f.candidates(ctx) {
		version, major, err := serverVersion(ctx, filepath.Join(d, "postgres"))
		switch {
		case err != nil:
			skipped = append(skipped, fmt.Sprintf("%s: %v", d, err))
		case major < MinMajorVersion:
			skipped = append(skipped, fmt.Sprintf("%s: PostgreSQL %s is older than %d", d, version, MinMajorVersion))
		default:
			found = append(found, binDir{Dir: d, Major: major, Version: version})
		}
	}
	return found, skipped
}

func hasServerPrograms(dir string) bool {
	for _, p := range serverPrograms {
		if !isExecutable(filepath.Join(dir, p)) {
			return false
		}
	}
	return true
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// lookPathIn is exec.LookPath over an explicit PATH value, so that tests do
// not have to change the process environment.
func lookPathIn(program, pathEnv string) string {
	for _, d := range filepath.SplitList(pathEnv) {
		if !filepath.IsAbs(d) {
			continue // a relative PATH entry would depend on our working directory
		}
		if p := filepath.Join(d, program); isExecutable(p) {
			return p
		}
	}
	return ""
}

func pgConfigBinDir(ctx context.Context, pgConfig string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// dedupeByTarget drops directories whose postgres resolves (through
// symlinks) to the same file as an earlier directory's.
func dedupeByTarget(dirs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range dirs {
		key, err := filepath.EvalSymlinks(filepath.Join(d, "postgres"))
		if err != nil {
			key = d
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, d)
	}
	return out
}

// versionInPath matches the version in a versioned directory name, such as
// the "15" of /usr/lib/postgresql/15/bin or the "9.6" of /usr/pgsql-9.6/bin.
var versionInPath = regexp.MustCompile(`(\d+)(?:\.(\d+))?`)

// pathVersion is the last version-looking number in path, as (major, minor);
// (-1, -1) when there is none, which sorts after every versioned path.
func pathVersion(path string) (int, int) {
	m := versionInPath.FindAllStringSubmatch(path, -1)
	if m == nil {
		return -1, -1
	}
	last := m[len(m)-1]
	major, _ := strconv.Atoi(last[1])
	minor := 0
	if last[2] != "" {
		minor, _ = strconv.Atoi(last[2])
	}
	return major, minor
}

// sortByVersionDesc orders paths newest version first, numerically (so 10
// comes before 9.6), and by name when versions are equal.
func sortByVersionDesc(paths []string) {
	slices.SortStableFunc(paths, func(a, b string) int {
		amaj, amin := pathVersion(a)
		bmaj, bmin := pathVersion(b)
		if amaj != bmaj {
			return bmaj - amaj
		}
		if amin != bmin {
			return bmin - amin
		}
		return strings.Compare(a, b)
	})
}

// postgresVersionOutput matches `postgres --version` output such as
// "postgres (PostgreSQL) 15.4 (Debian 15.4-1)" or "postgres (PostgreSQL) 17beta1".
var postgresVersionOutput = regexp.MustCompile(`\(PostgreSQL\)\s+((\d+)[0-9A-Za-z.]*)`)

// serverVersion runs `postgres --version`, which works even as root (the
// refusal to run as root comes later), and returns the version and major.
func serverVersion(ctx context.Context, postgres string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, postgres, "--version").Output()
	if err != nil {
		return "", 0, fmt.Errorf("%s --version: %w", postgres, err)
	}
	return parseServerVersion(out)
}

func parseServerVersion(out []byte) (string, int, error) {
	m := postgresVersionOutput.FindSubmatch(out)
	if m == nil {
		return "", 0, fmt.Errorf("unrecognised version output %q", bytes.TrimSpace(out))
	}
	major, err := strconv.Atoi(string(m[2]))
	if err != nil {
		return "", 0, fmt.Errorf("unrecognised version output %q", bytes.TrimSpace(out))
	}
	return string(m[1]), major, nil
}
