package value

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/customers"
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

// ReportReads names the projectors the value figures read: this one, and
// the directory for the groups' classification and account manager.
func (*Queries) ReportReads() []string { return []string{Name, customers.Name} }

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

// Report answers revenue, purchases, average order value and repeat
// purchase rate of [p.From, p.To) by p.GroupBy: the customer's current
// classification or account manager, or the calendar month (UTC) of the
// purchase (every month of the period answering). One round trip.
func (q *Queries) Report(ctx context.Context, p analytics.Params) (Report, error) {
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
	rows, err := q.pool.Query(ctx, sql, args...)
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
