package value

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// Group is one row of the value figures: a group and a currency (money
// figures do not add across currencies). A group without purchases in
// the period has one row with no currency.
type Group struct {
	Key *string
	// Currency is "" for a group without purchases; Decimals its digits.
	Currency string
	Decimals int
	// RevenueMinor is the net amount (amount − refunds) of the purchases
	// that occurred in the period.
	RevenueMinor int64
	// Purchases counts them, those refunded in full left out.
	Purchases int64
	// Customers have 1 or more such purchases, RepeatCustomers 2 or more.
	Customers       int64
	RepeatCustomers int64
}

// Revenue is RevenueMinor as a decimal string; nil without a currency.
func (g Group) Revenue() *string {
	if g.Currency == "" {
		return nil
	}
	s := domain.FormatAmount(g.RevenueMinor, g.Decimals)
	return &s
}

// AverageOrderValue is revenue ÷ purchases, rounded half up to the
// currency's minor unit; nil without purchases.
func (g Group) AverageOrderValue() *string {
	if g.Purchases == 0 || g.Currency == "" {
		return nil
	}
	s := domain.FormatAmount((2*g.RevenueMinor+g.Purchases)/(2*g.Purchases), g.Decimals)
	return &s
}

// RepeatPurchaseRate is RepeatCustomers ÷ Customers × 100; nil without
// customers.
func (g Group) RepeatPurchaseRate() *float64 {
	if g.Customers == 0 {
		return nil
	}
	r := float64(g.RepeatCustomers) / float64(g.Customers) * 100
	return &r
}

// Report is the value figures of a period.
type Report struct {
	analytics.Params
	Groups []Group
}

// ReportReads names the projectors the value figures read: this one (its
// keys follow the directory's classification and account manager).
func (*Queries) ReportReads() []string { return []string{Name} }

// attribute is a customer's group key (alias c: readmodels.customers),
// as the other figures group.
var attribute = map[analytics.GroupBy]string{
	analytics.Segment: `nullif(c.segment, '')`,
	analytics.Tier:    `nullif(c.tier, '')`,
	analytics.Region:  `nullif(c.region, '')`,
	analytics.Owner:   `c.account_manager`,
}

// reportSQL: {source} yields the purchases counted with their key;
// {keys} every key that answers.
const reportSQL = `
	WITH keys AS ({keys}),
	p AS ({source}),
	per AS (
		SELECT key, currency, max(decimals) AS decimals, customer_id, sum(amount_minor - refunded_minor) AS net,
			count(*) FILTER (WHERE amount_minor > refunded_minor) AS n
		FROM p GROUP BY key, currency, customer_id),
	agg AS (
		SELECT key, currency, max(decimals) AS decimals, sum(net)::bigint AS revenue, sum(n)::bigint AS purchases,
			count(*) FILTER (WHERE n >= 1) AS customers, count(*) FILTER (WHERE n >= 2) AS repeaters
		FROM per GROUP BY key, currency)
	SELECT g.key, a.currency, a.decimals, coalesce(a.revenue, 0), coalesce(a.purchases, 0), coalesce(a.customers, 0), coalesce(a.repeaters, 0)
	FROM (SELECT key FROM keys UNION SELECT key FROM agg) g LEFT JOIN agg a ON a.key IS NOT DISTINCT FROM g.key
	ORDER BY g.key NULLS LAST, a.currency NULLS LAST`

// ReportSQL answers the value figures with the documented SQL
// (readmodels/README.md "Value figures"), aggregating the period's
// purchases per customer: the definition, which Report must equal
// (TestValueRollupAgreesWithTheDocumentedSQL) and which the benchmarks
// compare it with.
func (q *Queries) ReportSQL(ctx context.Context, p analytics.Params) (Report, error) {
	args := []any{p.From, p.To}
	var keys, source string
	switch p.GroupBy {
	case analytics.Month:
		mk, mf, mt := analytics.MonthBounds(p)
		args = []any{mk, mf, mt}
		months := `SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS m(key, f, t)`
		keys = `SELECT key FROM (` + months + `) m`
		source = `SELECT m.key, x.customer_id, x.currency, x.decimals, x.amount_minor, x.refunded_minor
			FROM (` + months + `) m JOIN readmodels.purchases x ON x.occurred_at >= m.f AND x.occurred_at < m.t`
	case analytics.All:
		keys = `SELECT 'all'::text AS key`
		source = `SELECT 'all'::text AS key, x.customer_id, x.currency, x.decimals, x.amount_minor, x.refunded_minor
			FROM readmodels.purchases x WHERE x.occurred_at >= $1::timestamptz AND x.occurred_at < $2::timestamptz`
	default:
		key, ok := attribute[p.GroupBy]
		if !ok {
			return Report{}, fmt.Errorf("value: unknown grouping %q", p.GroupBy)
		}
		keys = `SELECT DISTINCT ` + key + ` AS key FROM readmodels.customers c`
		source = `SELECT ` + key + ` AS key, x.customer_id, x.currency, x.decimals, x.amount_minor, x.refunded_minor
			FROM readmodels.purchases x LEFT JOIN readmodels.customers c ON c.id = x.customer_id
			WHERE x.occurred_at >= $1::timestamptz AND x.occurred_at < $2::timestamptz`
	}
	sql := strings.NewReplacer("{keys}", keys, "{source}", source).Replace(reportSQL)
	return q.collectReport(ctx, q.pool, p, sql, args...)
}

