package analytics

import (
	"strings"
	"time"

	"github.com/rapport-crm/rapport/readmodels/rollups"
)

// WithRollups returns queries that answer from the rollups read model
// (package rollups): satisfaction and churn from day sums, complaint
// handling and contact coverage from narrow facts and the day counts of
// spells and follow-ups, every group from the rollups' copy of the
// customers' current keys; the KPI overview runs its parts at once. The
// figures are those of the documented SQL, which the queries without
// rollups run (TestRollupsAgreeWithTheDocumentedSQL compares the two).
func (q *Queries) WithRollups() *Queries {
	c := *q
	c.rollups = true
	return &c
}

// rollupReads are the projectors each family reads with rollups.
var rollupReads = map[Family][]string{
	Satisfaction: {rollups.Name},
	Churn:        {rollups.Name},
	Complaints:   {rollups.Name},
	Contacts:     {rollups.Name},
	KPIs:         {rollups.Name},
}

// contactFallbackReads are what the contacts family (and the KPIs that
// include it) read when other cadence settings than the rollup's make it
// run the documented SQL, with the groups from the rollups' keys.
var contactFallbackReads = append([]string{rollups.Name}, reads[Contacts]...)

// rollupKeys lists the groups of a customer attribute, as the directory's
// DISTINCT would: every key some customer has.
func rollupKeys(g GroupBy) string {
	return `SELECT nullif(k.key, '') AS key FROM readmodels.rollup_keys k WHERE k.dim = '` + string(g) + `' AND k.customers > 0`
}

// onRollupCustomers makes a grouped query join the rollups' copy of the
// group keys instead of the directory: same columns, same meaning.
func onRollupCustomers(sql string) string {
	return strings.ReplaceAll(sql, "readmodels.customers c ON", "readmodels.rollup_customers c ON")
}

// wholeDays splits [from, to) into the whole UTC days inside it, [a, b),
// and its partial days at the edges, [from, a) and [b, to). Without a
// whole day, a = b = to: the period is all edge.
func wholeDays(from, to time.Time) (a, b time.Time) {
	f, t := from.UTC(), to.UTC()
	a = time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, time.UTC)
	if a.Before(f) {
		a = a.AddDate(0, 0, 1)
	}
	b = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !a.Before(b) {
		return to, to
	}
	return a, b
}

// satisfactionRollup is the satisfaction report from the day sums: the
// whole days of [$1, $2) from readmodels.survey_days (dimension $3, days
// [$4, $5)), its partial days [$1, $6) and [$7, $2) counted from
// readmodels.survey_facts; every group of {keys} answers, as in the
// documented query, and a group whose sums are all zero (its customers
// moved away) is no group.
const satisfactionRollup = `
	WITH keys AS ({keys}),
	edges AS (
		SELECT f.customer_id, f.answered_at, f.csat, f.nps, f.segment, f.tier, f.region, f.account_manager FROM readmodels.survey_facts f
		WHERE f.answered_at >= $1::timestamptz AND f.answered_at < $6::timestamptz
		UNION ALL
		SELECT f.customer_id, f.answered_at, f.csat, f.nps, f.segment, f.tier, f.region, f.account_manager FROM readmodels.survey_facts f
		WHERE f.answered_at >= $7::timestamptz AND f.answered_at < $2::timestamptz),
	agg AS (
		SELECT {daykey} AS key, d.responses, d.csat_n, d.csat_top, d.csat_sum, d.nps_n, d.promoters, d.detractors
		FROM readmodels.survey_days d
		WHERE d.dim = $3::text AND d.day >= $4::date AND d.day < $5::date
		UNION ALL
		SELECT {factkey}, count(*), count(s.csat), count(*) FILTER (WHERE s.csat >= 4), coalesce(sum(s.csat), 0),
			count(s.nps), count(*) FILTER (WHERE s.nps >= 9), count(*) FILTER (WHERE s.nps <= 6)
		FROM edges s
		GROUP BY 1),
	sums AS (
		SELECT key, sum(responses)::bigint AS responses, sum(csat_n)::bigint AS csat_n, sum(csat_top)::bigint AS csat_top,
			sum(csat_sum)::bigint AS csat_sum, sum(nps_n)::bigint AS nps_n, sum(promoters)::bigint AS promoters,
			sum(detractors)::bigint AS detractors
		FROM agg GROUP BY key HAVING sum(responses) > 0)
	SELECT g.key, coalesce(a.responses, 0), coalesce(a.csat_n, 0), coalesce(a.csat_top, 0), coalesce(a.csat_sum, 0),
		coalesce(a.nps_n, 0), coalesce(a.promoters, 0), coalesce(a.detractors, 0)
	FROM (SELECT key FROM keys UNION SELECT key FROM sums) g LEFT JOIN sums a ON a.key IS NOT DISTINCT FROM g.key
	ORDER BY g.key NULLS LAST`

