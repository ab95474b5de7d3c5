package webhooks_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/webhooks"
)

// queueDeliveries inserts n pending deliveries per subscription spread
// over customers (a few delivered, a few with a retry in the future).
func queueDeliveries(t testing.TB, m *apptest.Main, subs []uuid.UUID, customers []uuid.UUID, n int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, sub := range subs {
		if _, err := m.Pool.Exec(context.Background(), `
			INSERT INTO rapport.webhook_deliveries (subscription_id, position, customer_id, event_id, event_type, payload, delivered, next_attempt_at)
			SELECT $1, g, ($2::uuid[])[1 + (g * 7919 + $4) % array_length($2, 1)], gen_random_uuid(), 'contact.logged.v1', '{}',
			       (g + $4) % 11 = 0, now() + CASE WHEN (g + $4) % 13 = 0 THEN interval '1 hour' ELSE interval '-1 second' END
			FROM generate_series(1, $3) g`, sub, customers, n, rng.IntN(1000)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDueHeadsAgreesWithTheScan: the indexed due-head query answers what
// the scan of every pending delivery answered — heads of active
// subscriptions only, one per customer queue, a head with a retry in the
// future left out (its queue waits behind it), oldest first — at every
// limit, as deliveries are delivered and subscriptions change state.
func TestDueHeadsAgreesWithTheScan(t *testing.T) {
	m := openService(t)
	ctx := context.Background()
	var subs, customers []uuid.UUID
	for i := range 3 {
		c, err := m.Webhooks.Create(ctx, webhooks.NewSubscription{URL: fmt.Sprintf("http://127.0.0.1:%d/hook", 9000+i)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, c.ID)
	}
	for range 40 {
		customers = append(customers, uuid.New())
	}
	queueDeliveries(t, m, subs, customers, 600, 1)
	compare := func(when string) {
		t.Helper()
		for _, limit := range []int{1, 7, 64, 10_000} {
			got, err := webhooks.DueHeads(ctx, m.Pool, limit, false)
			if err != nil {
				t.Fatal(err)
			}
			want, err := webhooks.DueHeads(ctx, m.Pool, limit, true)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s, limit %d: %d heads, the scan %d:\n%v\n%v", when, limit, len(got), len(want), got, want)
			}
			if limit == 10_000 && len(got) < 20 {
				t.Fatalf("%s: only %d due heads: the case is too easy", when, len(got))
			}
		}
	}
	compare("queued")
	if _, err := m.Pool.Exec(ctx, `UPDATE rapport.webhook_deliveries SET delivered = true WHERE id % 3 = 0`); err != nil {
		t.Fatal(err)
	}
	compare("some delivered")
	if _, err := m.Webhooks.Disable(ctx, subs[1]); err != nil {
		t.Fatal(err)
	}
	compare("one subscription disabled")
	if _, err := m.Pool.Exec(ctx, `UPDATE rapport.webhook_deliveries SET delivered = true WHERE subscription_id = $1`, subs[2]); err != nil {
		t.Fatal(err)
	}
	compare("one subscription drained")
}

// BenchmarkDueHeads compares the due-head query with the scan it replaced
// over a backlog of 100,000 pending deliveries to 50 customers (a slow
// receiver's): go test -run '^$' -bench DueHeads ./infra/webhooks/
func BenchmarkDueHeads(b *testing.B) {
	m := apptest.MustOpen(b, func(c *app.Config) { c.Webhooks.Off = true })
	ctx := context.Background()
	c, err := m.Webhooks.Create(ctx, webhooks.NewSubscription{URL: "http://203.0.113.10/hook"}, 0)
	if err != nil {
		b.Fatal(err)
	}
	var customers []uuid.UUID
	for range 50 {
		customers = append(customers, uuid.New())
	}
	queueDeliveries(b, m, []uuid.UUID{c.ID}, customers, 100_000, 2)
	if _, err := m.Pool.Exec(ctx, `ANALYZE rapport.webhook_deliveries`); err != nil {
		b.Fatal(err)
	}
	for _, scan := range []bool{true, false} {
		name := map[bool]string{true: "scan", false: "indexed"}[scan]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := webhooks.DueHeads(ctx, m.Pool, 64, scan); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