func (q *Queries) collectReport(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, p analytics.Params, sql string, args ...any) (Report, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return Report{}, readmodel.Fail("value: report", err)
	}
	groups, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Group, error) {
		var (
			g        Group
			currency *string
			decimals *int16
		)
		err := row.Scan(&g.Key, &currency, &decimals, &g.RevenueMinor, &g.Purchases, &g.Customers, &g.RepeatCustomers)
		g.Currency, g.Decimals = readmodel.Deref(currency), 2
		if decimals != nil {
			g.Decimals = int(*decimals)
		}
		return g, err
	})
	if err != nil {
		return Report{}, readmodel.Fail("value: report", err)
	}
	if groups == nil {
		groups = []Group{}
	}
	return Report{Params: p, Groups: groups}, nil
}

// rollupSQL answers the value figures from the day sums (rollup.go) over
// the windows $1…$6 (key, from, first whole day, end of the whole days,
// to, whether to is the end of the calendar month of the whole days), in
// dimension $7 ({key}: a purchase's key, alias p; {keys}: the keys that
// answer).
const rollupSQL = `
	WITH w AS (SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[], $6::boolean[])
		AS w(wkey, f, fw, tw, t, me)),
	keys AS ({keys}),
	parts AS (
		SELECT coalesce(w.wkey, nullif(d.key, '')) AS key, d.currency, d.decimals, d.rows, d.revenue, d.purchases,
			CASE WHEN w.me THEN d.mlasts ELSE d.lasts END AS customers,
			CASE WHEN w.me THEN d.mpenults ELSE d.penults END AS repeaters
		FROM w JOIN readmodels.purchase_days d ON d.dim = $7 AND d.day >= (w.fw AT TIME ZONE 'UTC')::date AND d.day < (w.tw AT TIME ZONE 'UTC')::date
		UNION ALL
		SELECT coalesce(w.wkey, {key}), p.currency, p.decimals, 1, p.amount_minor - p.refunded_minor,
			(p.amount_minor > p.refunded_minor)::int,
			(p.amount_minor > p.refunded_minor AND (p.next_at IS NULL OR p.next_at >= w.t))::int,
			CASE WHEN p.next_at < w.t AND (p.next2_at IS NULL OR p.next2_at >= w.t) THEN 1 ELSE 0 END
		FROM w CROSS JOIN LATERAL (
			SELECT * FROM readmodels.purchases x WHERE x.occurred_at >= w.f AND x.occurred_at < w.fw
			UNION ALL SELECT * FROM readmodels.purchases x WHERE x.occurred_at >= w.tw AND x.occurred_at < w.t) p
		UNION ALL
		SELECT coalesce(w.wkey, {key}), p.currency, p.decimals, 0, 0, 0,
			(p.prev_at < w.tw)::int,
			CASE WHEN p.prev2_at >= w.fw AND p.prev2_at < w.tw AND p.prev_at < w.t THEN 1 ELSE 0 END
				- CASE WHEN p.prev_at < w.tw AND p.next_at IS NULL THEN 1 ELSE 0 END
		FROM w CROSS JOIN LATERAL (
			-- OFFSET 0: one index range per window, not a join over every purchase
			SELECT * FROM readmodels.purchases x WHERE x.occurred_at >= w.t AND x.prev_at >= w.fw OFFSET 0) p
		WHERE NOT w.me AND w.fw < w.tw),
	agg AS (
		SELECT key, currency, max(decimals) AS decimals, sum(revenue)::bigint AS revenue, sum(purchases)::bigint AS purchases,
			sum(customers)::bigint AS customers, sum(repeaters)::bigint AS repeaters
		FROM parts GROUP BY key, currency HAVING sum(rows) > 0)
	SELECT g.key, a.currency, a.decimals, coalesce(a.revenue, 0), coalesce(a.purchases, 0), coalesce(a.customers, 0), coalesce(a.repeaters, 0)
	FROM (SELECT key FROM keys UNION SELECT key FROM agg) g LEFT JOIN agg a ON a.key IS NOT DISTINCT FROM g.key
	ORDER BY g.key NULLS LAST, a.currency NULLS LAST`

