package audit_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/audit"
)

// legacyMetadata is the metadata of the first (unkeyed) chain rule, field
// for field: what a database writer who read the old code would hash.
type legacyMetadata struct {
	SchemaVersion int       `json:"schema_version"`
	CustomerID    uuid.UUID `json:"customer_id"`
	OccurredAt    time.Time `json:"occurred_at"`
	RecordedAt    time.Time `json:"recorded_at"`
	Actor         string    `json:"actor"`
	CorrelationID string    `json:"correlation_id"`
	CausationID   uuid.UUID `json:"causation_id"`
	RequestHash   string    `json:"request_hash,omitempty"`
	PrevHash      string    `json:"prev_hash"`
	Hash          string    `json:"hash"`
}

// forgeFrom rewrites the stream from revision from on as a database
// writer could: it edits the actor and recomputes every hash with the
// public, unkeyed SHA-256 rule, so that the chain looks whole.
func forgeFrom(t *testing.T, m *apptest.Main, id uuid.UUID, from uint64) {
	t.Helper()
	ctx := context.Background()
	stream := domain.StreamName(id)
	recs, err := m.Store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: 0, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	prev := ""
	for _, rec := range recs {
		var meta legacyMetadata
		if err := json.Unmarshal(rec.Metadata, &meta); err != nil {
			t.Fatal(err)
		}
		if rec.Revision < from {
			prev = meta.Hash
			continue
		}
		meta.Actor, meta.PrevHash, meta.Hash = "mallory", prev, ""
		unhashed, _ := json.Marshal(meta)
		h := sha256.New()
		write := func(b []byte) {
			var n [8]byte
			binary.BigEndian.PutUint64(n[:], uint64(len(b)))
			h.Write(n[:])
			h.Write(b)
		}
		h.Write([]byte("rapport-chain-v1"))
		write([]byte(meta.PrevHash))
		write([]byte(rec.Stream))
		write([]byte(strconv.FormatUint(rec.Revision, 10)))
		write(rec.ID[:])
		write([]byte(rec.Type))
		write(rec.Data)
		write(unhashed)
		meta.Hash = hex.EncodeToString(h.Sum(nil))
		prev = meta.Hash
		metaJSON, _ := json.Marshal(meta)
		if _, err := m.Pool.Exec(ctx, `UPDATE eventstore.events SET metadata = $3 WHERE stream = $1 AND revision = $2`, stream, rec.Revision, string(metaJSON)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTamperingByADatabaseWriterIsDetected edits the Postgres store the
// way someone who can write the database (and read the code) would, and
// checks that verification catches every edit.
func TestTamperingByADatabaseWriterIsDetected(t *testing.T) {
	m := apptest.MustOpen(t)
	a := audit.New(m.Store, m.Codec)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := m.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	stream := domain.StreamName
	cases := []struct {
		name   string
		tamper func(id uuid.UUID)
		// brokenAt is the revision verification must stop at.
		brokenAt uint64
	}{
		{"edited payload", func(id uuid.UUID) {
			exec(`UPDATE eventstore.events SET data = '{"channel":"visit","direction":"inbound","summary":"","by":"mallory"}' WHERE stream = $1 AND revision = 2`, stream(id))
		}, 2},
		{"inserted event", func(id uuid.UUID) {
			exec(`UPDATE eventstore.events SET revision = revision + 1000 WHERE stream = $1 AND revision >= 2`, stream(id))
			exec(`UPDATE eventstore.events SET revision = revision - 999 WHERE stream = $1 AND revision >= 1000`, stream(id))
			exec(`INSERT INTO eventstore.events (position, stream, revision, event_id, event_type, data, metadata)
				SELECT position - 1, stream, 2, gen_random_uuid(), event_type, data, metadata FROM eventstore.events WHERE stream = $1 AND revision = 1`, stream(id))
		}, 2},
		{"deleted in the middle", func(id uuid.UUID) {
			exec(`DELETE FROM eventstore.events WHERE stream = $1 AND revision = 2`, stream(id))
		}, 3},
		{"reordered", func(id uuid.UUID) {
			exec(`UPDATE eventstore.events SET revision = CASE revision WHEN 2 THEN 1003 ELSE 1002 END WHERE stream = $1 AND revision IN (2, 3)`, stream(id))
			exec(`UPDATE eventstore.events SET revision = revision - 1000 WHERE stream = $1 AND revision >= 1000`, stream(id))
		}, 2},
		{"recorded_at moved back 300 days", func(id uuid.UUID) {
			exec(`UPDATE eventstore.events SET recorded_at = recorded_at - interval '300 days' WHERE stream = $1 AND revision = 3`, stream(id))
		}, 3},
		{"position moved before the stream's start", func(id uuid.UUID) {
			exec(`UPDATE eventstore.events SET position = (SELECT min(position) - 1 FROM eventstore.events WHERE stream = $1) WHERE stream = $1 AND revision = 3`, stream(id))
		}, 3},
		{"chain recomputed by a database writer", func(id uuid.UUID) { forgeFrom(t, m, id, 2) }, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := history(t, m, 4)
			if v, err := a.Verify(ctx, id); err != nil || !v.Intact {
				t.Fatalf("before tampering: %+v %v", v, err)
			}
			tc.tamper(id)
			v, err := a.Verify(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if v.Intact || v.BrokenAt == nil || v.BrokenAt.Revision != tc.brokenAt {
				t.Fatalf("verification %+v, want broken at revision %d", v, tc.brokenAt)
			}
		})
	}
}

// TestAuditorsReadTheHashedRecordedTime moves the store's recorded_at
// column: the events auditors read and the state as of an instant follow
// the recorded time inside the hashed metadata, not the column.
func TestAuditorsReadTheHashedRecordedTime(t *testing.T) {
	m := apptest.MustOpen(t)
	a := audit.New(m.Store, m.Codec)
	ctx := context.Background()
	id := history(t, m, 2)
	if _, err := m.Pool.Exec(ctx, `UPDATE eventstore.events SET recorded_at = recorded_at - interval '300 days' WHERE stream = $1`, domain.StreamName(id)); err != nil {
		t.Fatal(err)
	}
	var events []audit.Event
	if err := a.Events(ctx, id, 0, func(e audit.Event) (bool, error) { events = append(events, e); return true, nil }); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if time.Since(e.RecordedAt) > time.Hour {
			t.Errorf("revision %d: recorded_at %s is the store's column, not the hashed time", e.Revision, e.RecordedAt)
		}
	}
	st, err := a.StateAsOf(ctx, id, time.Now().Add(-200*24*time.Hour))
	if !errors.Is(err, audit.ErrCustomerNotFound) {
		t.Errorf("as of 200 days ago the customer did not exist yet; got %+v %v", st, err)
	}
	if st, err := a.StateAsOf(ctx, id, time.Now()); err != nil || st.Events != 3 {
		t.Errorf("as of now: %+v %v", st, err)
	}
}

var _ = eventcodec.SchemaVersion
