package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rapport-crm/rapport/cmd/rapport/internal/bench"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

func TestResolveBenchTarget(t *testing.T) {
	dev := devInfo{URL: "http://localhost:8080", AdminKey: "rpk_dev", DatabaseURL: "postgres://dev/rapport", EventStore: "postgres", MasterKey: "devkey"}
	env := serviceFlags{databaseURL: "postgres://env/db", eventStore: "esdb://env:2113", masterKey: "envkey"}
	for _, tc := range []struct {
		name     string
		o        benchOptions
		explicit map[string]bool
		haveDev  bool
		wantURL  string
		wantKey  string
		wantDB   string
		wantES   string
		wantMK   string
	}{
		{name: "the development instance", haveDev: true,
			wantURL: dev.URL, wantKey: "rpk_dev", wantDB: dev.DatabaseURL, wantES: "postgres", wantMK: "devkey"},
		{name: "the development instance by another name", o: benchOptions{url: "http://127.0.0.1:8080/", key: "rpk_mine"}, haveDev: true,
			wantURL: "http://127.0.0.1:8080", wantKey: "rpk_mine", wantDB: dev.DatabaseURL, wantES: "postgres", wantMK: "devkey"},
		{name: "a flag beats dev.json", explicit: map[string]bool{"database-url": true}, haveDev: true,
			wantURL: dev.URL, wantKey: "rpk_dev", wantDB: env.databaseURL, wantES: "postgres", wantMK: "devkey"},
		{name: "another service", o: benchOptions{url: "http://rapport.internal:8080", key: "rpk_prod"}, haveDev: true,
			wantURL: "http://rapport.internal:8080", wantKey: "rpk_prod", wantDB: env.databaseURL, wantES: env.eventStore, wantMK: "envkey"},
		{name: "no development instance", wantURL: "http://localhost:8080", wantDB: env.databaseURL, wantES: env.eventStore, wantMK: "envkey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, f := tc.o, env
			resolveBenchTarget(&o, &f, tc.explicit, dev, tc.haveDev)
			if o.url != tc.wantURL || o.key != tc.wantKey || o.auditKey != tc.wantKey || f.databaseURL != tc.wantDB || f.eventStore != tc.wantES || f.masterKey != tc.wantMK {
				t.Errorf("got url %q key %q audit %q db %q store %q master %q", o.url, o.key, o.auditKey, f.databaseURL, f.eventStore, f.masterKey)
			}
		})
	}
}

// TestBenchCommand runs `rapport bench` briefly against the service in
// process, with the database but no master key (so the baseline runs and
// the engine's parts are skipped), and reads back its JSON.
func TestBenchCommand(t *testing.T) {
	m := apptest.MustOpen(t)
	for _, name := range []string{"RAPPORT_MASTER_KEY", "RAPPORT_KEY", "RAPPORT_URL", "RAPPORT_AUDIT_KEY", "RAPPORT_BENCH_DURATION", "RAPPORT_BENCH_CLIENTS", "RAPPORT_EVENT_STORE"} {
		t.Setenv(name, "")
	}
	out := filepath.Join(t.TempDir(), "results", "run.json")
	var stdout, stderr bytes.Buffer
	err := runBench(context.Background(), []string{
		"--url", m.URL, "--key", m.Keys["admin"], "--clients", "2", "--commands", "120",
		"--database-url", m.DatabaseURL, "--baseline-duration", "200ms", "--no-rebuild",
		"--dev-file", filepath.Join(t.TempDir(), "none.json"), "--out", out,
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "\nPASS: 0 lost of ") {
		t.Fatalf("no PASS line:\n%s", stdout.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res bench.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Pass || res.Load.Accepted == 0 || res.Baseline == nil || res.Run.Machine.GoVersion == "" {
		t.Fatalf("results: pass %v, %d accepted, baseline %+v, machine %+v", res.Pass, res.Load.Accepted, res.Baseline, res.Run.Machine)
	}
}
