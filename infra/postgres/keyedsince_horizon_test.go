package postgres

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// TestTheKeyedSinceMarkLandsAfterEveryCommittedEvent: the mark written on
// the first start of a keyed service says where keyed events begin, so it
// must land after every event already in the log. Readers' head stops at
// the horizon, which an older write transaction of this database holds
// back (an analyst's session, a migration): a mark placed there lands
// before committed legacy events, and verification then rejects them.
func TestTheKeyedSinceMarkLandsAfterEveryCommittedEvent(t *testing.T) {
	store, pool := openStore(t, false)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE analyst_scratch (x int); INSERT INTO analyst_scratch VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	res, err := store.Append(ctx, "legacy-1", eventstore.NoStream, []eventstore.EventData{{ID: uuid.New(), Type: "Legacy", Data: []byte(`{}`)}})
	if err != nil {
		t.Fatal(err)
	}
	key, err := eventcodec.DeriveChainKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	mark, err := EnsureKeyedSince(ctx, pool, store, key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if mark.Position <= res.Position {
		t.Fatalf("keyed-since mark at %d, not after the committed legacy event at %d", mark.Position, res.Position)
	}
}
