package postgres_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
)

func migratedPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool := pgtest.NewPool(tb)
	if err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		tb.Fatal(err)
	}
	return pool
}

// TestIdempotencyKeyLifecycle walks one key through its states: claimed,
// in flight for others, answered, and the rules for taking over a claim
// whose holder died.
func TestIdempotencyKeyLifecycle(t *testing.T) {
	pool := migratedPool(t)
	ctx := context.Background()
	keys := postgres.NewIdempotencyKeys(pool)
	fp, otherFP := []byte("request A"), []byte("request B")

	first, err := keys.Claim(ctx, "writer", "k1", fp, time.Minute)
	if err != nil || first.Claim == uuid.Nil {
		t.Fatalf("a new key is claimed: %+v %v", first, err)
	}
	busy, err := keys.Claim(ctx, "writer", "k1", fp, time.Minute)
	if err != nil || busy.Claim != uuid.Nil || busy.Answer != nil || !bytes.Equal(busy.Fingerprint, fp) || busy.LeaseLeft < 50*time.Second {
		t.Fatalf("a key in flight: %+v %v", busy, err)
	}
	if st, _ := keys.Claim(ctx, "writer", "k1", otherFP, time.Minute); st.Claim != uuid.Nil || !bytes.Equal(st.Fingerprint, fp) {
		t.Fatalf("another request does not claim a key in flight: %+v", st)
	}
	if st, _ := keys.Claim(ctx, "admin", "k1", fp, time.Minute); st.Claim == uuid.Nil {
		t.Fatalf("another scope's key is another key: %+v", st)
	}
	answer := postgres.IdempotentAnswer{Status: 201, Header: map[string]string{"ETag": `"3"`, "Location": "/v1/x"}, Body: []byte(`{"revision":3}`)}
	if err := keys.Complete(ctx, "writer", "k1", first.Claim, answer); err != nil {
		t.Fatal(err)
	}
	// Another process (a restart) sees the answer.
	done, err := postgres.NewIdempotencyKeys(pool).Claim(ctx, "writer", "k1", fp, time.Minute)
	if err != nil || done.Claim != uuid.Nil || done.Answer == nil || done.Answer.Status != 201 || string(done.Answer.Body) != `{"revision":3}` || done.Answer.Header["ETag"] != `"3"` {
		t.Fatalf("an answered key: %+v %v", done, err)
	}
	if err := keys.Release(ctx, "writer", "k1", first.Claim); err != nil {
		t.Fatal(err)
	}
	if st, _ := keys.Claim(ctx, "writer", "k1", fp, time.Minute); st.Answer == nil {
		t.Fatal("releasing an answered key must not forget its answer")
	}

	// A released key is claimed again.
	second, _ := keys.Claim(ctx, "writer", "k2", fp, time.Minute)
	if err := keys.Release(ctx, "writer", "k2", second.Claim); err != nil {
		t.Fatal(err)
	}
	if st, _ := keys.Claim(ctx, "writer", "k2", fp, time.Minute); st.Claim == uuid.Nil {
		t.Fatalf("a released key is claimed again: %+v", st)
	}

	// A holder that outlived its lease is taken over by the same request,
	// never by another; its late answer is not recorded.
	stuck, _ := keys.Claim(ctx, "writer", "k3", fp, 10*time.Millisecond)
	time.Sleep(30 * time.Millisecond)
	if st, _ := keys.Claim(ctx, "writer", "k3", otherFP, time.Minute); st.Claim != uuid.Nil {
		t.Fatalf("another request took over an expired claim: %+v", st)
	}
	takeover, _ := keys.Claim(ctx, "writer", "k3", fp, time.Minute)
	if takeover.Claim == uuid.Nil || takeover.Claim == stuck.Claim {
		t.Fatalf("the same request takes over an expired claim: %+v", takeover)
	}
	if err := keys.Complete(ctx, "writer", "k3", stuck.Claim, postgres.IdempotentAnswer{Status: 500}); err != nil {
		t.Fatal(err)
	}
	if err := keys.Complete(ctx, "writer", "k3", takeover.Claim, answer); err != nil {
		t.Fatal(err)
	}
	if st, _ := keys.Claim(ctx, "writer", "k3", fp, time.Minute); st.Answer == nil || st.Answer.Status != 201 {
		t.Fatalf("the answer is the one of the run that held the key: %+v", st.Answer)
	}
}

// TestConcurrentClaimsOfOneKey: of many runs claiming one key at once,
// exactly one holds it.
func TestConcurrentClaimsOfOneKey(t *testing.T) {
	pool := migratedPool(t)
	keys := postgres.NewIdempotencyKeys(pool)
	var wg sync.WaitGroup
	var mu sync.Mutex
	holders := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := keys.Claim(context.Background(), "writer", "race", []byte("fp"), time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if st.Claim != uuid.Nil {
				mu.Lock()
				holders++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if holders != 1 {
		t.Fatalf("%d runs hold the key, want 1", holders)
	}
}

// TestIdempotencyKeysAreKeptForTheirRetention: the cleanup deletes keys
// older than the retention and only those.
func TestIdempotencyKeysAreKeptForTheirRetention(t *testing.T) {
	pool := migratedPool(t)
	ctx := context.Background()
	keys := postgres.NewIdempotencyKeys(pool)
	for _, k := range []string{"young", "23h", "old"} {
		st, err := keys.Claim(ctx, "writer", k, []byte(k), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := keys.Complete(ctx, "writer", k, st.Claim, postgres.IdempotentAnswer{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE rapport.idempotency_keys SET created_at = now() - CASE key WHEN '23h' THEN interval '23 hours' ELSE interval '25 hours' END WHERE key <> 'young'`); err != nil {
		t.Fatal(err)
	}
	n, err := keys.DeleteOlderThan(ctx, 24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("deleted %d (%v), want 1", n, err)
	}
	for k, kept := range map[string]bool{"young": true, "23h": true, "old": false} {
		st, err := keys.Claim(ctx, "writer", k, []byte(k), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if (st.Answer != nil) != kept {
			t.Errorf("key %s: answer kept %v, want %v", k, st.Answer != nil, kept)
		}
	}
}
