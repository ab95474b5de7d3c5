package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// TestCreateDataKey: a registration's key is stored without a look-up
// first; a creation for a customer that has a key (a retried
// registration, another process) returns the stored key, and after an
// erasure (even one before any key) no key is ever made.
func TestCreateDataKey(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	if err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	master := randomKey(t)
	id := uuid.New()
	first, err := verified(t, pool, master).CreateDataKey(ctx, id)
	if err != nil || len(first) != 32 {
		t.Fatalf("create: %x, %v", first, err)
	}
	// Another process, nothing cached: the stored key, whichever way.
	other := keyring(t, pool, master)
	if again, err := other.CreateDataKey(ctx, id); err != nil || !bytes.Equal(again, first) {
		t.Fatalf("a second creation answered %x, %v; want the stored key %x", again, err, first)
	}
	if loaded, err := keyring(t, pool, master).DataKey(ctx, id, false); err != nil || !bytes.Equal(loaded, first) {
		t.Fatalf("look-up answered %x, %v; want %x", loaded, err, first)
	}

	if err := other.Destroy(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring(t, pool, master).CreateDataKey(ctx, id); !errors.Is(err, eventcodec.ErrKeyDestroyed) {
		t.Fatalf("creation after the erasure: %v, want ErrKeyDestroyed", err)
	}
	erasedFirst := uuid.New()
	if err := other.Destroy(ctx, erasedFirst); err != nil {
		t.Fatal(err)
	}
	if _, err := other.CreateDataKey(ctx, erasedFirst); !errors.Is(err, eventcodec.ErrKeyDestroyed) {
		t.Fatalf("creation after an erasure before any key: %v, want ErrKeyDestroyed", err)
	}
}
