package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/audit"
)

// appendStream writes a 10,000-event stream chained by codec straight to
// the store (one registration, then contacts), in a few large appends.
func appendStream(b *testing.B, m *apptest.Main, codec *eventcodec.Codec, n int) uuid.UUID {
	b.Helper()
	ctx := context.Background()
	id := uuid.New()
	now := time.Now().UTC()
	events := make([]domain.Event, n)
	ids := make([]uuid.UUID, n)
	events[0] = domain.CustomerRegistered{CustomerID: id, Segment: "enterprise", Tier: "A", OccurredAt: now}
	for i := 1; i < n; i++ {
		events[i] = domain.ContactLogged{ContactID: uuid.New(), Channel: domain.ChannelPhone, Direction: domain.DirectionInbound, By: "bob", OccurredAt: now}
	}
	for i := range ids {
		ids[i] = uuid.New()
	}
	data, _, err := codec.Encode(ctx, eventcodec.Batch{
		Stream:   domain.StreamName(id),
		Metadata: eventcodec.Metadata{CustomerID: id, Actor: "bench", CorrelationID: "corr", CausationID: uuid.New(), RecordedAt: now},
		Events:   events, IDs: ids,
	})
	if err != nil {
		b.Fatal(err)
	}
	// The store bounds one append's size: append in pages.
	for from := 0; from < n; from += 1000 {
		expected := eventstore.NoStream
		if from > 0 {
			expected = eventstore.Exact(uint64(from - 1))
		}
		if _, err := m.Store.Append(ctx, domain.StreamName(id), expected, data[from:min(from+1000, n)]); err != nil {
			b.Fatal(err)
		}
	}
	return id
}

// BenchmarkVerifyStreamOnPostgres measures `rapport audit verify` of one
// 10,000-event stream end to end over the Postgres store, for a stream
// chained under the old unkeyed SHA-256 rule and one under the keyed
// HMAC-SHA-256 rule, in the same run (the pure chain computation is
// BenchmarkVerifyStream in domain/eventcodec):
//
//	go test -run '^$' -bench BenchmarkVerifyStreamOnPostgres -count 3 ./readmodels/audit/
func BenchmarkVerifyStreamOnPostgres(b *testing.B) {
	const n = 10_000
	m := apptest.MustOpen(b)
	ctx := context.Background()
	legacy := appendStream(b, m, eventcodec.New(domain.NewRegistry(), m.Keyring), n)
	m.UpgradeToKeyed(b)
	a := audit.New(m.Store, m.Codec)
	streams := []struct {
		name string
		id   uuid.UUID
		// legacy is how many events verify under the old rule.
		legacy int
	}{
		{"sha256-legacy", legacy, n},
		{"hmac-sha256-keyed", appendStream(b, m, m.Codec, n), 0},
	}
	// Read both once first, so that neither rule pays for a cold cache.
	for _, s := range streams {
		if _, err := a.Verify(ctx, s.id); err != nil {
			b.Fatal(err)
		}
	}
	for _, s := range streams {
		b.Run(s.name, func(b *testing.B) {
			for b.Loop() {
				v, err := a.Verify(ctx, s.id)
				if err != nil || !v.Intact || v.Events != n || v.LegacyEvents != s.legacy {
					b.Fatalf("%+v (break %+v) %v", v, v.BrokenAt, err)
				}
			}
		})
	}
}
