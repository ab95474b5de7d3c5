package feed

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/integration"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// Queries reads the feed.
type Queries struct{ pool *pgxpool.Pool }

// NewQueries returns the feed's queries.
func NewQueries(pool *pgxpool.Pool) *Queries { return &Queries{pool: pool} }

// Reads names the projectors whose tables the queries read: this one's.
func (*Queries) Reads() []string { return []string{Name} }

// After returns up to limit integration events after position, in log
// order, only of types when types is not empty.
func (q *Queries) After(ctx context.Context, after uint64, types []string, limit int) ([]integration.Event, error) {
	return After(ctx, q.pool, after, types, limit)
}

// Head is the position of the newest event in the feed (0 when empty).
func (q *Queries) Head(ctx context.Context) (uint64, error) {
	var head int64
	if err := q.pool.QueryRow(ctx, `SELECT coalesce(max(position), 0) FROM readmodels.feed`).Scan(&head); err != nil {
		return 0, readmodel.Fail("feed: head", err)
	}
	return uint64(head), nil
}

// Querier is what After reads with: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// After is Queries.After over any Querier, for the deliverers that read
// the feed inside their own transactions.
func After(ctx context.Context, db Querier, after uint64, types []string, limit int) ([]integration.Event, error) {
	if limit < 1 {
		return nil, fmt.Errorf("feed: limit %d is not positive", limit)
	}
	if after > 1<<63-1 {
		return nil, nil
	}
	var filter []string
	if len(types) > 0 {
		filter = types
	}
	rows, err := db.Query(ctx, `
		SELECT position, event_id, type, customer_id, revision, occurred_at, recorded_at, data
		FROM readmodels.feed
		WHERE position > $1 AND ($2::text[] IS NULL OR type = ANY($2))
		ORDER BY position
		LIMIT $3`, int64(after), filter, limit)
	if err != nil {
		return nil, readmodel.Fail("feed: query", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (integration.Event, error) {
		var (
			e        integration.Event
			pos, rev int64
			data     []byte
		)
		if err := row.Scan(&pos, &e.ID, &e.Type, &e.CustomerID, &rev, &e.OccurredAt, &e.RecordedAt, &data); err != nil {
			return e, err
		}
		e.Position, e.Revision = uint64(pos), uint64(rev)
		e.OccurredAt, e.RecordedAt = e.OccurredAt.UTC(), e.RecordedAt.UTC()
		e.Data = json.RawMessage(data)
		return e, nil
	})
	if err != nil {
		return nil, readmodel.Fail("feed: query", err)
	}
	return events, nil
}