// rollupKey is a purchase's key by dimension (alias p: purchases, which
// carry their customer's keys; NULL for none).
var rollupKey = map[analytics.GroupBy]string{
	analytics.Segment: `nullif(p.segment, '')`,
	analytics.Tier:    `nullif(p.tier, '')`,
	analytics.Region:  `nullif(p.region, '')`,
	analytics.Owner:   `nullif(p.owner, '')`,
}

// Report answers revenue, purchases, average order value and repeat
// purchase rate of [p.From, p.To) by p.GroupBy: the customer's current
// classification or account manager, or the calendar month (UTC) of the
// purchase (every month of the period answering). It reads the day sums
// of the whole UTC days inside the period, the purchases of the partial
// days at its edges, and the purchases at or after its end whose previous
// counted purchases lie in it (none for a period up to now): exactly the
// documented SQL (ReportSQL), in one round trip. See rollup.go.
func (q *Queries) Report(ctx context.Context, p analytics.Params) (Report, error) {
	var (
		wkeys     []*string
		f, fw, tw []time.Time
		t         []time.Time
		me        []bool
		dim, keys string
		key       = `NULL::text`
		now       = q.now()
		addWindow = func(k *string, from, to time.Time, monthEnd bool) {
			first, end := ceilDay(from), floorDay(to)
			// The corrections read the purchases after the window; when
			// that is likely more than the window's own (it ended longer
			// ago than it lasted), test the window's purchases directly.
			if !first.Before(end) || (!monthEnd && now.Sub(to) > to.Sub(from)) {
				first, end = to, to
			}
			wkeys, f, fw, tw, t, me = append(wkeys, k), append(f, from), append(fw, first), append(tw, end), append(t, to), append(me, monthEnd && end.Equal(to))
		}
	)
	switch p.GroupBy {
	case analytics.Month:
		mk, mf, mt := analytics.MonthBounds(p)
		for i := range mk {
			start := time.Date(mf[i].UTC().Year(), mf[i].UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
			addWindow(&mk[i], mf[i], mt[i], mt[i].Equal(start.AddDate(0, 1, 0)))
		}
		dim, keys = "all", `SELECT wkey AS key FROM w`
	case analytics.All:
		all := "all"
		addWindow(&all, p.From, p.To, false)
		dim, keys = "all", `SELECT 'all'::text AS key`
	default:
		k, ok := rollupKey[p.GroupBy]
		if !ok {
			return Report{}, fmt.Errorf("value: unknown grouping %q", p.GroupBy)
		}
		addWindow(nil, p.From, p.To, false)
		dim, key = string(p.GroupBy), k
		keys = `SELECT nullif(key, '') AS key FROM readmodels.value_groups WHERE dim = $7 AND customers > 0`
	}
	sql := strings.NewReplacer("{keys}", keys, "{key}", key).Replace(rollupSQL)
	// The planner's estimates of the lateral reads (ranges bounded by the
	// windows' columns, so a third of the table each) are far above what
	// they read, a few days of purchases: it would scan every purchase and
	// JIT-compile the query, seconds for milliseconds of work. Every part
	// is an index range: no sequential scan, no JIT.
	tx, err := q.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return Report{}, readmodel.Fail("value: report", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT set_config('jit', 'off', true), set_config('enable_seqscan', 'off', true)`); err != nil {
		return Report{}, readmodel.Fail("value: report", err)
	}
	return q.collectReport(ctx, tx, p, sql, wkeys, f, fw, tw, t, me, dim)
}

// floorDay is the UTC midnight at or before t; ceilDay at or after it.
func floorDay(t time.Time) time.Time {
	u := t.UTC()
	return time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC)
}

func ceilDay(t time.Time) time.Time {
	d := floorDay(t)
	if d.Before(t) {
		return d.AddDate(0, 0, 1)
	}
	return d
}
