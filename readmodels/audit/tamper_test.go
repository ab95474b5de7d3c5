package audit_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/esdb/esdbtest"
	"github.com/rapport-crm/rapport/infra/postgres"
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
	forgeStream(t, m, domain.StreamName(id), from)
}

// forgeStream is forgeFrom for any stream.
func forgeStream(t *testing.T, m *apptest.Main, stream string, from uint64) {
	t.Helper()
	ctx := context.Background()
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

// execFunc runs one SQL statement as a database writer, failing the test
// on error.
type execFunc func(sql string, args ...any)

// TestTamperingByADatabaseWriterIsDetected edits the Postgres store the
// way someone who can write the database (and read the code) would, one
// edit per subtest, and checks that verification reports the stream not
// intact at the first bad revision and says what disagrees. Edits that a
// chain alone cannot see (a cut tail, a moved last position) are checked
// against an anchor taken before the edit, and the chain's silence
// without one is asserted too, so that the limit stays known.
func TestTamperingByADatabaseWriterIsDetected(t *testing.T) {
	m := apptest.MustOpen(t)
	a := audit.New(m.Store, m.Codec)
	ctx := context.Background()
	stream := domain.StreamName
	// Every stream has revisions 0 to 5: a registration, four contacts
	// and a last contact whose position the log's readers have seen.
	cases := []struct {
		name   string
		tamper func(exec execFunc, m *apptest.Main, id uuid.UUID)
		// brokenAt is the revision verification must stop at; reason a
		// part of what it must say.
		brokenAt uint64
		reason   string
		// anchored verifies against the stream's entry in an anchor taken
		// before the edit; then silent says what the chain alone reports:
		// intact, with the stream ending at lastWithout and legacyWithout events
		// under the old rule.
		anchored      bool
		lastWithout   uint64
		legacyWithout int
	}{
		{name: "edited payload", tamper: func(exec execFunc, _ *apptest.Main, id uuid.UUID) {
			exec(`UPDATE eventstore.events SET data = '{"channel":"visit","direction":"inbound","summary":"","by":"mallory"}' WHERE stream = $1 AND revision = 2`, stream(id))
		}, brokenAt: 2, reason: "content does not match its hash"},
		{name: "edited metadata (actor)", tamper: func(exec execFunc, _ *apptest.Main, id uuid.UUID) {
			exec(`UPDATE eventstore.events SET metadata = replace(metadata::text, '"actor":"auditor-test"', '"actor":"mallory"')::json WHERE stream = $1 AND revision = 1`, stream(id))
		}, brokenAt: 1, reason: "content does not match its hash"},
		{name: "edited hashed recorded time and recorded_at together", tamper: func(exec execFunc, _ *apptest.Main, id uuid.UUID) {
			exec(`UPDATE eventstore.events SET recorded_at = recorded_at - interval '300 days',
				metadata = jsonb_set(metadata::jsonb, '{recorded_at}', to_jsonb(to_char((recorded_at - interval '300 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))::json
				WHERE stream = $1 AND revision = 3`, stream(id))
		}, brokenAt: 3, reason: "content does not match its hash"},
		{name: "inserted event", tamper: func(exec execFunc, _ *apptest.Main, id uuid.UUID) {
			exec(`UPDATE eventstore.events SET revision = revision + 1000 WHERE stream = $1 AND revision >= 2`, stream(id))
			exec(`UPDATE eventstore.events SET revision = revision - 999 WHERE stream = $1 AND revision >= 1000`, stream(id))
			exec(`INSERT INTO eventstore.events (position, stream, revision, event_id, event_type, data, metadata)
				SELECT (position + (SELECT position FROM eventstore.events WHERE stream = $1 AND revision = 3)) / 2, stream, 2, gen_random_uuid(), event_type, data, metadata
				FROM eventstore.events WHERE stream = $1 AND revision = 1`, stream(id))
		}, brokenAt: 2, reason: "previous hash does not match"},
		{name: "deleted in the middle", tamper: func(exec execFunc, _ *apptest.Main, id uuid.UUID) {
			exec(`DELETE FROM eventstore.events WHERE stream = $1 AND revision = 2`, stream(id))
		}, brokenAt: 3, reason: "revision 3 follows revision 1"},
		{name: "deleted in the middle, renumbered", tamper: func(exec execFunc, _ *apptest.Main, id uuid.UUID) {
			exec(`DELETE FROM eventstore.events WHERE stream = $1 AND revision = 2`, stream(id))
			exec(`UPDATE eventstore.events SET revision = revision + 999 WHERE stream = $1 AND revision > 2`, stream(id))
			exec(`UPDATE eventstore.events SET revision = revision - 1000 WHERE stream = $1 AND revision >= 1000`, stream(id))
		}, brokenAt: 2, reason: "previous hash does not match"},
		{name: "deleted the tail, against an anchor", tamper: func(exec execFunc, _ *apptest.Main, id uuid.UUID) {
			exec(`DELETE FROM eventstore.events WHERE stream = $1 AND revision >= 4`, stream(id))
		}, brokenAt: 4, reason: "truncated", anchored: true, lastWithout: 3},
		{name: "reordered", tamper: func(exec execFunc, _ *apptest.Main, id uuid.UUID) {
			exec(`UPDATE eventstore.events SET revision = CASE revision WHEN 2 THEN 1003 ELSE 1002 END WHERE stream = $1 AND revision IN (2, 3)`, stream(id))
			exec(`UPDATE eventstore.events SET revision = revision - 1000 WHERE stream = $1 AND revision >= 1000`, stream(id))
		}, brokenAt: 2, reason: "previous hash does not match"},
		{name: "recorded_at moved back 300 days", tamper: func(exec execFunc, _ *apptest.Main, id uuid.UUID) {
			exec(`UPDATE eventstore.events SET recorded_at = recorded_at - interval '300 days' WHERE stream = $1 AND revision = 3`, stream(id))
		}, brokenAt: 3, reason: "recorded_at"},
		{name: "position moved before the stream's start", tamper: func(exec execFunc, _ *apptest.Main, id uuid.UUID) {
			exec(`UPDATE eventstore.events SET position = (SELECT min(position) - 1 FROM eventstore.events WHERE stream = $1) WHERE stream = $1 AND revision = 3`, stream(id))
		}, brokenAt: 3, reason: "position"},
		{name: "positions of two events swapped", tamper: func(exec execFunc, _ *apptest.Main, id uuid.UUID) {
			exec(`UPDATE eventstore.events SET position = -position WHERE stream = $1 AND revision IN (2, 3)`, stream(id))
			exec(`UPDATE eventstore.events e SET position = -(SELECT o.position FROM eventstore.events o WHERE o.stream = e.stream AND o.revision = 5 - e.revision)
				WHERE e.stream = $1 AND e.revision IN (2, 3)`, stream(id))
		}, brokenAt: 3, reason: "position"},
		{name: "last position moved forward, against an anchor", tamper: func(exec execFunc, _ *apptest.Main, id uuid.UUID) {
			exec(`UPDATE eventstore.events SET position = position + 7 WHERE stream = $1 AND revision = 5`, stream(id))
		}, brokenAt: 5, reason: "positions were changed", anchored: true, lastWithout: 5},
		{name: "chain recomputed by a database writer", tamper: func(_ execFunc, m *apptest.Main, id uuid.UUID) { forgeFrom(t, m, id, 2) },
			brokenAt: 2, reason: "unkeyed chain after a keyed event"},
		// Rewritten whole with the public rule, the stream would pass for
		// one written before chains were keyed, but its events lie after
		// the keyed-since mark: caught without an anchor.
		{name: "whole chain recomputed by a database writer", tamper: func(_ execFunc, m *apptest.Main, id uuid.UUID) { forgeFrom(t, m, id, 0) },
			brokenAt: 0, reason: "unkeyed event after the keyed-since mark"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, a := m, a
			if tc.anchored {
				// An anchor covers the whole log: give it a log of its own,
				// which the other subtests' edits leave unbroken.
				m = apptest.MustOpen(t)
				a = audit.New(m.Store, m.Codec)
			}
			exec := func(sql string, args ...any) {
				t.Helper()
				if _, err := m.Pool.Exec(ctx, sql, args...); err != nil {
					t.Fatal(err)
				}
			}
			id := history(t, m, 4)
			waitVisible(t, m, contact(t, m, id, "last"))
			if v, err := a.Verify(ctx, id); err != nil || !v.Intact || *v.LastRevision != 5 {
				t.Fatalf("before tampering: %+v %v", v, err)
			}
			var head audit.StreamHead
			if tc.anchored {
				anchor, broken, err := a.Anchor(ctx, time.Now(), nil)
				if err != nil {
					t.Fatalf("anchor: %v %+v", err, broken)
				}
				for _, h := range anchor.Streams {
					if h.CustomerID == id {
						if head, err = a.ParseAnchorEntry(h.Entry); err != nil {
							t.Fatal(err)
						}
					}
				}
				if head.CustomerID != id {
					t.Fatalf("the anchor has no entry for %s", id)
				}
			}
			tc.tamper(exec, m, id)
			v, err := a.Verify(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if tc.anchored {
				// The chain alone cannot see this edit: it must say so
				// honestly (intact, and where the stream now ends).
				if !v.Intact || v.LastRevision == nil || *v.LastRevision != tc.lastWithout || v.LegacyEvents != tc.legacyWithout {
					t.Errorf("without an anchor: %+v (break %+v), want intact up to revision %d, %d legacy", v, v.BrokenAt, tc.lastWithout, tc.legacyWithout)
				}
				if v, err = a.VerifyAnchored(ctx, id, head); err != nil {
					t.Fatal(err)
				}
			}
			if v.Intact || v.BrokenAt == nil || v.BrokenAt.Revision != tc.brokenAt || !strings.Contains(v.BrokenAt.Reason, tc.reason) {
				t.Fatalf("verification %+v (break %+v), want broken at revision %d: …%s…", v, v.BrokenAt, tc.brokenAt, tc.reason)
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

// waitVisible waits until the global log's readers see position.
func waitVisible(t *testing.T, m *apptest.Main, position eventstore.Position) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		head, err := m.Store.ReadAll(context.Background(), eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(head) == 1 && head[0].Position >= position {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the last event never became visible in the global log")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func contact(t *testing.T, m *apptest.Main, id uuid.UUID, summary string) eventstore.Position {
	t.Helper()
	return handle(t, m, id, domain.LogContact{Channel: domain.ChannelEmail, Direction: domain.DirectionOutbound, Summary: summary, By: "bob"}).Position
}

// TestAnchorCatchesTruncationAndRollback takes an anchor, then cuts,
// rolls back, deletes and fabricates streams: each is invisible to the
// chain alone and caught against the anchor, per stream and for the whole
// log.
func TestAnchorCatchesTruncationAndRollback(t *testing.T) {
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
	intact, truncated, rolledBack, deleted, forged, grown := history(t, m, 4), history(t, m, 4), history(t, m, 4), history(t, m, 4), history(t, m, 4), history(t, m, 4)
	waitVisible(t, m, contact(t, m, grown, "before the anchor"))
	anchor, broken, err := a.Anchor(ctx, time.Now(), nil)
	if err != nil || len(broken) != 0 {
		t.Fatalf("anchor: %v %+v", err, broken)
	}
	if len(anchor.Streams) != 6 || anchor.Signature == "" || anchor.Log.Stream != stream(grown) {
		t.Fatalf("anchor %+v", anchor)
	}
	entries := map[uuid.UUID]string{}
	for _, h := range anchor.Streams {
		entries[h.CustomerID] = h.Entry
	}

	// The tail of one stream is cut; another is rolled back and written
	// on by the service (as after restoring an old backup); a third is
	// deleted; a fourth is rewritten from its start with the unkeyed rule.
	exec(`DELETE FROM eventstore.events WHERE stream = $1 AND revision = 4`, stream(truncated))
	exec(`DELETE FROM eventstore.events WHERE stream = $1 AND revision >= 3`, stream(rolledBack))
	restarted, err := commands.NewCustomers(commands.Config{Store: m.Store, Codec: m.Codec, Emails: postgres.NewEmailRegistry(m.Pool, make([]byte, 32)), Keys: m.Keyring})
	if err != nil {
		t.Fatal(err)
	}
	for _, summary := range []string{"after the rollback", "after the rollback, again"} {
		if _, err := restarted.Handle(ctx, commands.Request{CustomerID: rolledBack, CommandID: uuid.New(), Actor: "auditor-test",
			Command: domain.LogContact{Channel: domain.ChannelEmail, Direction: domain.DirectionOutbound, Summary: summary, By: "bob"}}); err != nil {
			t.Fatal(err)
		}
	}
	exec(`DELETE FROM eventstore.events WHERE stream = $1`, stream(deleted))
	forgeFrom(t, m, forged, 0)
	// A stream that grew normally, and one born after the anchor, pass.
	contact(t, m, grown, "after the anchor")
	born := history(t, m, 1)
	// A stream born after the anchor and written without the key does not.
	fabricated := history(t, m, 1)
	forgeFrom(t, m, fabricated, 0)
	waitVisible(t, m, contact(t, m, born, "last"))

	// Without the anchor, the chain alone sees no cut; the stream
	// rewritten under the unkeyed rule lies after the keyed-since mark.
	for _, id := range []uuid.UUID{truncated, rolledBack} {
		if v, err := a.Verify(ctx, id); err != nil || !v.Intact {
			t.Errorf("without an anchor %s should look intact (the chain cannot see a cut): %+v %v", id, v, err)
		}
	}
	if v, err := a.Verify(ctx, forged); err != nil || v.Intact || v.BrokenAt == nil || v.BrokenAt.Revision != 0 || !strings.Contains(v.BrokenAt.Reason, "keyed-since mark") {
		t.Errorf("without an anchor the stream rewritten under the unkeyed rule: %+v (break %+v) %v", v, v.BrokenAt, err)
	}

	want := map[uuid.UUID]string{truncated: "truncated", rolledBack: "rolled back", deleted: "deleted", forged: "keyed-since mark"}
	for id, reason := range want {
		head, err := a.ParseAnchorEntry(entries[id])
		if err != nil {
			t.Fatal(err)
		}
		v, err := a.VerifyAnchored(ctx, id, head)
		if err != nil {
			t.Fatal(err)
		}
		if v.Intact || v.BrokenAt == nil || !strings.Contains(v.BrokenAt.Reason, reason) || v.Anchor == nil {
			t.Errorf("%s against its entry: %+v (break %+v), want %q", id, v, v.BrokenAt, reason)
		}
	}
	for _, id := range []uuid.UUID{intact, grown} {
		head, _ := a.ParseAnchorEntry(entries[id])
		if v, err := a.VerifyAnchored(ctx, id, head); err != nil || !v.Intact {
			t.Errorf("%s against its entry: %+v %v", id, v, err)
		}
	}

	results := map[uuid.UUID]audit.Verification{}
	err = a.VerifyAllAnchored(ctx, &anchor, nil, func(v audit.Verification) error { results[v.CustomerID] = v; return nil })
	if err != nil {
		t.Fatalf("log head: %v", err)
	}
	want[fabricated] = "keyed-since mark"
	for id, reason := range want {
		v := results[id]
		if v.Intact || v.BrokenAt == nil || !strings.Contains(v.BrokenAt.Reason, reason) {
			t.Errorf("VerifyAllAnchored %s: %+v (break %+v), want %q", id, v, v.BrokenAt, reason)
		}
	}
	for _, id := range []uuid.UUID{intact, grown, born} {
		if v := results[id]; !v.Intact {
			t.Errorf("VerifyAllAnchored %s: %+v %+v", id, v, v.BrokenAt)
		}
	}

	// The log's anchored last event is cut: the log head check says so.
	exec(`DELETE FROM eventstore.events WHERE position = $1`, int64(anchor.Log.Position))
	err = a.VerifyAllAnchored(ctx, &anchor, nil, func(audit.Verification) error { return nil })
	if !errors.Is(err, audit.ErrLogHeadMissing) {
		t.Errorf("log head cut: %v", err)
	}
}

func TestAnAnchorCannotBeEdited(t *testing.T) {
	m := apptest.MustOpen(t)
	a := audit.New(m.Store, m.Codec)
	ctx := context.Background()
	id := history(t, m, 2)
	waitVisible(t, m, contact(t, m, id, "x"))
	anchor, _, err := a.Anchor(ctx, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CheckAnchor(&anchor); err != nil {
		t.Fatalf("untouched anchor: %v", err)
	}
	edited := anchor
	edited.Streams = append([]audit.StreamHead(nil), anchor.Streams...)
	edited.Streams[0].Revision = 1
	if err := a.CheckAnchor(&edited); !errors.Is(err, audit.ErrInvalidAnchor) {
		t.Errorf("edited head: %v", err)
	}
	resigned := edited
	resigned.Digest = "00" + anchor.Digest[2:]
	if err := a.CheckAnchor(&resigned); !errors.Is(err, audit.ErrInvalidAnchor) {
		t.Errorf("edited digest: %v", err)
	}
	entry := anchor.Streams[0].Entry
	for _, bad := range []string{strings.Replace(entry, ".3.", ".1.", 1), entry[:len(entry)-2] + "00", "a1.x", ""} {
		if _, err := a.ParseAnchorEntry(bad); !errors.Is(err, audit.ErrInvalidAnchor) {
			t.Errorf("entry %q: %v", bad, err)
		}
	}
	// Another deployment's service (another master key) refuses it.
	other := apptest.MustOpen(t)
	if err := audit.New(other.Store, other.Codec).CheckAnchor(&anchor); !errors.Is(err, audit.ErrInvalidAnchor) {
		t.Errorf("another master key accepted the anchor: %v", err)
	}
}

// legacyHistory makes a customer with a few events chained under the first,
// unkeyed rule, as a service before the keyed chain wrote them, and
// returns its id.
func legacyHistory(t testing.TB, m *apptest.Main, contacts int) uuid.UUID {
	t.Helper()
	legacy := eventcodec.New(domain.NewRegistry(), m.Keyring)
	old, err := commands.NewCustomers(commands.Config{Store: m.Store, Codec: legacy, Emails: postgres.NewEmailRegistry(m.Pool, make([]byte, 32)), Keys: m.Keyring})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	do := func(id uuid.UUID, cmd domain.Command) commands.Result {
		res, err := old.Handle(ctx, commands.Request{CustomerID: id, Command: cmd, CommandID: uuid.New(), Actor: "auditor-test", CorrelationID: "corr-1"})
		if err != nil {
			t.Fatalf("%T: %v", cmd, err)
		}
		return res
	}
	id := do(uuid.Nil, domain.RegisterCustomer{Name: "Ada Lovelace", Email: "ada-" + uuid.NewString()[:8] + "@example.com", Segment: "enterprise"}).CustomerID
	for i := range contacts {
		do(id, domain.LogContact{Channel: domain.ChannelEmail, Direction: domain.DirectionOutbound, Summary: "note " + strconv.Itoa(i), By: "bob"})
	}
	return id
}

// TestOldRuleChainsVerifyAndAreCheckedOnPostgres: a stream written under
// the unkeyed rule before the upgrade verifies under it (counted as
// legacy), new events the service appends to it are keyed and verify
// under the new rule, and an edit to an old event is still caught.
func TestOldRuleChainsVerifyAndAreCheckedOnPostgres(t *testing.T) {
	m := apptest.MustOpen(t)
	id := legacyHistory(t, m, 3)
	m.UpgradeToKeyed(t)
	a := audit.New(m.Store, m.Codec)
	ctx := context.Background()
	contact(t, m, id, "after the upgrade")
	v, err := a.Verify(ctx, id)
	if err != nil || !v.Intact || v.Events != 5 || v.LegacyEvents != 4 {
		t.Fatalf("mixed stream: %+v (break %+v) %v, want intact with 4 legacy events of 5", v, v.BrokenAt, err)
	}
	if _, err := m.Pool.Exec(ctx, `UPDATE eventstore.events SET data = '{"channel":"visit","direction":"inbound","summary":"","by":"mallory"}' WHERE stream = $1 AND revision = 2`, domain.StreamName(id)); err != nil {
		t.Fatal(err)
	}
	v, err = a.Verify(ctx, id)
	if err != nil || v.Intact || v.BrokenAt == nil || v.BrokenAt.Revision != 2 || !strings.Contains(v.BrokenAt.Reason, "content does not match its hash") {
		t.Fatalf("edited legacy event: %+v (break %+v) %v", v, v.BrokenAt, err)
	}
}

// TestTheKeyedSinceMarkCannotBeMovedOrRemoved: the mark that says from
// where every event must be keyed is signed under the chain key. A
// database writer who moves it past a stream it rewrote under the unkeyed
// rule, or removes it, is reported at the next start: no unkeyed event is
// trusted any more, and the reason says what happened to the mark.
func TestTheKeyedSinceMarkCannotBeMovedOrRemoved(t *testing.T) {
	m := apptest.MustOpen(t)
	ctx := context.Background()
	old := legacyHistory(t, m, 2)
	m.UpgradeToKeyed(t)
	rewritten := history(t, m, 2)
	waitVisible(t, m, contact(t, m, history(t, m, 1), "last"))
	verify := func(id uuid.UUID) audit.Verification {
		t.Helper()
		v, err := audit.New(m.Store, m.Codec).Verify(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := verify(old); !v.Intact || v.LegacyEvents != 3 {
		t.Fatalf("the stream written before the upgrade: %+v (break %+v)", v, v.BrokenAt)
	}
	if v := verify(rewritten); !v.Intact || v.LegacyEvents != 0 {
		t.Fatalf("the keyed stream: %+v (break %+v)", v, v.BrokenAt)
	}
	// Restarting with the mark untouched changes nothing.
	m.Restart(t)
	if v := verify(old); !v.Intact || v.LegacyEvents != 3 {
		t.Fatalf("after a restart, the stream written before the upgrade: %+v (break %+v)", v, v.BrokenAt)
	}

	// The writer rewrites a keyed stream whole under the unkeyed rule and
	// moves the mark past it.
	forgeFrom(t, m, rewritten, 0)
	if _, err := m.Pool.Exec(ctx, `UPDATE rapport.keyed_since SET position = position + 1000000`); err != nil {
		t.Fatal(err)
	}
	m.Restart(t)
	for _, id := range []uuid.UUID{rewritten, old} {
		if v := verify(id); v.Intact || v.BrokenAt == nil || v.BrokenAt.Revision != 0 || !strings.Contains(v.BrokenAt.Reason, "keyed-since mark's signature does not verify") {
			t.Errorf("mark moved, stream %s: %+v (break %+v)", id, v, v.BrokenAt)
		}
	}

	// The writer removes the mark: it is re-created at the first keyed
	// event, and said to be.
	if _, err := m.Pool.Exec(ctx, `DELETE FROM rapport.keyed_since`); err != nil {
		t.Fatal(err)
	}
	m.Restart(t)
	for _, id := range []uuid.UUID{rewritten, old} {
		if v := verify(id); v.Intact || v.BrokenAt == nil || v.BrokenAt.Revision != 0 || !strings.Contains(v.BrokenAt.Reason, "keyed-since mark was missing although keyed events exist") {
			t.Errorf("mark removed, stream %s: %+v (break %+v)", id, v, v.BrokenAt)
		}
	}
	// A restart does not forget that it was re-created.
	m.Restart(t)
	if v := verify(old); v.Intact || v.BrokenAt == nil || !strings.Contains(v.BrokenAt.Reason, "was missing") {
		t.Errorf("after another restart: %+v (break %+v)", v, v.BrokenAt)
	}
}

// TestTheKeyedSinceMarkOnEventStoreDB: on EventStoreDB the mark is kept in
// Postgres beside the master key check, at a position of the EventStoreDB
// log. A stream written there before the upgrade verifies as legacy; one
// appended without the key after it is rejected.
func TestTheKeyedSinceMarkOnEventStoreDB(t *testing.T) {
	server := esdbtest.Start(t)
	m := apptest.MustOpen(t, func(c *app.Config) { c.EventStore = server.ConnectionString() })
	ctx := context.Background()
	old := legacyHistory(t, m, 2)
	m.UpgradeToKeyed(t)
	keyed := history(t, m, 1)
	unkeyed := legacyHistory(t, m, 1)
	var marks int
	if err := m.Pool.QueryRow(ctx, `SELECT count(*) FROM rapport.keyed_since WHERE NOT recreated`).Scan(&marks); err != nil || marks != 1 {
		t.Fatalf("the mark in Postgres: %d %v", marks, err)
	}
	a := audit.New(m.Store, m.Codec)
	for id, legacy := range map[uuid.UUID]int{old: 3, keyed: 0} {
		if v, err := a.Verify(ctx, id); err != nil || !v.Intact || v.LegacyEvents != legacy {
			t.Errorf("%s: %+v (break %+v) %v, want intact with %d legacy", id, v, v.BrokenAt, err, legacy)
		}
	}
	if v, err := a.Verify(ctx, unkeyed); err != nil || v.Intact || v.BrokenAt == nil || v.BrokenAt.Revision != 0 || !strings.Contains(v.BrokenAt.Reason, "unkeyed event after the keyed-since mark") {
		t.Errorf("appended without the key after the mark: %+v (break %+v) %v", v, v.BrokenAt, err)
	}
}
