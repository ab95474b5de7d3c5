package customers_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/readmodels/customers"
)

// benchCustomers is the size of BenchmarkList's directory.
const benchCustomers = 100_000

// loadSynthetic fills the active generation's table with n customers
// spread over a year, straight in SQL (no events): 10% churned, 80% with
// a contact in the last 120 days, 10% with open complaints, surveys and
// follow-ups at random.
func loadSynthetic(tb testing.TB, e *env, n int) {
	tb.Helper()
	ctx := context.Background()
	h := newHistory(day) // the generation, its table and the functions exist once an event is applied
	e.do(tb, h.id, h.events...)
	var schema string
	if err := e.pool.QueryRow(ctx, `SELECT schema_name FROM projections.generations WHERE projector = $1 AND state = 'active'`, customers.Name).Scan(&schema); err != nil {
		tb.Fatal(err)
	}
	_, err := e.pool.Exec(ctx, `
		INSERT INTO `+pgx.Identifier{schema, "customers"}.Sanitize()+` (id, name, email, company, tags, segment, tier, region, account_manager, team_members,
			status, registered_at, last_contact_at, open_complaints, complaints_total, last_csat, prev_csat, last_nps, next_follow_up_due_at,
			complaints, last_revision, last_position, updated_at)
		SELECT gen_random_uuid(), 'Customer ' || i, 'c' || i || '@example.com', 'Company ' || (i % 997), '{}',
			(ARRAY['enterprise', 'smb', 'consumer'])[1 + i % 3], (ARRAY['A', 'B', 'C'])[1 + i % 3], (ARRAY['emea', 'amer', 'apac'])[1 + (i / 3) % 3],
			'am' || (i % 50), ARRAY['am' || (i % 50)], CASE WHEN i % 10 = 0 THEN 'churned' ELSE 'active' END,
			reg, CASE WHEN random() < 0.8 THEN greatest(reg, $1::timestamptz - random() * interval '120 days') END,
			oc, oc + (random() < 0.05)::int * 3,
			CASE WHEN random() < 0.6 THEN 1 + floor(random() * 5)::int END, CASE WHEN random() < 0.4 THEN 1 + floor(random() * 5)::int END,
			CASE WHEN random() < 0.5 THEN floor(random() * 11)::int END,
			CASE WHEN random() < 0.2 THEN $1::timestamptz + (random() * 60 - 30) * interval '1 day' END,
			(SELECT coalesce(jsonb_agg(jsonb_build_object('id', gen_random_uuid(), 'category', 'billing',
				'severity', (ARRAY['low', 'medium', 'high', 'critical'])[1 + k % 4], 'status', 'filed',
				'filed_at', $1::timestamptz - k * interval '3 days', 'opened_at', $1::timestamptz - k * interval '3 days', 'openings', 1, 'escalations', 0)), '[]')
				FROM generate_series(1, oc) k),
			1, i, $1::timestamptz
		FROM (SELECT i, $1::timestamptz - random() * interval '365 days' AS reg, CASE WHEN random() < 0.1 THEN 1 + (random() < 0.3)::int ELSE 0 END AS oc
			FROM generate_series(1, $2::int) i) s`, now, n)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `ANALYZE `+pgx.Identifier{schema, "customers"}.Sanitize()); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkList measures the list over 100,000 customers, with and without
// the risk filter, each page at a random cursor (so from anywhere in the
// year), and reports the p50 and p95 latency of one page:
//
//	go test ./readmodels/customers -run '^$' -bench BenchmarkList -benchtime 300x
func BenchmarkList(b *testing.B) {
	e := newEnv(b)
	loadSynthetic(b, e, benchCustomers)
	q := e.q.At(now)
	ctx := context.Background()
	// Cursors at random registration times.
	var cursors []string
	for range 200 {
		cursors = append(cursors, customers.CursorAt(now.Add(-time.Duration(rand.Int64N(int64(365*day))))))
	}
	for _, bc := range []struct {
		name   string
		filter customers.Filter
		limit  int
	}{
		{"all", customers.Filter{}, 50},
		{"all_limit_500", customers.Filter{}, 500},
		{"risk_high", customers.Filter{Risk: "high"}, 50},
		{"risk_medium", customers.Filter{Risk: "medium"}, 50},
		{"risk_low", customers.Filter{Risk: "low"}, 50},
		{"risk_high_no_contact_60", customers.Filter{Risk: "high", NoContactDays: 60}, 50},
		{"segment_tier_risk_high", customers.Filter{Segment: "enterprise", Tier: "A", Risk: "high"}, 50},
		{"owner_risk_high", customers.Filter{Owner: "am7", Risk: "high"}, 50},
		{"q", customers.Filter{Q: "customer 4242"}, 50},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var took []time.Duration
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				if _, err := q.List(ctx, bc.filter, bc.limit, cursors[i%len(cursors)]); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			pct := func(p float64) float64 { return float64(took[int(p*float64(len(took)-1))].Microseconds()) / 1000 }
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.95), "p95-ms")
		})
	}
}
