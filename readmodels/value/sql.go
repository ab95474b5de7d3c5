package value

import (
	"fmt"
	"strings"
)

// functionSQL creates readmodels.customer_values(as_of): every customer of
// the read model with recency, frequency and monetary value judged at
// as_of, and, for the active ones with a purchase in the 365 days up to
// as_of (the population), r, f and m quintile scores over that population
// and the RFM segment. It is the only implementation: the customer answer,
// the list's rfm= filter and analysts all call it.
//
// It aggregates every purchase and ranks the whole population on each
// call, so its cost grows with the population (readmodels/value
// BenchmarkValue), in exchange for never being stale.
//
// A score is ⌈5 × (worse + ties ÷ 2) ÷ population⌉, where worse counts the
// customers strictly worse and ties those equal (itself included): the
// quintile of its mid-rank percentile, so equals share a score and a lone
// customer is in the middle (3), not at an end; monetary is ranked within the customer's currency, since
// amounts in different currencies do not compare. A purchase refunded in
// full counts for neither recency nor frequency; monetary is net of
// refunds.
var functionSQL = strings.ReplaceAll(functionTemplate, "{segment_cases}", segmentCases())

const functionTemplate = `
-- The quintile score of a customer ranked rank (1 = the worst, ties
-- sharing the rank) among n, with ties customers of its value: the
-- ceiling of 5 × its mid-rank percentile, (rank - 1 + ties / 2) / n.
CREATE OR REPLACE FUNCTION readmodels.value_score(rank bigint, ties bigint, n bigint) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT ((5 * (2 * (rank - 1) + ties) + 2 * n - 1) / (2 * n))::integer $$;

CREATE OR REPLACE FUNCTION readmodels.customer_values(as_of timestamptz DEFAULT now())
RETURNS TABLE (customer_id uuid, currency text, decimals smallint, active boolean, recency_days integer,
	frequency integer, monetary bigint, r integer, f integer, m integer, rfm_segment text)
LANGUAGE sql STABLE
-- The population's aggregate and its three rankings sort every customer:
-- with the default 4 MB they spill to disk (three times slower at 100,000
-- customers).
SET work_mem = '64MB'
AS $fn$
	WITH agg AS (
		-- Only the window's purchases: the last counted purchase is kept
		-- on the customer's row.
		SELECT p.customer_id,
			count(*) FILTER (WHERE p.amount_minor > p.refunded_minor) AS frequency,
			sum(p.amount_minor - p.refunded_minor) AS monetary
		FROM readmodels.purchases p
		WHERE p.occurred_at > as_of - interval '365 days' AND p.occurred_at <= as_of
		GROUP BY p.customer_id),
	base AS (
		SELECT v.customer_id, v.currency, v.decimals, NOT v.churned AS active,
			floor(extract(epoch FROM as_of - CASE WHEN v.last_counted_at <= as_of THEN v.last_counted_at ELSE (
				-- as_of before the customer's last purchase (analysts' history)
				SELECT max(p.occurred_at) FROM readmodels.purchases p
				WHERE p.customer_id = v.customer_id AND p.amount_minor > p.refunded_minor AND p.occurred_at <= as_of) END) / 86400)::integer AS recency_days,
			coalesce(a.frequency, 0)::integer AS frequency, coalesce(a.monetary, 0)::bigint AS monetary
		FROM readmodels.value_customers v LEFT JOIN agg a ON a.customer_id = v.customer_id),
	scored AS (
		-- rank() - 1 customers are strictly worse; cume_dist() × n are
		-- worse or equal (one sort per score serves both).
		SELECT b.customer_id,
			readmodels.value_score(rank() OVER wr, round(cume_dist() OVER wr * count(*) OVER ())::bigint - rank() OVER wr + 1, count(*) OVER ()) AS r,
			readmodels.value_score(rank() OVER wf, round(cume_dist() OVER wf * count(*) OVER ())::bigint - rank() OVER wf + 1, count(*) OVER ()) AS f,
			readmodels.value_score(rank() OVER wm, round(cume_dist() OVER wm * count(*) OVER wc)::bigint - rank() OVER wm + 1, count(*) OVER wc) AS m
		FROM base b
		WHERE b.active AND b.frequency > 0
		WINDOW wr AS (ORDER BY b.recency_days DESC), wf AS (ORDER BY b.frequency),
			wm AS (PARTITION BY b.currency ORDER BY b.monetary), wc AS (PARTITION BY b.currency))
	SELECT b.customer_id, b.currency, b.decimals, b.active, b.recency_days, b.frequency, b.monetary, s.r, s.f, s.m,
		CASE WHEN s.r IS NULL THEN NULL {segment_cases} END
	FROM base b LEFT JOIN scored s ON s.customer_id = b.customer_id
$fn$;`

// Segment names an RFM segment.
const (
	SegmentChampions   = "champions"
	SegmentLoyal       = "loyal"
	SegmentPotential   = "potential"
	SegmentNew         = "new"
	SegmentAtRisk      = "at_risk"
	SegmentHibernating = "hibernating"
	SegmentLost        = "lost"
)

// Segments lists the RFM segments.
func Segments() []string {
	return []string{SegmentChampions, SegmentLoyal, SegmentPotential, SegmentNew, SegmentAtRisk, SegmentHibernating, SegmentLost}
}

// rule is one line of the RFM mapping: the segment of the scores within
// its bounds (inclusive).
type rule struct {
	segment          string
	rMin, rMax       int
	fMin, fMax, mMin int
}

// mapping is the documented RFM mapping, first match wins. SegmentOf and
// the SQL function are both made from it.
var mapping = []rule{
	{SegmentChampions, 4, 5, 4, 5, 4},
	{SegmentLoyal, 3, 5, 3, 5, 1},
	{SegmentNew, 4, 5, 1, 1, 1},
	{SegmentPotential, 3, 5, 1, 5, 1},
	{SegmentAtRisk, 1, 2, 3, 5, 1},
	{SegmentHibernating, 2, 2, 1, 2, 1},
	{SegmentLost, 1, 1, 1, 2, 1},
}

func (r rule) matches(rs, fs, ms int) bool {
	return rs >= r.rMin && rs <= r.rMax && fs >= r.fMin && fs <= r.fMax && ms >= r.mMin
}

func segmentCases() string {
	var b strings.Builder
	for _, r := range mapping {
		fmt.Fprintf(&b, " WHEN s.r BETWEEN %d AND %d AND s.f BETWEEN %d AND %d AND s.m >= %d THEN '%s'", r.rMin, r.rMax, r.fMin, r.fMax, r.mMin, r.segment)
	}
	return b.String()
}

// SegmentOf is the documented mapping of r, f and m (1–5) to a segment,
// first match wins:
//
//	champions    r ≥ 4, f ≥ 4, m ≥ 4
//	loyal        r ≥ 3, f ≥ 3
//	new          r ≥ 4, f = 1
//	potential    r ≥ 3
//	at_risk      r ≤ 2, f ≥ 3
//	hibernating  r = 2, f ≤ 2
//	lost         r = 1, f ≤ 2
func SegmentOf(r, f, m int) string {
	for _, rule := range mapping {
		if rule.matches(r, f, m) {
			return rule.segment
		}
	}
	return ""
}
