package pgboot

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeInstall creates dir with executable initdb, pg_ctl and postgres
// scripts; postgres --version prints version.
func fakeInstall(t *testing.T, dir, version string, programs ...string) string {
	t.Helper()
	if len(programs) == 0 {
		programs = serverPrograms
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range programs {
		script := "#!/bin/sh\necho 'fake " + p + "'\n"
		if p == "postgres" {
			script = "#!/bin/sh\necho 'postgres (PostgreSQL) " + version + " (Fake 1)'\n"
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBinFinderOrder(t *testing.T) {
	root := t.TempDir()
	ctx := t.Context()

	// pg_config (found on PATH) points at an installation that is not on PATH.
	pgConfigTarget := fakeInstall(t, filepath.Join(root, "opt", "pg14", "bin"), "14.9")
	toolsDir := filepath.Join(root, "tools")
	if err := os.MkdirAll(toolsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(toolsDir, "pg_config"), []byte("#!/bin/sh\necho "+pgConfigTarget+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pathOnly := fakeInstall(t, filepath.Join(root, "path", "bin"), "13.2")
	incomplete := fakeInstall(t, filepath.Join(root, "incomplete"), "17.0", "initdb", "pg_ctl") // no postgres
	lib := filepath.Join(root, "lib", "postgresql")
	v16 := fakeInstall(t, filepath.Join(lib, "16", "bin"), "16.4")
	v17 := fakeInstall(t, filepath.Join(lib, "17", "bin"), "17.0")
	fakeInstall(t, filepath.Join(lib, "9.6", "bin"), "9.6.24")
	fakeInstall(t, filepath.Join(lib, "10", "bin"), "10.23")
	explicit := fakeInstall(t, filepath.Join(root, "explicit"), "15.1")

	// A PATH directory whose programs are symlinks into an installation
	// found later (like /usr/local/bin on this kind of machine): kept once,
	// at its PATH position.
	links := filepath.Join(root, "links")
	if err := os.MkdirAll(links, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range serverPrograms {
		if err := os.Symlink(filepath.Join(v16, p), filepath.Join(links, p)); err != nil {
			t.Fatal(err)
		}
	}

	f := binFinder{
		explicit: explicit,
		pathEnv:  strings.Join([]string{toolsDir, "relative/dir", incomplete, pathOnly, links, pgConfigTarget}, string(os.PathListSeparator)),
		globs:    []string{filepath.Join(lib, "*", "bin")},
	}
	got, skipped := f.find(ctx)
	var gotDirs []string
	for _, b := range got {
		gotDirs = append(gotDirs, b.Dir+"@"+b.Version)
	}
	want := []string{
		explicit + "@15.1",       // Config.BinDir first
		pgConfigTarget + "@14.9", // then pg_config --bindir (and not again for its PATH entry)
		pathOnly + "@13.2",       // then PATH, in order
		links + "@16.4",          // symlinks to v16: v16 itself is not listed again
		v17 + "@17.0",            // then /usr/lib/postgresql/*/bin, newest first
	}
	if !slices.Equal(gotDirs, want) {
		t.Errorf("find() =\n  %s\nwant\n  %s", strings.Join(gotDirs, "\n  "), strings.Join(want, "\n  "))
	}
	if got[0].Major != 15 {
		t.Errorf("Major = %d, want 15", got[0].Major)
	}
	// 10 and 9.6 are too old, and say so.
	if len(skipped) != 2 || !strings.Contains(skipped[0], "10.23 is older than 13") || !strings.Contains(skipped[1], "9.6.24") {
		t.Errorf("skipped = %q, want the 10 and 9.6 installations, newest first", skipped)
	}
}

func TestBinFinderNothing(t *testing.T) {
	got, skipped := binFinder{pathEnv: t.TempDir()}.find(t.Context())
	if len(got) != 0 || len(skipped) != 0 {
		t.Errorf("find() = %v, %v; want nothing", got, skipped)
	}
}

func TestSortByVersionDesc(t *testing.T) {
	paths := []string{
		"/usr/lib/postgresql/9.6/bin",
		"/usr/lib/postgresql/10/bin",
		"/usr/lib/postgresql/16/bin",
		"/usr/local/pgsql/bin",
		"/usr/lib/postgresql/13/bin",
		"/usr/pgsql-9.5/bin",
	}
	sortByVersionDesc(paths)
	want := []string{
		"/usr/lib/postgresql/16/bin",
		"/usr/lib/postgresql/13/bin",
		"/usr/lib/postgresql/10/bin",
		"/usr/lib/postgresql/9.6/bin",
		"/usr/pgsql-9.5/bin",
		"/usr/local/pgsql/bin", // no version: last
	}
	if !slices.Equal(paths, want) {
		t.Errorf("sorted =\n  %s\nwant\n  %s", strings.Join(paths, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestParseServerVersion(t *testing.T) {
	tests := []struct {
		out     string
		version string
		major   int
	}{
		{"postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n", "15.20", 15},
		{"postgres (PostgreSQL) 17beta1", "17beta1", 17},
		{"postgres (PostgreSQL) 9.6.24", "9.6.24", 9},
		{"postgres (PostgreSQL) 13.0", "13.0", 13},
	}
	for _, tt := range tests {
		version, major, err := parseServerVersion([]byte(tt.out))
		if err != nil || version != tt.version || major != tt.major {
			t.Errorf("parseServerVersion(%q) = %q, %d, %v; want %q, %d", tt.out, version, major, err, tt.version, tt.major)
		}
	}
	if _, _, err := parseServerVersion([]byte("bash: postgres: command not found")); err == nil {
		t.Error("parseServerVersion accepted garbage")
	}
}
