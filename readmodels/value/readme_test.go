package value_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/value"
)

// readmeBlocks returns the "-- value:" SQL blocks of readmodels/README.md
// (fenced pgsql, so that the analytics test, which runs the sql blocks,
// leaves them to this one), with now() made the instant judged ($1).
func readmeBlocks(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, block := range strings.Split(string(raw), "```pgsql\n")[1:] {
		sql, _, _ := strings.Cut(block, "```")
		first, _, _ := strings.Cut(sql, "\n")
		if name, ok := strings.CutPrefix(first, "-- value: "); ok {
			out[name] = strings.ReplaceAll(sql, "now()", "$1::timestamptz")
		}
	}
	return out
}

// checkReadmeSQL runs the README's value SQL and compares it with what
// the queries answer at now.
func checkReadmeSQL(t *testing.T, pool *pgxpool.Pool, q *value.Queries, all []*xCustomer, now time.Time) {
	t.Helper()
	ctx := context.Background()
	blocks := readmeBlocks(t)
	if len(blocks) != 3 {
		t.Fatalf("README: %d value blocks, want 3", len(blocks))
	}
	rows, err := pool.Query(ctx, blocks["rfm"], now)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var (
			id       uuid.UUID
			recency  *int32
			freq     int64
			monetary int64
			r, f, m  *int64
			segment  *string
		)
		if err := rows.Scan(&id, &recency, &freq, &monetary, &r, &f, &m, &segment); err != nil {
			t.Fatal(err)
		}
		got, err := q.Value(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		readme := fmt.Sprint(deref(recency), freq, monetary, deref(r), deref(f), deref(m), deref(segment))
		api := fmt.Sprint(deref(got.RecencyDays), got.Frequency, got.MonetaryMinor, deref(got.R), deref(got.F), deref(got.M), deref(got.Segment))
		if readme != api {
			t.Fatalf("README rfm for %s: %s, the queries say %s", id, readme, api)
		}
		n++
	}
	if rows.Err() != nil || n == 0 {
		t.Fatalf("README rfm: %d rows, %v", n, rows.Err())
	}

	rep, err := q.Report(ctx, analytics.Params{From: now.Add(-90 * 24 * time.Hour), To: now, GroupBy: analytics.Segment})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, g := range rep.Groups {
		if g.Currency != "" {
			rate := "<nil>"
			if r := g.RepeatPurchaseRate(); r != nil {
				rate = fmt.Sprintf("%.6f", *r)
			}
			want[*g.Key+" "+g.Currency] = fmt.Sprint(g.RevenueMinor, g.Purchases, *g.AverageOrderValue(), g.Customers, g.RepeatCustomers, rate)
		}
	}
	rows, err = pool.Query(ctx, blocks["figures by segment, last 90 days"], now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var (
			segment, currency                        string
			revenue, purchases, customers, repeaters int64
			aov                                      *float64
			rate                                     *float64
		)
		if err := rows.Scan(&segment, &currency, &revenue, &purchases, &aov, &customers, &repeaters, &rate); err != nil {
			t.Fatal(err)
		}
		decimals := 2
		if currency == "JPY" {
			decimals = 0
		}
		aovS, rateS := "<nil>", "<nil>"
		if aov != nil {
			aovS = domain.FormatAmount(int64(*aov), decimals)
		}
		if rate != nil {
			rateS = fmt.Sprintf("%.6f", *rate)
		}
		got[segment+" "+currency] = fmt.Sprint(revenue, purchases, aovS, customers, repeaters, rateS)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) == 0 {
		t.Fatalf("README figures by segment:\n%v\nthe queries say\n%v", got, want)
	}

	rows, err = pool.Query(ctx, blocks["loyalty balance and points expiring in 30 days"], now)
	if err != nil {
		t.Fatal(err)
	}
	n = 0
	for rows.Next() {
		var (
			id                         uuid.UUID
			balance, expiring, expired int64
		)
		if err := rows.Scan(&id, &balance, &expiring, &expired); err != nil {
			t.Fatal(err)
		}
		l, err := q.Loyalty(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if l.Balance != balance || l.Expiring != expiring {
			t.Fatalf("README loyalty of %s: %d %d, the queries say %d %d", id, balance, expiring, l.Balance, l.Expiring)
		}
		n++
	}
	if rows.Err() != nil || n == 0 {
		t.Fatalf("README loyalty: %d rows, %v", n, rows.Err())
	}
}