// churnRollup is the churn report from the spells' day counts, at $1
// (the period's start) for the cohort and $2 for its churn, dimension
// $3: the cohort is the spells started by $1 less those ended by $1
// (whole days before $1's day from readmodels.spell_days, $1's own day
// up to $1 from readmodels.spell_facts), its churned those of its spells
// that end in ($1, $2).
const churnRollup = `
	WITH keys AS ({keys}),
	day AS (SELECT date_trunc('day', $1::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS d),
	parts AS (
		SELECT {daykey} AS key, d.starts - d.ends AS active, 0::bigint AS churned FROM readmodels.spell_days d
		WHERE d.dim = $3::text AND d.day < ($1::timestamptz AT TIME ZONE 'UTC')::date
		UNION ALL
		SELECT {factkey}, 1, 0 FROM readmodels.spell_facts s
		WHERE s.active_from >= (SELECT d FROM day) AND s.active_from <= $1::timestamptz
		UNION ALL
		SELECT {factkey}, -1, 0 FROM readmodels.spell_facts s
		WHERE s.active_until >= (SELECT d FROM day) AND s.active_until <= $1::timestamptz
		UNION ALL
		SELECT {factkey}, 0, 1 FROM readmodels.spell_facts s
		WHERE s.active_until > $1::timestamptz AND s.active_until < $2::timestamptz AND s.active_from <= $1::timestamptz),
	agg AS (
		SELECT key, sum(active)::bigint AS active_at_start, sum(churned)::bigint AS churned
		FROM parts GROUP BY key HAVING sum(active) > 0)
	SELECT g.key, coalesce(a.active_at_start, 0), coalesce(a.churned, 0)
	FROM (SELECT key FROM keys UNION SELECT key FROM agg) g LEFT JOIN agg a ON a.key IS NOT DISTINCT FROM g.key
	ORDER BY g.key NULLS LAST`

// churnMonthlyRollup is churnRollup for each month (${m}…: MonthBounds),
// its cohort judged at the month's own start.
const churnMonthlyRollup = `
	WITH keys AS (` + months + `)
	SELECT g.key, x.active, x.churned
	FROM keys g CROSS JOIN LATERAL (
		SELECT date_trunc('day', g.f AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS d) day
	CROSS JOIN LATERAL (
		SELECT (SELECT coalesce(sum(d.starts - d.ends), 0) FROM readmodels.spell_days d
				WHERE d.dim = 'all' AND d.day < (g.f AT TIME ZONE 'UTC')::date)
			+ (SELECT count(*) FROM readmodels.spell_facts s WHERE s.active_from >= day.d AND s.active_from <= g.f)
			- (SELECT count(*) FROM readmodels.spell_facts s WHERE s.active_until >= day.d AND s.active_until <= g.f) AS active,
			(SELECT count(*) FROM readmodels.spell_facts s
				WHERE s.active_until > g.f AND s.active_until < g.t AND s.active_from <= g.f) AS churned) x
	ORDER BY g.key`

// The customers active at any time in [$1, $2) (dimension $5), from the
// spells: those started before $2, less those ended by $1, less the empty
// spells inside the period (they overlap nothing), less the spells whose
// customer already had a spell overlapping the period (prev_until > $1):
// each customer counts once, as the documented count(DISTINCT) does.
const activeInPeriodRollup = `
	active_parts AS (
		SELECT {daykey} AS key, d.starts AS n FROM readmodels.spell_days d
		WHERE d.dim = $5::text AND d.day < ($2::timestamptz AT TIME ZONE 'UTC')::date
		UNION ALL
		SELECT {daykey}, -d.ends FROM readmodels.spell_days d
		WHERE d.dim = $5::text AND d.day < ($1::timestamptz AT TIME ZONE 'UTC')::date
		UNION ALL
		SELECT {factkey}, 1 FROM readmodels.spell_facts s
		WHERE s.active_from >= date_trunc('day', $2::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AND s.active_from < $2::timestamptz
		UNION ALL
		SELECT {factkey}, -1 FROM readmodels.spell_facts s
		WHERE s.active_until >= date_trunc('day', $1::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AND s.active_until <= $1::timestamptz
		UNION ALL
		SELECT {factkey}, -1 FROM readmodels.spell_facts s
		WHERE s.active_until = s.active_from AND s.active_from > $1::timestamptz AND s.active_from < $2::timestamptz
		UNION ALL
		SELECT {factkey}, -1 FROM readmodels.spell_facts s
		WHERE s.prev_until > $1::timestamptz AND s.active_from < $2::timestamptz AND (s.active_until IS NULL OR s.active_until > s.active_from)),
	active AS (SELECT key, sum(n)::bigint AS active FROM active_parts GROUP BY key HAVING sum(n) > 0)`

