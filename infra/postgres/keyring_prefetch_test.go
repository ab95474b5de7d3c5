package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// TestPrefetchKeys: one PrefetchKeys call caches the keys of a batch's
// customers (a destroyed one as destroyed), so that the DataKey calls that
// follow need the database no more: they still answer once its pool is
// closed. A customer without a key is left to DataKey.
func TestPrefetchKeys(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	master := randomKey(t)
	writer := keyring(t, pool, master)
	a, b, erased, none := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	want := map[uuid.UUID][]byte{}
	for _, id := range []uuid.UUID{a, b, erased} {
		k, err := writer.DataKey(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = k
	}
	if err := writer.Destroy(ctx, erased); err != nil {
		t.Fatal(err)
	}

	// A cold keyring, as a process starting a rebuild has, on a pool of
	// its own that is closed once the keys are prefetched.
	coldPool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	cold := keyring(t, coldPool, master)
	if err := cold.PrefetchKeys(ctx, []uuid.UUID{a, b, erased, none, a}); err != nil {
		t.Fatal(err)
	}
	coldPool.Close()
	for _, id := range []uuid.UUID{a, b} {
		k, err := cold.DataKey(ctx, id, false)
		if err != nil {
			t.Fatalf("DataKey after the prefetch needed the database: %v", err)
		}
		if !bytes.Equal(k, want[id]) {
			t.Fatal("the prefetched key is not the customer's key")
		}
	}
	if _, err := cold.DataKey(ctx, erased, false); !errors.Is(err, eventcodec.ErrKeyDestroyed) {
		t.Fatalf("DataKey of an erased customer after the prefetch: %v, want ErrKeyDestroyed", err)
	}
	if _, err := cold.DataKey(ctx, none, false); err == nil {
		t.Fatal("DataKey of a customer without a key answered a key")
	}
}
