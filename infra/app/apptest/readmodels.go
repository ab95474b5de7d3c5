package apptest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/infra/postgres"
	"github.com/rapport-crm/rapport/projections"
)

// ReadModels runs only the given projectors, over an empty embedded event
// store, on a fresh migrated database, and returns its pool once their
// tables exist (with none, no read model exists at all). It is for the
// tests of a read model's queries: that they read only the projectors
// their Reads names, and what they answer before those have set up.
func ReadModels(tb testing.TB, projectors ...projections.Projector) *pgxpool.Pool {
	tb.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, withPoolSize(migratedDatabase(tb), 4))
	if err != nil {
		tb.Fatal(err)
	}
	// Registered after the database's cleanup, so it runs before it.
	tb.Cleanup(pool.Close)
	if len(projectors) == 0 {
		return pool
	}
	store, err := postgres.NewEventStore(pool, postgres.EventStoreConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(store.Close)
	keys, err := postgres.NewKeyring(pool, bytes.Repeat([]byte{7}, 32), postgres.KeyringConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	eng, err := projections.New(projections.Config{Pool: pool, Store: store, Codec: eventcodec.New(domain.NewRegistry(), keys), Projectors: projectors})
	if err != nil {
		tb.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = eng.Run(runCtx)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	waitForGenerations(tb, eng)
	return pool
}

// waitForGenerations waits, at most 30 s, until every projector of the
// engine has its first generation: its tables and the readmodels views
// over them exist.
func waitForGenerations(tb testing.TB, eng *projections.Engine) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		statuses, err := eng.Status(ctx)
		ready := err == nil && len(statuses) > 0
		for _, st := range statuses {
			ready = ready && st.Generation > 0
		}
		if ready {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("the read models were not created within 30 s: %+v (%v)", statuses, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