// factKey is the group key of a fact of alias s: the rollups' facts
// carry their customer's current keys (rollups.factKeys), since a lookup
// of each fact's customer grew with the population — at 1M customers it
// took most of a grouped churn report (262–377 of 414 ms, EXPLAIN ANALYZE)
// and of a grouped satisfaction report late in the day (96 of 108 ms for
// the 24,000 surveys of today's partial day).
func factKey(s string, g GroupBy) string {
	if a, ok := attribute[g]; ok {
		return strings.ReplaceAll(a, "c.", s+".")
	}
	return `'all'::text`
}

// rollupQuery is a family's SQL with rollups, or ok false when the family
// has no rollup of its own at this grouping (it then runs the documented
// SQL, joined to the rollups' group keys when grouped by an attribute).
func (q *Queries) rollupQuery(f Family, p Params) (sql string, args []any, ok bool) {
	dim := string(p.GroupBy)
	keys, daykey, factkey := `SELECT 'all'::text AS key`, `d.key`, `'all'::text`
	switch p.GroupBy {
	case All:
		dim = "all"
	case Month:
		dim, daykey, factkey = "all", `to_char(d.day, 'YYYY-MM')`, `to_char(s.answered_at AT TIME ZONE 'UTC', 'YYYY-MM')`
	default:
		keys, daykey, factkey = rollupKeys(p.GroupBy), `nullif(d.key, '')`, factKey("s", p.GroupBy)
	}
	if f == Churn {
		if p.GroupBy == Month {
			mk, mf, mt := MonthBounds(p)
			return strings.NewReplacer("${m}", "$1", "${m+1}", "$2", "${m+2}", "$3").Replace(churnMonthlyRollup), []any{mk, mf, mt}, true
		}
		r := strings.NewReplacer("{keys}", keys, "{daykey}", daykey, "{factkey}", factkey)
		return r.Replace(churnRollup), []any{p.From, p.To, dim}, true
	}
	if f == Complaints {
		// Read by scanComplaintBlocks, which judges the breaches.
		a, b := wholeDays(p.From, p.To)
		args := []any{p.From, p.To}
		if p.GroupBy == Month {
			mk, mf, mt := MonthBounds(p)
			sql := strings.NewReplacer("${m}", "$7", "${m+1}", "$8", "${m+2}", "$9").Replace(complaintsMonthlyRollup)
			return sql, append(args, a.Format(time.DateOnly), b.Format(time.DateOnly), a, b, mk, mf, mt), true
		}
		bkey, fkey := `b.key`, `'all'::text`
		if p.GroupBy != All {
			bkey, fkey = `nullif(b.key, '')`, strings.ReplaceAll(attribute[p.GroupBy], "c.", "f.")
		}
		r := strings.NewReplacer("{keys}", keys, "{daykey}", daykey, "{factkey}", factkey, "{bkey}", bkey, "{fkey}", fkey)
		return r.Replace(complaintsRollup), append(args, dim, a.Format(time.DateOnly), b.Format(time.DateOnly), a, b), true
	}
	if f == Contacts {
		if !q.contactRollup() {
			// Other cadence settings than the rollup's: the documented SQL.
			return "", nil, false
		}
		sql, args := contactsRollupQuery(p, dim, keys, daykey, factkey)
		return sql, args, true
	}
	if f != Satisfaction {
		return "", nil, false
	}
	a, b := wholeDays(p.From, p.To)
	args = []any{p.From, p.To, dim, a.Format(time.DateOnly), b.Format(time.DateOnly), a, b}
	if p.GroupBy == Month {
		mk, mf, mt := MonthBounds(p)
		args = append(args, mk, mf, mt)
		keys = strings.NewReplacer("${m}", "$8", "${m+1}", "$9", "${m+2}", "$10").Replace(months)
	}
	r := strings.NewReplacer("{keys}", keys, "{daykey}", daykey, "{factkey}", factkey)
	return r.Replace(satisfactionRollup), args, true
}
