package eventcodec_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// memoryKeyring is an in-memory Keyring for these pure unit tests; the
// Postgres keyring has its own tests against a real database.
type memoryKeyring struct {
	mu        sync.Mutex
	keys      map[uuid.UUID][]byte
	destroyed map[uuid.UUID]bool
}

func newMemoryKeyring() *memoryKeyring {
	return &memoryKeyring{keys: map[uuid.UUID][]byte{}, destroyed: map[uuid.UUID]bool{}}
}

func (k *memoryKeyring) DataKey(_ context.Context, id uuid.UUID, create bool) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.destroyed[id] {
		return nil, eventcodec.ErrKeyDestroyed
	}
	if key, ok := k.keys[id]; ok {
		return key, nil
	}
	if !create {
		return nil, errors.New("no key")
	}
	key := []byte(strings.Repeat("k", 32))
	key[0] = byte(len(k.keys))
	k.keys[id] = key
	return key, nil
}

func (k *memoryKeyring) destroy(id uuid.UUID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.destroyed[id] = true
}

var now = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// history encodes a customer's first events the way the command side does.
func history(t *testing.T, codec *eventcodec.Codec, id uuid.UUID) []eventstore.RecordedEvent {
	t.Helper()
	events := []domain.Event{
		domain.CustomerRegistered{CustomerID: id, Name: "Ada Lovelace", Email: "ada@example.com", Tags: []string{"vip", "analytical"}, Segment: "enterprise", Tier: "A", OccurredAt: now},
		domain.ContactLogged{ContactID: uuid.New(), Channel: domain.ChannelPhone, Direction: domain.DirectionInbound, Summary: "asked about the engine", By: "bob", OccurredAt: now},
		domain.TeamMemberAssigned{Role: domain.RoleSupport, Member: "carol", OccurredAt: now},
	}
	var out []eventstore.RecordedEvent
	prev := ""
	for i, e := range events {
		batch := eventcodec.Batch{
			Stream: domain.StreamName(id), FirstRevision: uint64(i), PrevHash: prev,
			Metadata: eventcodec.Metadata{CustomerID: id, Actor: "tester", CorrelationID: "corr", CausationID: uuid.New(), RecordedAt: now},
			Events:   []domain.Event{e}, IDs: []uuid.UUID{uuid.New()},
		}
		data, last, err := codec.Encode(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		prev = last
		out = append(out, eventstore.RecordedEvent{ID: data[0].ID, Type: data[0].Type, Data: data[0].Data, Metadata: data[0].Metadata, Stream: batch.Stream, Revision: uint64(i), Position: eventstore.Position(1000 + i), RecordedAt: now})
	}
	return out
}

func TestRoundTripEncryptsPersonalFields(t *testing.T) {
	keys := newMemoryKeyring()
	codec := eventcodec.New(domain.NewRegistry(), keys)
	id := uuid.New()
	stored := history(t, codec, id)
	for _, secret := range []string{"Ada", "ada@example.com", "vip", "engine"} {
		for _, rec := range stored {
			if strings.Contains(string(rec.Data), secret) {
				t.Errorf("stored %s holds %q in clear: %s", rec.Type, secret, rec.Data)
			}
		}
	}
	if !strings.Contains(string(stored[0].Data), `"segment":"enterprise"`) {
		t.Errorf("classification should stay readable: %s", stored[0].Data)
	}
	d, err := codec.Decode(context.Background(), stored[0])
	if err != nil {
		t.Fatal(err)
	}
	reg := d.Event.(domain.CustomerRegistered)
	if reg.Name != "Ada Lovelace" || reg.Email != "ada@example.com" || strings.Join(reg.Tags, ",") != "vip,analytical" || d.Erased {
		t.Fatalf("decoded %+v erased=%v", reg, d.Erased)
	}
	if d.Metadata.Actor != "tester" || d.Metadata.SchemaVersion != 1 || !d.Metadata.OccurredAt.Equal(now) {
		t.Fatalf("metadata %+v", d.Metadata)
	}
}

func TestDestroyedKeyErasesPersonalFieldsOnly(t *testing.T) {
	keys := newMemoryKeyring()
	codec := eventcodec.New(domain.NewRegistry(), keys)
	id := uuid.New()
	stored := history(t, codec, id)
	keys.destroy(id)
	d, err := codec.Decode(context.Background(), stored[0])
	if err != nil {
		t.Fatal(err)
	}
	reg := d.Event.(domain.CustomerRegistered)
	if !d.Erased || reg.Name != "" || reg.Email != "" || reg.Tags[0] != "" || reg.Segment != "enterprise" || reg.Tier != "A" {
		t.Fatalf("after erasure decoded %+v erased=%v", reg, d.Erased)
	}
	revealed, erased, err := codec.RevealJSON(context.Background(), id, stored[1].Data)
	if err != nil || !erased || !strings.Contains(string(revealed), `"summary":null`) || !strings.Contains(string(revealed), `"by":"bob"`) {
		t.Fatalf("revealed %s erased=%v err=%v", revealed, erased, err)
	}
	// Verification does not need the data key: the chain covers what is stored.
	v := codec.NewVerifier()
	for _, rec := range stored {
		if err := v.Verify(rec); err != nil {
			t.Fatal(err)
		}
	}
}

func verify(stored []eventstore.RecordedEvent) error {
	return verifyWith(eventcodec.New(domain.NewRegistry(), nil), stored)
}

func verifyWith(codec *eventcodec.Codec, stored []eventstore.RecordedEvent) error {
	v := codec.NewVerifier()
	for _, rec := range stored {
		if err := v.Verify(rec); err != nil {
			return err
		}
	}
	return nil
}

func TestChainDetectsTampering(t *testing.T) {
	codec := eventcodec.New(domain.NewRegistry(), newMemoryKeyring())
	id := uuid.New()
	clean := history(t, codec, id)
	if err := verify(clean); err != nil {
		t.Fatalf("untouched history: %v", err)
	}
	copyOf := func() []eventstore.RecordedEvent { return append([]eventstore.RecordedEvent(nil), clean...) }
	cases := map[string]func() []eventstore.RecordedEvent{
		"edited payload": func() []eventstore.RecordedEvent {
			h := copyOf()
			h[2].Data = []byte(strings.Replace(string(h[2].Data), "carol", "mallory", 1))
			return h
		},
		"edited metadata": func() []eventstore.RecordedEvent {
			h := copyOf()
			h[1].Metadata = []byte(strings.Replace(string(h[1].Metadata), `"actor":"tester"`, `"actor":"someone"`, 1))
			return h
		},
		"deleted event": func() []eventstore.RecordedEvent {
			h := copyOf()
			return append(h[:1], h[2:]...)
		},
		"reordered events": func() []eventstore.RecordedEvent {
			h := copyOf()
			h[1], h[2] = h[2], h[1]
			h[1].Revision, h[2].Revision = 1, 2
			return h
		},
		"changed type": func() []eventstore.RecordedEvent {
			h := copyOf()
			h[2].Type = domain.TypeCustomerChurned
			return h
		},
	}
	for name, tamper := range cases {
		err := verify(tamper())
		var link *eventcodec.LinkError
		if !errors.As(err, &link) {
			t.Errorf("%s: verification gave %v, want a broken link", name, err)
		}
	}
}

func TestSchemaVersion(t *testing.T) {
	for name, want := range map[string]int{"rapport.ContactLogged.v1": 1, "rapport.X.v12": 12, "nope": 0} {
		if got := eventcodec.SchemaVersion(name); got != want {
			t.Errorf("SchemaVersion(%q) = %d, want %d", name, got, want)
		}
	}
}
