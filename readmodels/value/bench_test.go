package value_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/value"
)

// benchCustomers is the size of BenchmarkValue's population.
const benchCustomers = 100_000

func activeSchema(tb testing.TB, pool *pgxpool.Pool, projector string) string {
	tb.Helper()
	var schema string
	if err := pool.QueryRow(context.Background(), `SELECT schema_name FROM projections.generations WHERE projector = $1 AND state = 'active'`, projector).Scan(&schema); err != nil {
		tb.Fatal(err)
	}
	return schema
}

// loadValueSynthetic fills the directory and the value tables straight in
// SQL (no events): n customers over three segments, 10% churned, 80% with
// 1–12 purchases over two years (EUR, a tenth in JPY), 15% of purchases
// refunded (a third of those in full), a points lot per purchase.
func loadValueSynthetic(tb testing.TB, pool *pgxpool.Pool, n int, now time.Time) {
	tb.Helper()
	ctx := context.Background()
	c := pgx.Identifier{activeSchema(tb, pool, customers.Name), "customers"}.Sanitize()
	vs := activeSchema(tb, pool, value.Name)
	vc, vp, vl := pgx.Identifier{vs, "value_customers"}.Sanitize(), pgx.Identifier{vs, "purchases"}.Sanitize(), pgx.Identifier{vs, "loyalty_ledger"}.Sanitize()
	for _, sql := range []string{
		`INSERT INTO ` + c + ` (id, name, email, company, tags, segment, tier, region, account_manager, team_members, status, registered_at,
			open_complaints, complaints_total, complaints, last_revision, last_position, updated_at)
		SELECT md5(i::text)::uuid, 'Customer ' || i, 'c' || i || '@example.com', 'Company ' || (i % 997), '{}',
			(ARRAY['enterprise', 'smb', 'consumer'])[1 + i % 3], (ARRAY['A', 'B', 'C'])[1 + i % 3], (ARRAY['emea', 'amer', 'apac'])[1 + (i / 3) % 3],
			'am' || (i % 50), ARRAY['am' || (i % 50)], CASE WHEN i % 10 = 0 THEN 'churned' ELSE 'active' END,
			$1::timestamptz - (i % 730) * interval '1 day', 0, 0, '[]', 1, i, $1::timestamptz
		FROM generate_series(1, $2::int) i`,
		`INSERT INTO ` + vc + ` (customer_id, currency, decimals, churned, last_revision, last_position)
		SELECT md5(i::text)::uuid, CASE WHEN i % 10 = 7 THEN 'JPY' ELSE 'EUR' END, CASE WHEN i % 10 = 7 THEN 0 ELSE 2 END, i % 10 = 0, 1, i
		FROM generate_series(1, $2::int) i WHERE i % 5 <> 1 AND $1::timestamptz IS NOT NULL`,
		`INSERT INTO ` + vp + ` (customer_id, purchase_id, reference, amount_minor, refunded_minor, currency, decimals, occurred_at, recorded_at, revision, position)
		SELECT v.customer_id, gen_random_uuid(), 'ORD-' || k, a, CASE WHEN r < 0.05 THEN a WHEN r < 0.15 THEN a / 3 ELSE 0 END,
			v.currency, v.decimals, t, t, 2, 1
		FROM ` + vc + ` v CROSS JOIN LATERAL generate_series(1, 1 + abs(hashtext(v.customer_id::text)) % 12) k,
			LATERAL (SELECT 100 + floor(random() * 50000)::bigint AS a, random() AS r,
				$1::timestamptz - random() * interval '730 days' AS t WHERE k IS NOT NULL) p
		WHERE $2::int > 0`,
		`INSERT INTO ` + vl + ` (customer_id, kind, entry_id, points, remaining, expires_at, purchase_id, occurred_at, revision, position)
		SELECT customer_id, 'purchase', purchase_id, amount_minor / 100, amount_minor / 200, occurred_at + interval '12 months', purchase_id, occurred_at, 2, 1
		FROM ` + vp + ` WHERE $1::timestamptz IS NOT NULL AND $2::int > 0`,
		`ANALYZE ` + c + `, ` + vc + `, ` + vp + `, ` + vl + ``,
	} {
		args := []any{now, n}
		if strings.HasPrefix(sql, "ANALYZE") || strings.HasPrefix(sql, "UPDATE") {
			args = nil
		}
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkValue measures, over 100,000 customers, the value of one
// customer, the customers of an RFM segment, a page of the directory with
// and without rfm=champions (the list as the API runs it: the segment's
// members, then the directory's page), a customer with and without its
// value, and the value figures by segment and by month; it reports the
// p50 and p95 of each:
//
//	go test ./readmodels/value -run '^$' -bench BenchmarkValue -benchtime 40x
func BenchmarkValue(b *testing.B) {
	pool := apptest.ReadModels(b, mustCustomersProjector(b), value.NewProjector())
	now := time.Now().UTC()
	loadValueSynthetic(b, pool, benchCustomers, now)
	vq := value.NewQueries(pool).At(now)
	cq := customers.NewQueries(pool).At(now)
	ctx := context.Background()
	ids := make([]uuid.UUID, 0, 200)
	rows, err := pool.Query(ctx, `SELECT customer_id FROM readmodels.value_customers ORDER BY random() LIMIT 200`)
	if err != nil {
		b.Fatal(err)
	}
	ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		b.Fatal(err)
	}
	champions, err := vq.Members(ctx, value.SegmentChampions)
	if err != nil || len(champions) == 0 {
		b.Fatalf("champions: %d, %v", len(champions), err)
	}
	b.Logf("%d customers, %d champions", benchCustomers, len(champions))
	for _, bc := range []struct {
		name string
		run  func(i int) error
	}{
		{"get_customer", func(i int) error { _, err := cq.Get(ctx, ids[i%len(ids)]); return err }},
		{"get_customer_with_value", func(i int) error {
			if _, err := cq.Get(ctx, ids[i%len(ids)]); err != nil {
				return err
			}
			_, err := vq.Value(ctx, ids[i%len(ids)])
			return err
		}},
		{"customer_value", func(i int) error { _, err := vq.Value(ctx, ids[i%len(ids)]); return err }},
		{"loyalty", func(i int) error { _, err := vq.Loyalty(ctx, ids[i%len(ids)]); return err }},
		{"list", func(int) error { _, err := cq.List(ctx, customers.Filter{}, 50, ""); return err }},
		{"list_rfm_champions", func(int) error {
			members, err := vq.Members(ctx, value.SegmentChampions)
			if err != nil {
				return err
			}
			_, err = cq.List(ctx, customers.Filter{IDs: &members}, 50, "")
			return err
		}},
		{"analytics_value_all", func(int) error {
			_, err := vq.Report(ctx, analytics.Params{From: now.Add(-90 * 24 * time.Hour), To: now})
			return err
		}},
		{"analytics_value_segment", func(int) error {
			_, err := vq.Report(ctx, analytics.Params{From: now.Add(-90 * 24 * time.Hour), To: now, GroupBy: analytics.Segment})
			return err
		}},
		{"analytics_value_month_2y", func(int) error {
			_, err := vq.Report(ctx, analytics.Params{From: now.Add(-730 * 24 * time.Hour), To: now, GroupBy: analytics.Month})
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var took []time.Duration
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				if err := bc.run(i); err != nil {
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

func mustCustomersProjector(tb testing.TB) *customers.Projector {
	p, err := customers.NewProjector(customers.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}
