package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/pgtest"
)

// runAsRapportEnv makes the test binary behave as the rapport binary, so
// that the README's ./bin/rapport can be the code under test without a
// separate build.
const runAsRapportEnv = "RAPPORT_TEST_RUN_AS_RAPPORT"

func TestMain(m *testing.M) {
	if os.Getenv(runAsRapportEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The README's runnable part: its sh blocks from "## Try it" up to this
// heading, which the README says run top to bottom as one script.
const (
	readmeFrom = "## Try it"
	readmeTo   = "## Data for trying things"
)

// readmeScript returns the sh blocks of README.md between readmeFrom and
// readmeTo, in order.
func readmeScript(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	from, to := strings.Index(text, "\n"+readmeFrom+"\n"), strings.Index(text, "\n"+readmeTo+"\n")
	if from < 0 || to < from {
		t.Fatalf("README.md has no %q section followed by %q: this test runs what lies between", readmeFrom, readmeTo)
	}
	blocks := regexp.MustCompile("(?s)\n```sh\n(.*?)\n```").FindAllStringSubmatch(text[from:to], -1)
	if len(blocks) < 4 {
		t.Fatalf("found %d sh blocks between %q and %q, want the README's try-it script", len(blocks), readmeFrom, readmeTo)
	}
	var script strings.Builder
	for _, m := range blocks {
		script.WriteString(m[1] + "\n")
	}
	return script.String()
}

// statusLine is what the harness's curl prints to stderr after every request.
var statusLine = regexp.MustCompile(`(?m)^README-STATUS (\d{3}) (\S+)$`)

// TestReadmeRuns runs the README's "Try it" to "Projections" verbatim with
// bash, against a development instance (`rapport dev`, as make run starts
// it) on a new database, in a directory laid out like a checkout: .data/
// and bin/rapport. curl reports every status; the only error status allowed
// is the one 412 the README announces.
func TestReadmeRuns(t *testing.T) {
	var missing []string
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("the README's commands need %s (apt-get install curl jq)", strings.Join(missing, " and "))
		if os.Getenv("RAPPORT_README_TOOLS") == "required" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; set RAPPORT_README_TOOLS=required to fail instead")
	}
	script := readmeScript(t)

	// A checkout-like directory: bin/rapport is this test binary.
	checkout := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(checkout, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(checkout, "bin", "rapport")); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(checkout, ".data")

	// The instance, as make run starts it, on a database of its own.
	t.Setenv("DATABASE_URL", pgtest.NewDatabase(t))
	for _, name := range []string{"RAPPORT_DATA_DIR", "RAPPORT_MASTER_KEY", "RAPPORT_EVENT_STORE", "RAPPORT_ADDR"} {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
	ctx, stop := context.WithCancel(context.Background())
	var devOut, devErr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--data-dir", dataDir, "--addr", "127.0.0.1:0"}, &devOut, &devErr)
	}()
	stopped := false
	stopDev := func() {
		if !stopped {
			stopped = true
			stop()
			if err := <-done; err != nil {
				t.Errorf("rapport dev: %v\n%s", err, devErr.String())
			}
		}
	}
	t.Cleanup(stopDev) // before the database is dropped
	url := waitForDev(t, filepath.Join(dataDir, "dev.json"), done, &devErr)

	// The script, with the environment of a second terminal: no
	// DATABASE_URL, so the tools find the instance through .data/dev.json.
	cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+
		"curl() { command curl -w '%{stderr}README-STATUS %{http_code} %{url_effective}\\n' \"$@\"; }\n"+script)
	cmd.Dir = checkout
	cmd.Env = append(withoutEnv(withoutEnv(os.Environ(), "DATABASE_URL"), runAsRapportEnv), runAsRapportEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	runErr := cmd.Run()
	took := time.Since(began)
	stopDev()
	if runErr != nil {
		t.Fatalf("the README's script failed against %s: %v\nstdout:\n%s\nstderr:\n%s", url, runErr, stdout.String(), stderr.String())
	}

	statuses := statusLine.FindAllStringSubmatch(stderr.String(), -1)
	stale := 0
	for _, m := range statuses {
		switch code := m[1]; {
		case code == "412":
			stale++
		case code >= "400":
			t.Errorf("%s answered %s", m[2], code)
		}
	}
	if len(statuses) < 20 || stale != 1 {
		t.Errorf("%d requests with %d answers 412; want the whole script (20 or more) and exactly the one stale If-Match", len(statuses), stale)
	}
	for _, want := range []string{
		"verified 1 customers: 1 intact, 0 broken", // audit verify --all
		"State at revision 5 (6 events",            // audit replay $ID --as-of $BEFORE_CHURN: up to the survey
		"rebuilt customers",                        // projections rebuild
		`"intact":true`,                            // the verification endpoint
		"intact: 2 events, last revision 1",        // audit verify goal-$GOAL_ID: set, revised
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the script's output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	t.Logf("the README ran in %s: %d requests", took.Round(time.Millisecond), len(statuses))
}

// waitForDev waits until the development instance has written its settings
// and answers /readyz, and returns its URL.
func waitForDev(t *testing.T, devFile string, done <-chan error, devErr *bytes.Buffer) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("rapport dev ended before it was ready: %v\n%s", err, devErr.String())
		case <-time.After(50 * time.Millisecond):
		}
		info, err := readDevInfo(devFile)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			continue
		}
		resp, err := http.Get(info.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return info.URL
			}
		}
	}
	t.Fatal("rapport dev was not ready within 2 minutes")
	return ""
}
