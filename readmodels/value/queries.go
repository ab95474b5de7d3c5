package value

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// CustomerValue is a customer's recency, frequency and monetary value
// judged at the time of the query (PRODUCT.md: value).
type CustomerValue struct {
	// RecencyDays is whole days since the last purchase not refunded in
	// full; nil without one.
	RecencyDays *int
	// Frequency counts the purchases of the last 365 days (those refunded
	// in full left out); MonetaryMinor is their net amount.
	Frequency     int
	MonetaryMinor int64
	// Currency is the customer's ("" before a purchase); Decimals its
	// minor-unit digits.
	Currency string
	Decimals int
	// R, F, M and Segment are nil unless the customer is active with a
	// purchase in the last 365 days.
	R, F, M *int
	Segment *string
}

// Monetary is MonetaryMinor as a decimal string.
func (v CustomerValue) Monetary() string { return domain.FormatAmount(v.MonetaryMinor, v.Decimals) }

// ExpiringWindow is how far ahead "points expiring soon" looks.
const ExpiringWindow = 30 * 24 * time.Hour

// Loyalty is a customer's points judged at the time of the query.
type Loyalty struct {
	// Balance is the points that can be spent now.
	Balance int64
	// Expiring is the part of Balance that expires within ExpiringWindow.
	Expiring int64
	// Ledger is every entry, oldest first, with the expiries judged now.
	Ledger []Entry
}

// Entry is one line of the ledger.
type Entry struct {
	Kind string
	// Points is positive for points earned, negative for points spent,
	// taken back or expired.
	Points     int64
	OccurredAt time.Time
	ExpiresAt  *time.Time
	Reason     *string
	PurchaseID *uuid.UUID
	EntryID    uuid.UUID
}

// Queries reads the value read model through the readmodels.* views,
// and scores customers against a population snapshot (population.go)
// that equals readmodels.customer_values at every instant.
type Queries struct {
	pool  *pgxpool.Pool
	now   func() time.Time
	cache *popCache
}

// Option configures Queries.
type Option func(*CacheConfig)

// WithCache sets how the population snapshot is refreshed (default
// DefaultCacheConfig).
func WithCache(c CacheConfig) Option { return func(cfg *CacheConfig) { *cfg = c } }

// NewQueries returns queries on pool, judging time with the clock.
func NewQueries(pool *pgxpool.Pool, opts ...Option) *Queries {
	cfg := DefaultCacheConfig()
	for _, o := range opts {
		o(&cfg)
	}
	return &Queries{pool: pool, now: time.Now, cache: newPopCache(pool, cfg)}
}

// At returns the same queries judging at now.
func (q *Queries) At(now time.Time) *Queries {
	c := *q
	c.now = func() time.Time { return now }
	return &c
}

// Reads names the projectors the customer queries read: this one.
func (*Queries) Reads() []string { return []string{Name} }

// Snapshots counts the population snapshots these queries built (tests
// and benchmarks).
func (q *Queries) Snapshots() int64 { return q.cache.builds.Load() }

// Value returns a customer's value; a customer without purchases has the
// zero value (frequency 0, no scores). Its own figures are read live and
// its scores counted in the population at now (one round trip once a
// snapshot exists).
func (q *Queries) Value(ctx context.Context, id uuid.UUID) (CustomerValue, error) {
	now := q.now()
	pop, err := q.cache.at(ctx, now, []uuid.UUID{id})
	if err != nil {
		return CustomerValue{}, readmodel.Fail("value: customer value", err)
	}
	own, ok := pop.changed[id]
	if !ok {
		return CustomerValue{Decimals: 2}, nil
	}
	return pop.value(own), nil
}

// ValueSQL returns a customer's value from readmodels.customer_values,
// the definition (tests and benchmarks compare the two).
func (q *Queries) ValueSQL(ctx context.Context, id uuid.UUID) (CustomerValue, error) {
	rows, err := q.pool.Query(ctx, `SELECT currency, decimals, recency_days, frequency, monetary, r, f, m, rfm_segment, true
		FROM readmodels.customer_values($1) WHERE customer_id = $2`, q.now(), id)
	if err != nil {
		return CustomerValue{}, readmodel.Fail("value: customer value", err)
	}
	var scored bool
	v, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (CustomerValue, error) { return scanValue(row, &scored) })
	if err != nil {
		return CustomerValue{}, readmodel.Fail("value: customer value", err)
	}
	if len(v) == 0 {
		return CustomerValue{Decimals: 2}, nil
	}
	return v[0], nil
}

