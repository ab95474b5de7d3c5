package webhooks

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Head is a due queue head, for the tests of the package.
type Head struct {
	ID  int64
	Sub [16]byte
	Cus [16]byte
}

// DueHeads runs the deliverer's due-head query (scan: the one it
// replaced) over pool.
func DueHeads(ctx context.Context, pool *pgxpool.Pool, limit int, scan bool) ([]Head, error) {
	q := dueHeadsSQL
	if scan {
		q = dueHeadsScanSQL
	}
	rows, err := pool.Query(ctx, q, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Head, error) {
		var h Head
		return h, r.Scan(&h.ID, &h.Sub, &h.Cus)
	})
}

// dueHeadsScanSQL is the query dueHeads replaced: the same answer, by
// reading every pending delivery. Kept for the tests, which compare the
// two, and the benchmark, which measures one against the other.
const dueHeadsScanSQL = `
		SELECT h.id, h.subscription_id, h.customer_id
		FROM rapport.webhook_subscriptions s
		CROSS JOIN LATERAL (
			SELECT DISTINCT ON (customer_id) id, subscription_id, customer_id, next_attempt_at
			FROM rapport.webhook_deliveries
			WHERE subscription_id = s.id AND NOT delivered
			ORDER BY customer_id, id
		) h
		WHERE s.state = 'active' AND h.next_attempt_at <= now()
		ORDER BY h.id
		LIMIT $1`
