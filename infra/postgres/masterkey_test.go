package postgres_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/infra/postgres"
)

func randomKey(tb testing.TB) []byte {
	tb.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		tb.Fatal(err)
	}
	return k
}

func keyring(tb testing.TB, pool *pgxpool.Pool, master []byte) *postgres.Keyring {
	tb.Helper()
	k, err := postgres.NewKeyring(pool, master, postgres.KeyringConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// verified is a keyring that passed the start-up check, as a service's.
func verified(tb testing.TB, pool *pgxpool.Pool, master []byte) *postgres.Keyring {
	tb.Helper()
	k := keyring(tb, pool, master)
	if err := k.VerifyMasterKey(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return k
}

// TestMasterKeyCheck: the first start stores the key check; a keyring with
// another key is refused, also on a database from before key checks
// (whose data keys are then what tells).
func TestMasterKeyCheck(t *testing.T) {
	ctx := context.Background()
	a, b := randomKey(t), randomKey(t)

	pool := migratedPool(t)
	verified(t, pool, a)
	var check []byte
	if err := pool.QueryRow(ctx, `SELECT key_check FROM rapport.master_key`).Scan(&check); err != nil || !bytes.Equal(check, postgres.KeyCheck(a)) {
		t.Fatalf("stored key check %x (%v), want %x", check, err, postgres.KeyCheck(a))
	}
	err := keyring(t, pool, b).VerifyMasterKey(ctx)
	if !errors.Is(err, postgres.ErrMasterKeyMismatch) {
		t.Fatalf("another key: %v, want ErrMasterKeyMismatch", err)
	}
	t.Logf("refusal: %v", err)
	verified(t, pool, a) // its own key, again

	// A database with data keys and no key check (before this version).
	legacy := migratedPool(t)
	old := keyring(t, legacy, a)
	for range 3 {
		if _, err := old.DataKey(ctx, uuid.New(), true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := legacy.Exec(ctx, `UPDATE rapport.customer_keys SET kek_id = NULL`); err != nil {
		t.Fatal(err)
	}
	if err := keyring(t, legacy, b).VerifyMasterKey(ctx); !errors.Is(err, postgres.ErrMasterKeyMismatch) {
		t.Fatalf("another key on a database from before key checks: %v, want ErrMasterKeyMismatch", err)
	}
	var stored int
	if err := legacy.QueryRow(ctx, `SELECT count(*) FROM rapport.master_key`).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("a refused key stored its check (%d rows, %v)", stored, err)
	}
	k := verified(t, legacy, a)
	// The email index keeps the hashes it had: the secret stored at the
	// first check is the one derived from the key before.
	holder := uuid.New()
	if _, _, _, err := postgres.NewEmailRegistry(legacy, a).Reserve(ctx, "ada@example.com", holder); err != nil {
		t.Fatal(err)
	}
	if got, _, _, err := postgres.NewEmailIndex(legacy, k.IndexSecret()).Reserve(ctx, "ada@example.com", uuid.New()); err != nil || got != holder {
		t.Fatalf("the stored index secret hashes emails differently: holder %s (%v), want %s", got, err, holder)
	}
}

// dataKeys creates n data keys through a keyring and returns them.
func dataKeys(tb testing.TB, k *postgres.Keyring, n int) map[uuid.UUID][]byte {
	tb.Helper()
	keys := map[uuid.UUID][]byte{}
	for range n {
		id := uuid.New()
		key, err := k.DataKey(context.Background(), id, true)
		if err != nil {
			tb.Fatal(err)
		}
		keys[id] = key
	}
	return keys
}

// requireKeys checks that a fresh keyring with only master opens every key
// as it was, and that destroyed keys stay destroyed.
func requireKeys(tb testing.TB, pool *pgxpool.Pool, master []byte, keys map[uuid.UUID][]byte, destroyed []uuid.UUID) {
	tb.Helper()
	k := verified(tb, pool, master)
	for id, want := range keys {
		got, err := k.DataKey(context.Background(), id, false)
		if err != nil || !bytes.Equal(got, want) {
			tb.Fatalf("data key of %s: %x (%v), want it unchanged", id, got, err)
		}
	}
	for _, id := range destroyed {
		if _, err := k.DataKey(context.Background(), id, false); !errors.Is(err, eventcodec.ErrKeyDestroyed) {
			tb.Fatalf("destroyed key of %s: %v, want ErrKeyDestroyed", id, err)
		}
	}
}

// TestRotateMasterKey re-wraps every data key under a new master key:
// afterwards the new key alone opens them all, unchanged; destroyed keys
// stay destroyed; the old key is refused; the email index is the same.
func TestRotateMasterKey(t *testing.T) {
	ctx := context.Background()
	pool := migratedPool(t)
	a, b := randomKey(t), randomKey(t)
	k := verified(t, pool, a)
	keys := dataKeys(t, k, 1200)
	var destroyed []uuid.UUID
	for id := range keys {
		if len(destroyed) == 5 {
			break
		}
		if err := k.Destroy(ctx, id); err != nil {
			t.Fatal(err)
		}
		delete(keys, id)
		destroyed = append(destroyed, id)
	}
	secret := k.IndexSecret()
	var progress []int
	report, err := postgres.RotateMasterKey(ctx, pool, a, b, postgres.RotateOptions{BatchSize: 500, Grace: time.Millisecond, Progress: func(n int) { progress = append(progress, n) }})
	if err != nil {
		t.Fatal(err)
	}
	if report.Rewrapped != len(keys) || report.Passes != 1 || report.Resumed || len(progress) != 3 || progress[2] != len(keys) {
		t.Fatalf("report %+v, progress %v; want %d keys re-wrapped in one pass of 3 batches", report, progress, len(keys))
	}
	requireKeys(t, pool, b, keys, destroyed)
	if err := keyring(t, pool, a).VerifyMasterKey(ctx); !errors.Is(err, postgres.ErrMasterKeyMismatch) {
		t.Fatalf("the old key after the rotation: %v, want ErrMasterKeyMismatch", err)
	}
	if !bytes.Equal(verified(t, pool, b).IndexSecret(), secret) {
		t.Fatal("the rotation changed the email index secret")
	}
	if _, err := postgres.RotateMasterKey(ctx, pool, a, randomKey(t), postgres.RotateOptions{Grace: time.Millisecond}); !errors.Is(err, postgres.ErrMasterKeyMismatch) {
		t.Fatalf("rotating from the retired key: %v", err)
	}
}

// TestRotationAcceptsBothKeysUntilItEnds interrupts a rotation before its
// end: processes with either key start and read every key, one that had
// not learned of the rotation creates keys under the old key, and the
// resumed rotation re-wraps those too before it ends. A process that never
// learned the new key stops creating keys once the old one is retired.
func TestRotationAcceptsBothKeysUntilItEnds(t *testing.T) {
	ctx := context.Background()
	pool := migratedPool(t)
	a, b := randomKey(t), randomKey(t)
	stale := verified(t, pool, a) // learns nothing of the rotation: no Watch, no Refresh
	keys := dataKeys(t, stale, 50)

	interrupted, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err := postgres.RotateMasterKey(interrupted, pool, a, b, postgres.RotateOptions{Grace: time.Hour})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("interrupted rotation: %v", err)
	}
	if _, err := postgres.RotateMasterKey(ctx, pool, a, randomKey(t), postgres.RotateOptions{Grace: time.Millisecond}); err == nil {
		t.Fatal("a rotation to a third key began while one is in progress")
	}
	// Mid-rotation, each key starts, reads all keys and creates new ones
	// under the next key.
	for name, master := range map[string][]byte{"old key": a, "new key": b} {
		k := verified(t, pool, master)
		requireKeys(t, pool, master, keys, nil)
		for id, key := range dataKeys(t, k, 5) {
			keys[id] = key
			var kek []byte
			if err := pool.QueryRow(ctx, `SELECT kek_id FROM rapport.customer_keys WHERE customer_id = $1`, id).Scan(&kek); err != nil || !bytes.Equal(kek, postgres.KeyCheck(b)[:8]) {
				t.Fatalf("%s: a key created mid-rotation is wrapped by %x, want the new key", name, kek)
			}
		}
	}
	learned := verified(t, pool, a)              // learned the new key
	for id, key := range dataKeys(t, stale, 5) { // stragglers under the old key
		keys[id] = key
	}
	report, err := postgres.RotateMasterKey(ctx, pool, a, b, postgres.RotateOptions{Grace: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !report.Resumed || report.Rewrapped != 5 {
		t.Fatalf("resumed rotation: %+v, want resumed with the 5 stragglers re-wrapped", report)
	}
	requireKeys(t, pool, b, keys, nil)
	if err := learned.Refresh(ctx); err != nil {
		t.Fatalf("a process that learned the new key after the end: %v", err)
	}
	dataKeys(t, learned, 3)
	_, err = stale.DataKey(ctx, uuid.New(), true)
	if !errors.Is(err, postgres.ErrMasterKeyMismatch) {
		t.Fatalf("a process that never learned the new key created a key after the end: %v", err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM rapport.customer_keys WHERE wrapped_key IS NOT NULL AND kek_id IS DISTINCT FROM $1`, postgres.KeyCheck(b)[:8]).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d keys not under the new key (%v)", left, err)
	}
}

// BenchmarkRotateMasterKey times a rotation over 100,000 customers' data
// keys, written straight into the key table. Run it with
//
//	go test ./infra/postgres -run '^$' -bench RotateMasterKey -benchtime 1x
func BenchmarkRotateMasterKey(b *testing.B) {
	ctx := context.Background()
	const n = 100_000
	for b.Loop() {
		b.StopTimer()
		pool := migratedPool(b)
		oldKey, newKey := randomKey(b), randomKey(b)
		verified(b, pool, oldKey)
		wrapper := keyring(b, pool, oldKey)
		rows := make([][]any, n)
		check := postgres.KeyCheck(oldKey)[:8]
		for i := range rows {
			id := uuid.New()
			rows[i] = []any{id, postgres.SealForTest(wrapper, id, randomKey(b)), check}
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"rapport", "customer_keys"}, []string{"customer_id", "wrapped_key", "kek_id"}, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		report, err := postgres.RotateMasterKey(ctx, pool, oldKey, newKey, postgres.RotateOptions{Grace: time.Nanosecond})
		if err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		if report.Rewrapped != n {
			b.Fatalf("re-wrapped %d of %d", report.Rewrapped, n)
		}
		b.ReportMetric(elapsed.Seconds(), "s/rotation")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "keys/s")
		b.Logf("rotated %d data keys in %s (%d passes)", n, elapsed.Round(time.Millisecond), report.Passes)
	}
}
