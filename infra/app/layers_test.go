package app_test

import (
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The module's layering, checked from the source's own import lines (no
// go list, no network, no git): `make vet` runs TestLayers.
//
//	cmd/ ──► infra/ (adapters, composition root) ──► readmodels/ ──► projections/ ──► domain/
//	                                             └──► commands/ ─────────────────────► domain/
//
// Arrows point inwards only. Test files may import anything: tests are
// where the inner layers meet the real adapters.
const module = "github.com/rapport-crm/rapport"

// layerRule says which module packages a package under a prefix may not
// import, and whether it may import anything outside the standard library
// beyond the allowed list.
type layerRule struct {
	prefix    string   // package directory prefix, e.g. "domain"
	forbidden []string // module directories it must not import
	// external, when not nil, is the only non-standard, non-module imports
	// allowed (the pure core: standard library and uuid).
	external []string
}

var layerRules = []layerRule{
	{prefix: "domain", forbidden: []string{"commands", "projections", "readmodels", "infra", "cmd"}, external: []string{"github.com/google/uuid"}},
	{prefix: "commands", forbidden: []string{"projections", "readmodels", "infra", "cmd"}},
	{prefix: "projections", forbidden: []string{"commands", "readmodels", "infra", "cmd"}},
	{prefix: "readmodels", forbidden: []string{"commands", "infra", "cmd"}},
	{prefix: "infra", forbidden: []string{"cmd"}},
}

// TestLayers fails when a non-test file breaks the layering.
func TestLayers(t *testing.T) {
	root := filepath.Join("..", "..")
	violations, err := checkLayers(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		t.Error(v)
	}
}

// TestLayersCatchAPlantedViolation plants the violation the rule exists
// for (a read model importing an adapter) and a domain file importing a
// driver, so the check is seen to fail.
func TestLayersCatchAPlantedViolation(t *testing.T) {
	root := t.TempDir()
	plant := func(path, src string) {
		t.Helper()
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plant("readmodels/bad/bad.go", "package bad\nimport _ \""+module+"/infra/postgres\"\n")
	plant("readmodels/bad/bad_test.go", "package bad\nimport _ \""+module+"/infra/pgtest\"\n") // tests may
	plant("domain/bad.go", "package domain\nimport _ \"github.com/jackc/pgx/v5\"\n")
	plant("commands/ok.go", "package commands\nimport _ \""+module+"/domain/eventstore\"\n")
	violations, err := checkLayers(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"domain/bad.go imports github.com/jackc/pgx/v5: domain may import only the standard library and [github.com/google/uuid]",
		"readmodels/bad/bad.go imports " + module + "/infra/postgres: readmodels must not import infra",
	}
	if !slices.Equal(violations, want) {
		t.Fatalf("violations:\n%s\nwant:\n%s", strings.Join(violations, "\n"), strings.Join(want, "\n"))
	}
}

// checkLayers parses the import lines of every non-test Go file below root
// and returns the broken rules, sorted.
func checkLayers(root string) ([]string, error) {
	var violations []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if name := d.Name(); rel != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, spec := range f.Imports {
			imp, _ := strconv.Unquote(spec.Path.Value)
			if v := judgeImport(rel, imp); v != "" {
				violations = append(violations, v)
			}
		}
		return nil
	})
	slices.Sort(violations)
	return violations, err
}

func judgeImport(file, imp string) string {
	for _, r := range layerRules {
		if !strings.HasPrefix(file, r.prefix+"/") {
			continue
		}
		if dir, ok := strings.CutPrefix(imp, module+"/"); ok {
			for _, f := range r.forbidden {
				if dir == f || strings.HasPrefix(dir, f+"/") {
					return fmt.Sprintf("%s imports %s: %s must not import %s", file, imp, r.prefix, f)
				}
			}
			continue
		}
		if r.external != nil && !isStandard(imp) && !slices.Contains(r.external, imp) {
			return fmt.Sprintf("%s imports %s: %s may import only the standard library and %v", file, imp, r.prefix, r.external)
		}
	}
	return ""
}

// isStandard reports a standard-library import path: its first element has
// no dot, as the go command itself decides.
func isStandard(imp string) bool {
	first, _, _ := strings.Cut(imp, "/")
	return !strings.Contains(first, ".")
}
