package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/pgboot"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// openOn starts the service (no HTTP) on a database with a master key.
func openOn(t *testing.T, dbURL string, key []byte) (*app.Main, error) {
	t.Helper()
	sep := "?"
	if strings.Contains(dbURL, "?") {
		sep = "&"
	}
	m, err := app.New(app.Config{DatabaseURL: dbURL + sep + "pool_max_conns=4", MasterKey: key})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Open(ctx); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m, nil
}

// TestDevDatabaseIsTheCheckouts: `rapport dev` from two checkouts on one
// PostgreSQL (each with its own .data/master.key) gets a database per
// checkout, so both start and nothing mixes; a checkout finds its own
// database again, also with a rotated key; the database every dev used
// before keeps serving the key it belongs to, and only that one.
func TestDevDatabaseIsTheCheckouts(t *testing.T) {
	ctx := context.Background()
	server, err := pgboot.DatabaseURL(pgtest.NewDatabase(t), "postgres")
	if err != nil {
		t.Fatal(err)
	}
	var created []string
	t.Cleanup(func() {
		for _, name := range created {
			if err := pgboot.DropDatabase(context.Background(), server, name); err != nil {
				t.Errorf("drop %s: %v", name, err)
			}
		}
	})
	suffix := make([]byte, 6)
	rand.Read(suffix)
	legacy := "rapport_legacy_" + hex.EncodeToString(suffix)
	dirA, dirB := t.TempDir(), t.TempDir()
	keyOf := func(dir string) []byte {
		encoded, err := devMasterKey(dir + "/master.key")
		if err != nil {
			t.Fatal(err)
		}
		key, err := app.ParseMasterKey(encoded)
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	a, b := keyOf(dirA), keyOf(dirB)
	if !bytes.Equal(a, keyOf(dirA)) {
		t.Fatal("a checkout's master key changed between two starts")
	}
	urlA, err := devDatabase(ctx, server, legacy, dirA, a)
	if err != nil {
		t.Fatal(err)
	}
	created = append(created, devDatabaseName(dirA))
	urlB, err := devDatabase(ctx, server, legacy, dirB, b)
	if err != nil {
		t.Fatal(err)
	}
	created = append(created, devDatabaseName(dirB))
	if urlA == urlB {
		t.Fatalf("two checkouts with different keys share the database %s", pgboot.Redact(urlA))
	}
	if again, _ := devDatabase(ctx, server, legacy, dirA, a); again != urlA {
		t.Fatalf("a checkout got another database at its second start: %s, then %s", pgboot.Redact(urlA), pgboot.Redact(again))
	}
	if rotated, _ := devDatabase(ctx, server, legacy, dirA, bytes.Repeat([]byte{1}, 32)); rotated != urlA {
		t.Fatalf("a checkout got another database after a rotation of its key: %s", pgboot.Redact(rotated))
	}
	if _, err := openOn(t, urlA, a); err != nil {
		t.Fatal(err)
	}
	if _, err := openOn(t, urlB, b); err != nil {
		t.Fatalf("the second checkout does not start beside the first: %v", err)
	}
	// The guard behind it: a key on another key's database refuses to start.
	if _, err := openOn(t, urlA, b); !errors.Is(err, postgres.ErrMasterKeyMismatch) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("a key on another key's database: %v, want a refusal naming the mismatch", err)
	}

	// The legacy database, used by the key of its data and by no other.
	legacyURL, err := pgboot.CreateDatabase(ctx, server, legacy)
	if err != nil {
		t.Fatal(err)
	}
	created = append(created, legacy)
	if got, _ := devDatabase(ctx, server, legacy, dirA, a); got != urlA {
		t.Fatalf("an empty legacy database was chosen over the key's own: %s", pgboot.Redact(got))
	}
	if _, err := openOn(t, legacyURL, a); err != nil {
		t.Fatal(err)
	}
	if got, _ := devDatabase(ctx, server, legacy, dirA, a); got != legacyURL {
		t.Fatalf("the legacy database of key A was not kept for it: %s", pgboot.Redact(got))
	}
	if got, _ := devDatabase(ctx, server, legacy, dirB, b); got != urlB {
		t.Fatalf("key B was given the legacy database of key A: %s", pgboot.Redact(got))
	}
}