func scanValue(row pgx.CollectableRow, scored *bool) (CustomerValue, error) {
	var (
		v        CustomerValue
		currency *string
		decimals *int16
		recency  *int32
		freq     int32
		r, f, m  *int32
	)
	if err := row.Scan(&currency, &decimals, &recency, &freq, &v.MonetaryMinor, &r, &f, &m, &v.Segment, scored); err != nil {
		return v, err
	}
	v.Currency, v.Decimals, v.Frequency = readmodel.Deref(currency), 2, int(freq)
	if decimals != nil {
		v.Decimals = int(*decimals)
	}
	v.RecencyDays, v.R, v.F, v.M = intPtr(recency), intPtr(r), intPtr(f), intPtr(m)
	return v, nil
}

func intPtr(p *int32) *int {
	if p == nil {
		return nil
	}
	v := int(*p)
	return &v
}

// ValidSegment reports whether s names an RFM segment.
func ValidSegment(s string) bool { return slices.Contains(Segments(), s) }

// MaxMembers bounds Members: the list filter rfm= passes them to the
// directory's query.
const MaxMembers = 1_000_000

// Members lists the customers in an RFM segment now, scored against the
// population snapshot (in no particular order).
func (q *Queries) Members(ctx context.Context, segment string) ([]uuid.UUID, error) {
	if !ValidSegment(segment) {
		return nil, fmt.Errorf("value: unknown RFM segment %q", segment)
	}
	pop, err := q.cache.at(ctx, q.now(), nil)
	if err != nil {
		return nil, readmodel.Fail("value: segment members", err)
	}
	return pop.members(segment, MaxMembers), nil
}

// MembersSQL lists the customers in an RFM segment now from
// readmodels.customer_values, the definition.
func (q *Queries) MembersSQL(ctx context.Context, segment string) ([]uuid.UUID, error) {
	if !ValidSegment(segment) {
		return nil, fmt.Errorf("value: unknown RFM segment %q", segment)
	}
	rows, err := q.pool.Query(ctx, `SELECT customer_id FROM readmodels.customer_values($1) WHERE rfm_segment = $2 LIMIT $3`,
		q.now(), segment, MaxMembers)
	if err != nil {
		return nil, readmodel.Fail("value: segment members", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, readmodel.Fail("value: segment members", err)
	}
	return ids, nil
}

// Loyalty returns a customer's points: the balance, what of it expires in
// the next 30 days, and the ledger with an expiry entry for each lot that
// expired with points left (at its expiry date).
func (q *Queries) Loyalty(ctx context.Context, id uuid.UUID) (Loyalty, error) {
	now := q.now()
	rows, err := q.pool.Query(ctx, `SELECT kind, entry_id, points, remaining, expires_at, reason, purchase_id, occurred_at
		FROM readmodels.loyalty_ledger WHERE customer_id = $1 ORDER BY occurred_at, position, kind`, id)
	if err != nil {
		return Loyalty{}, readmodel.Fail("value: loyalty", err)
	}
	out := Loyalty{Ledger: []Entry{}}
	var expiries []Entry
	for rows.Next() {
		var (
			e         Entry
			remaining *int64
		)
		if err := rows.Scan(&e.Kind, &e.EntryID, &e.Points, &remaining, &e.ExpiresAt, &e.Reason, &e.PurchaseID, &e.OccurredAt); err != nil {
			rows.Close()
			return Loyalty{}, readmodel.Fail("value: loyalty", err)
		}
		out.Ledger = append(out.Ledger, e)
		if remaining == nil || e.ExpiresAt == nil || *remaining == 0 {
			continue
		}
		switch {
		case !now.Before(*e.ExpiresAt):
			expiries = append(expiries, Entry{Kind: KindExpiry, Points: -*remaining, OccurredAt: *e.ExpiresAt, EntryID: e.EntryID, PurchaseID: e.PurchaseID})
		default:
			out.Balance += *remaining
			if !e.ExpiresAt.After(now.Add(ExpiringWindow)) {
				out.Expiring += *remaining
			}
		}
	}
	if err := rows.Err(); err != nil {
		return Loyalty{}, readmodel.Fail("value: loyalty", err)
	}
	out.Ledger = append(out.Ledger, expiries...)
	slices.SortStableFunc(out.Ledger, func(a, b Entry) int { return a.OccurredAt.Compare(b.OccurredAt) })
	return out, nil
}
