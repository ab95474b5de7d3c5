package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/infra/pgtest"
)

// Every subcommand takes its flags after its positional arguments too, as
// the README writes them (`audit replay $ID --as-of …`). --help after an
// argument shows that: it must be read as the flag, before anything is
// opened (the context is cancelled, so nothing could start anyway).
func TestEverySubcommandTakesFlagsAfterArguments(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	id := uuid.NewString()
	for _, args := range [][]string{
		{"serve", "extra"},
		{"dev", "extra"},
		{"migrate", "extra"},
		{"apikey", "create", "extra"},
		{"apikey", "list", "extra"},
		{"apikey", "revoke", "webshop"},
		{"project", "extra"},
		{"projections", "status", "extra"},
		{"projections", "rebuild", "customers"},
		{"projections", "verify", "extra"},
		{"projections", "retry", "customers", "customer-" + id},
		{"audit", "verify", id},
		{"audit", "replay", id},
		{"seed", "extra"},
		{"bench", "extra"},
		{"webhooks", "list", "extra"},
		{"webhooks", "replay", id},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(ctx, append(args, "--help"), &stdout, &stderr)
			if !errors.Is(err, flag.ErrHelp) {
				t.Errorf("run(%q --help) = %v, want the flag read (flag.ErrHelp)\n%s", args, err, stderr.String())
			}
		})
	}
}

// writeDevSettings makes what `rapport dev` leaves in its data directory:
// dev.json with a database and a master key.
func writeDevSettings(t *testing.T, dir string) devInfo {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	info := devInfo{URL: "http://127.0.0.1:1", AdminKey: "rpk_unused", DatabaseURL: pgtest.NewDatabase(t), EventStore: "postgres", MasterKey: base64.StdEncoding.EncodeToString(key)}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeDevInfo(filepath.Join(dir, "dev.json"), info); err != nil {
		t.Fatal(err)
	}
	return info
}

// The tools read the settings of the development instance from
// RAPPORT_DATA_DIR, where `rapport dev` writes them, not from .data alone.
func TestToolsReadTheDevSettingsOfRAPPORT_DATA_DIR(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "elsewhere")
	writeDevSettings(t, dir)
	t.Setenv("RAPPORT_DATA_DIR", dir)
	for _, name := range []string{"DATABASE_URL", "RAPPORT_MASTER_KEY", "RAPPORT_EVENT_STORE"} {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
	t.Chdir(t.TempDir()) // no .data here
	for _, args := range [][]string{
		{"projections", "status"},
		{"audit", "verify", "--all"},
		{"apikey", "list"},
		{"migrate"},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(t.Context(), args, &stdout, &stderr); err != nil {
			t.Errorf("rapport %s with RAPPORT_DATA_DIR=%s: %v\n%s", strings.Join(args, " "), dir, err, stderr.String())
		}
	}
}

// Without any settings, the tools say where they looked and which
// variable points them elsewhere, rather than just "no master key".
func TestToolsSayWhereTheyLookedForSettings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "empty")
	t.Setenv("RAPPORT_DATA_DIR", dir)
	for _, name := range []string{"DATABASE_URL", "RAPPORT_MASTER_KEY"} {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
	for _, args := range [][]string{{"projections", "status"}, {"audit", "verify", "--all"}, {"apikey", "list"}} {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "dev.json")) || !strings.Contains(err.Error(), "RAPPORT_DATA_DIR") || !strings.Contains(err.Error(), "make run") {
			t.Errorf("rapport %s without settings = %v, want where it looked and how to point it", strings.Join(args, " "), err)
		}
	}
}
