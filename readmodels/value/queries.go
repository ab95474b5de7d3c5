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

// Queries reads the value read model through the readmodels.* views.
type Queries struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// NewQueries returns queries on pool, judging time with the clock.
func NewQueries(pool *pgxpool.Pool) *Queries { return &Queries{pool: pool, now: time.Now} }

// At returns the same queries judging at now.
func (q *Queries) At(now time.Time) *Queries {
	c := *q
	c.now = func() time.Time { return now }
	return &c
}

// Reads names the projectors the customer queries read: this one.
func (*Queries) Reads() []string { return []string{Name} }

// Value returns a customer's value; a customer without purchases has the
// zero value (frequency 0, no scores). Only a customer in the population
// (active, with a counted purchase in the window) needs the population's
// ranking; the others are answered from their own rows.
func (q *Queries) Value(ctx context.Context, id uuid.UUID) (CustomerValue, error) {
	now := q.now()
	rows, err := q.pool.Query(ctx, `SELECT v.currency, v.decimals,
			floor(extract(epoch FROM $1::timestamptz - (SELECT max(p.occurred_at) FROM readmodels.purchases p
				WHERE p.customer_id = v.customer_id AND p.amount_minor > p.refunded_minor AND p.occurred_at <= $1::timestamptz)) / 86400)::integer,
			w.frequency, w.monetary, NULL::integer, NULL::integer, NULL::integer, NULL::text, NOT v.churned AND w.frequency > 0
		FROM readmodels.value_customers v CROSS JOIN LATERAL (
			SELECT (count(*) FILTER (WHERE p.amount_minor > p.refunded_minor))::integer AS frequency,
				coalesce(sum(p.amount_minor - p.refunded_minor), 0)::bigint AS monetary
			FROM readmodels.purchases p
			WHERE p.customer_id = v.customer_id AND p.occurred_at > $1::timestamptz - interval '365 days' AND p.occurred_at <= $1::timestamptz) w
		WHERE v.customer_id = $2`, now, id)
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
	own := v[0]
	if !scored {
		return own, nil
	}
	rows, err = q.pool.Query(ctx, `SELECT currency, decimals, recency_days, frequency, monetary, r, f, m, rfm_segment, true
		FROM readmodels.customer_values($1) WHERE customer_id = $2`, now, id)
	if err != nil {
		return CustomerValue{}, readmodel.Fail("value: customer value", err)
	}
	v, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (CustomerValue, error) { return scanValue(row, &scored) })
	if err != nil {
		return CustomerValue{}, readmodel.Fail("value: customer value", err)
	}
	if len(v) == 0 {
		return own, nil // the row went between the two reads (a rebuild's switch-over)
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

// Members lists the customers in an RFM segment now.
func (q *Queries) Members(ctx context.Context, segment string) ([]uuid.UUID, error) {
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
