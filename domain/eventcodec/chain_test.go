package eventcodec_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

func chainKey(t testing.TB, seed byte) eventcodec.ChainKey {
	t.Helper()
	master := make([]byte, 32)
	master[0] = seed
	k, err := eventcodec.DeriveChainKey(master)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyedCodec(t testing.TB, seed byte) *eventcodec.Codec {
	return eventcodec.New(domain.NewRegistry(), newMemoryKeyring(), eventcodec.WithChainKey(chainKey(t, seed)))
}

func wantBroken(t *testing.T, err error, revision uint64, reason string) {
	t.Helper()
	var link *eventcodec.LinkError
	if !errors.As(err, &link) || link.Revision != revision || !strings.Contains(link.Reason, reason) {
		t.Fatalf("verification gave %v, want broken at revision %d: …%s…", err, revision, reason)
	}
}

func TestKeyedChainVerifiesOnlyWithItsKey(t *testing.T) {
	codec := keyedCodec(t, 1)
	stored := history(t, codec, uuid.New())
	if err := verifyWith(codec, stored); err != nil {
		t.Fatalf("keyed history under its own key: %v", err)
	}
	if !strings.Contains(string(stored[0].Metadata), `"chain":2`) {
		t.Fatalf("metadata does not name the keyed rule: %s", stored[0].Metadata)
	}
	wantBroken(t, verifyWith(keyedCodec(t, 2), stored), 0, "key this service does not hold")
	// Another master key that claims the id of ours is still refused.
	other := chainKey(t, 2)
	forged := strings.Replace(string(stored[0].Metadata), `"chain_key":"`+chainKey(t, 1).ID()+`"`, `"chain_key":"`+other.ID()+`"`, 1)
	stored[0].Metadata = []byte(forged)
	wantBroken(t, verifyWith(keyedCodec(t, 2), stored), 0, "does not match its hash")
	// After a master-key rotation the old key, still held, verifies.
	rotated := eventcodec.New(domain.NewRegistry(), nil, eventcodec.WithChainKey(chainKey(t, 3), chainKey(t, 1)))
	if err := verifyWith(rotated, history(t, codec, uuid.New())); err != nil {
		t.Fatalf("old key after rotation: %v", err)
	}
}

func TestLegacyChainsStillVerifyAndCannotFollowAKeyedOne(t *testing.T) {
	legacy := eventcodec.New(domain.NewRegistry(), newMemoryKeyring())
	keyed := keyedCodec(t, 1)
	old := history(t, legacy, uuid.New())
	v := keyed.NewVerifier()
	for _, rec := range old {
		if err := v.Verify(rec); err != nil {
			t.Fatalf("legacy history under a keyed codec: %v", err)
		}
	}
	if v.Legacy != len(old) {
		t.Fatalf("Legacy = %d, want %d", v.Legacy, len(old))
	}
	// A keyed event continues the legacy chain.
	id := uuid.New()
	mixed := history(t, legacy, id)[:2]
	mixed = append(mixed, appendEvent(t, keyed, id, mixed[1], 2))
	if err := verifyWith(keyed, mixed); err != nil {
		t.Fatalf("legacy then keyed: %v", err)
	}
	// The other way round is a rewrite by someone without the key.
	downgraded := history(t, keyed, id)[:2]
	downgraded = append(downgraded, appendEvent(t, legacy, id, downgraded[1], 2))
	wantBroken(t, verifyWith(keyed, downgraded), 2, "unkeyed chain after a keyed event")
}

// appendEvent encodes one more event after prev with codec.
func appendEvent(t *testing.T, codec *eventcodec.Codec, id uuid.UUID, prev eventstore.RecordedEvent, revision uint64) eventstore.RecordedEvent {
	t.Helper()
	var meta eventcodec.Metadata
	if err := json.Unmarshal(prev.Metadata, &meta); err != nil {
		t.Fatal(err)
	}
	data, _, err := codec.Encode(context.Background(), eventcodec.Batch{
		Stream: prev.Stream, FirstRevision: revision, PrevHash: meta.Hash,
		Metadata: eventcodec.Metadata{CustomerID: id, Actor: "tester", CausationID: uuid.New(), RecordedAt: now},
		Events:   []domain.Event{domain.TeamMemberAssigned{Role: domain.RoleSales, Member: "dan", OccurredAt: now}},
		IDs:      []uuid.UUID{uuid.New()},
	})
	if err != nil {
		t.Fatal(err)
	}
	return eventstore.RecordedEvent{ID: data[0].ID, Type: data[0].Type, Data: data[0].Data, Metadata: data[0].Metadata,
		Stream: prev.Stream, Revision: revision, Position: prev.Position + 1, RecordedAt: now}
}

func TestVerifierChecksTheStoresColumns(t *testing.T) {
	codec := keyedCodec(t, 1)
	clean := history(t, codec, uuid.New())
	moved := append([]eventstore.RecordedEvent(nil), clean...)
	moved[1].RecordedAt = now.Add(-300 * 24 * time.Hour)
	wantBroken(t, verifyWith(codec, moved), 1, "recorded_at")
	late := append([]eventstore.RecordedEvent(nil), clean...)
	late[2].RecordedAt = now.Add(2 * eventcodec.DefaultClockTolerance)
	wantBroken(t, verifyWith(codec, late), 2, "recorded_at")
	shifted := append([]eventstore.RecordedEvent(nil), clean...)
	shifted[2].Position = shifted[0].Position - 1
	wantBroken(t, verifyWith(codec, shifted), 2, "position")
	// Within the tolerance, the two clocks may differ.
	near := append([]eventstore.RecordedEvent(nil), clean...)
	near[1].RecordedAt = now.Add(eventcodec.DefaultClockTolerance / 2)
	if err := verifyWith(codec, near); err != nil {
		t.Fatalf("store clock half the tolerance ahead: %v", err)
	}
}

func TestKeyedEncodingNeedsARecordedTime(t *testing.T) {
	codec := keyedCodec(t, 1)
	_, _, err := codec.Encode(context.Background(), eventcodec.Batch{
		Stream: domain.StreamName(uuid.New()), Metadata: eventcodec.Metadata{Actor: "x"},
		Events: []domain.Event{domain.TeamMemberAssigned{Role: domain.RoleSales, Member: "dan", OccurredAt: now}}, IDs: []uuid.UUID{uuid.New()},
	})
	if err == nil {
		t.Fatal("a keyed event without a recorded time was encoded")
	}
}

// BenchmarkVerifyStream measures what verifying a 10,000-event stream
// costs under each rule, in the same run: the unkeyed SHA-256 chain of
// old events and the keyed HMAC-SHA-256 chain of new ones.
//
//	go test -run '^$' -bench BenchmarkVerifyStream -benchtime 20x ./domain/eventcodec/
func BenchmarkVerifyStream(b *testing.B) {
	const n = 10_000
	for _, rule := range []struct {
		name  string
		codec *eventcodec.Codec
	}{
		{"sha256-legacy", eventcodec.New(domain.NewRegistry(), nil)},
		{"hmac-sha256-keyed", eventcodec.New(domain.NewRegistry(), nil, eventcodec.WithChainKey(chainKey(b, 1)))},
	} {
		id := uuid.New()
		stream := domain.StreamName(id)
		events := make([]domain.Event, n)
		ids := make([]uuid.UUID, n)
		events[0] = domain.CustomerRegistered{CustomerID: id, Segment: "enterprise", Tier: "A", OccurredAt: now}
		for i := 1; i < n; i++ {
			events[i] = domain.ContactLogged{ContactID: uuid.New(), Channel: domain.ChannelPhone, Direction: domain.DirectionInbound, By: "bob", OccurredAt: now}
		}
		for i := range ids {
			ids[i] = uuid.New()
		}
		data, _, err := rule.codec.Encode(context.Background(), eventcodec.Batch{
			Stream: stream, Metadata: eventcodec.Metadata{CustomerID: id, Actor: "bench", CorrelationID: "corr", CausationID: uuid.New(), RecordedAt: now},
			Events: events, IDs: ids,
		})
		if err != nil {
			b.Fatal(err)
		}
		recs := make([]eventstore.RecordedEvent, n)
		for i, d := range data {
			recs[i] = eventstore.RecordedEvent{ID: d.ID, Type: d.Type, Data: d.Data, Metadata: d.Metadata, Stream: stream, Revision: uint64(i), Position: eventstore.Position(i + 1), RecordedAt: now}
		}
		b.Run(rule.name, func(b *testing.B) {
			for b.Loop() {
				if err := verifyWith(rule.codec, recs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestTheKeyedSinceMarkRejectsUnkeyedEventsAfterIt: unkeyed events before
// the mark verify as legacy, one at or after it is a rewrite by a writer
// without the key, and under an untrusted mark none is accepted; the
// mark's signature covers its position and its re-created flag, under the
// chain key only.
func TestTheKeyedSinceMarkRejectsUnkeyedEventsAfterIt(t *testing.T) {
	legacy := eventcodec.New(domain.NewRegistry(), newMemoryKeyring())
	old := history(t, legacy, uuid.New())
	marked := func(mark eventcodec.KeyedSince) *eventcodec.Codec {
		return eventcodec.New(domain.NewRegistry(), nil, eventcodec.WithChainKey(chainKey(t, 1)), eventcodec.WithKeyedSince(mark))
	}
	after := old[len(old)-1].Position + 1
	if err := verifyWith(marked(eventcodec.KeyedSince{Position: after}), old); err != nil {
		t.Fatalf("legacy history before the mark: %v", err)
	}
	wantBroken(t, verifyWith(marked(eventcodec.KeyedSince{Position: old[1].Position}), old), 1, "unkeyed event after the keyed-since mark")
	wantBroken(t, verifyWith(marked(eventcodec.KeyedSince{Position: after, Problem: "the mark was forged"}), old), 0, "the mark was forged")
	// Keyed events do not depend on the mark.
	keyed := keyedCodec(t, 1)
	if err := verifyWith(marked(eventcodec.KeyedSince{Problem: "the mark was forged"}), history(t, keyed, uuid.New())); err != nil {
		t.Fatalf("keyed history under an untrusted mark: %v", err)
	}

	k := chainKey(t, 1)
	sig := k.SignKeyedSince(after, false)
	if !k.CheckKeyedSince(after, false, sig) {
		t.Fatal("the mark's own signature does not verify")
	}
	if k.CheckKeyedSince(after+1, false, sig) || k.CheckKeyedSince(after, true, sig) || chainKey(t, 2).CheckKeyedSince(after, false, sig) {
		t.Fatal("a moved mark, a flipped re-created flag or another key's check passed")
	}
}
