package postgres_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// TestWritesFlushedByAppends: with the embedded event store, the email
// reservation and a new data key commit without waiting for their flush;
// they keep their semantics (one holder per email, one key per customer),
// and the setting stays within their transaction: the connection goes
// back to the pool committing synchronously.
func TestWritesFlushedByAppends(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // every statement on the one connection
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	synchronous := func() {
		t.Helper()
		var setting string
		if err := pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&setting); err != nil || setting != "on" {
			t.Fatalf("synchronous_commit is %q (%v) after the write: the setting leaked out of its transaction", setting, err)
		}
	}

	emails := postgres.NewEmailIndex(pool, randomKey(t)).FlushedByAppends()
	ada, bob := uuid.New(), uuid.New()
	if holder, _, _, err := emails.Reserve(ctx, "ada@example.com", ada); err != nil || holder != ada {
		t.Fatalf("reserve: %v, %v", holder, err)
	}
	synchronous()
	if holder, _, _, err := emails.Reserve(ctx, "ada@example.com", bob); err != nil || holder != ada {
		t.Fatalf("a second customer's reservation answered %v, %v; want the holder %v", holder, err, ada)
	}
	synchronous()

	master := randomKey(t)
	k, err := postgres.NewKeyring(pool, master, postgres.KeyringConfig{FlushedByAppends: true})
	if err != nil {
		t.Fatal(err)
	}
	key, err := k.CreateDataKey(ctx, ada)
	if err != nil {
		t.Fatal(err)
	}
	synchronous()
	if again, err := keyring(t, pool, master).DataKey(ctx, ada, true); err != nil || !bytes.Equal(again, key) {
		t.Fatalf("the stored key %x, %v; want %x", again, err, key)
	}
}
