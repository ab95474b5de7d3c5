package analytics

import (
	"slices"
	"strings"

	"github.com/rapport-crm/rapport/readmodels/rollups"
)

// contactRollup says whether the contacts family can answer from the
// rollups: their freshness intervals and bursts are built with
// PRODUCT.md's cadence and max_outbound_per_week, so with other settings
// the documented SQL answers (a setting change needs no rebuild; it only
// costs the fast path).
func (q *Queries) contactRollup() bool {
	return slices.Equal(q.cadence, rollups.RollupCadence()) && q.maxOut == rollups.RollupMaxOutbound
}

// contactsRollup is the contacts report from the rollups, judged at $1
// (the period's end) and over-contact counted in [$2, $1), dimension $3.
// Each figure at T is the intervals started before T less those ended
// before T: whole days before T's day from readmodels.spell_days (active)
// and readmodels.contact_days (covered, not due, overdue), T's own day up
// to T from the intervals (spell_facts, contact_spans, followup_facts).
// Over-contact counts the customers with a burst inside the period.
const contactsRollup = `
	WITH keys AS ({keys}),
	day AS (SELECT date_trunc('day', $1::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS d),
	parts AS (
		SELECT {daykey} AS key, d.starts - d.ends AS active, 0::bigint AS contacted, 0::bigint AS not_due, 0::bigint AS overdue
		FROM readmodels.spell_days d
		WHERE d.dim = $3::text AND d.day < ($1::timestamptz AT TIME ZONE 'UTC')::date
		UNION ALL
		SELECT {daykey}, 0, d.cover_starts - d.cover_ends, d.fresh_starts - d.fresh_ends, d.due - d.settled
		FROM readmodels.contact_days d
		WHERE d.dim = $3::text AND d.day < ($1::timestamptz AT TIME ZONE 'UTC')::date
		UNION ALL
		SELECT {factkey}, 1, 0, 0, 0 FROM readmodels.spell_facts s
		WHERE s.active_from >= (SELECT d FROM day) AND s.active_from < $1::timestamptz
		UNION ALL
		SELECT {factkey}, -1, 0, 0, 0 FROM readmodels.spell_facts s
		WHERE s.active_until >= (SELECT d FROM day) AND s.active_until < $1::timestamptz
		UNION ALL
		SELECT {factkey}, 0, (s.kind = 0)::int, (s.kind = 1)::int, 0 FROM readmodels.contact_spans s
		WHERE s.start_at >= (SELECT d FROM day) AND s.start_at < $1::timestamptz
		UNION ALL
		SELECT {factkey}, 0, -(s.kind = 0)::int, -(s.kind = 1)::int, 0 FROM readmodels.contact_spans s
		WHERE s.end_at >= (SELECT d FROM day) AND s.end_at < $1::timestamptz
		UNION ALL
		SELECT {factkey}, 0, 0, 0, 1 FROM readmodels.followup_facts s
		WHERE s.due_at >= (SELECT d FROM day) AND s.due_at < $1::timestamptz
		UNION ALL
		SELECT {factkey}, 0, 0, 0, -1 FROM readmodels.followup_facts s
		WHERE s.done_at IS NOT NULL AND greatest(s.due_at, s.done_at) >= (SELECT d FROM day) AND greatest(s.due_at, s.done_at) < $1::timestamptz),
	agg AS (
		SELECT key, sum(active)::bigint AS active, sum(contacted)::bigint AS contacted, sum(not_due)::bigint AS not_due,
			sum(overdue)::bigint AS overdue
		FROM parts GROUP BY key),
	over AS (
		SELECT {burstkey} AS key, count(DISTINCT b.customer_id) AS over
		FROM readmodels.contact_bursts b
		WHERE b.start_at >= $2::timestamptz AND b.end_at < $1::timestamptz
		GROUP BY 1)
	SELECT g.key, coalesce(a.active, 0), coalesce(a.contacted, 0), coalesce(a.overdue, 0), coalesce(a.not_due, 0), coalesce(o.over, 0)
	FROM (SELECT key FROM keys UNION SELECT key FROM agg WHERE active <> 0 OR overdue <> 0 UNION SELECT key FROM over) g
	LEFT JOIN agg a ON a.key IS NOT DISTINCT FROM g.key
	LEFT JOIN over o ON o.key IS NOT DISTINCT FROM g.key
	ORDER BY g.key NULLS LAST`

// contactsMonthlyRollup is contactsRollup for each month (${m}…:
// MonthBounds), judged at the month's own end, over-contact counted in
// the month.
const contactsMonthlyRollup = `
	WITH keys AS (` + months + `)
	SELECT g.key, (sp.days + sf.started - sf.ended)::bigint, (cd.covered + cs.covered)::bigint, (cd.overdue + fu.overdue)::bigint,
		(cd.not_due + cs.not_due)::bigint, ov.over
	FROM keys g
	CROSS JOIN LATERAL (SELECT date_trunc('day', g.t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS d, (g.t AT TIME ZONE 'UTC')::date AS day) day
	CROSS JOIN LATERAL (SELECT coalesce(sum(d.starts - d.ends), 0) AS days FROM readmodels.spell_days d
		WHERE d.dim = 'all' AND d.day < day.day) sp
	CROSS JOIN LATERAL (SELECT
		(SELECT count(*) FROM readmodels.spell_facts s WHERE s.active_from >= day.d AND s.active_from < g.t) AS started,
		(SELECT count(*) FROM readmodels.spell_facts s WHERE s.active_until >= day.d AND s.active_until < g.t) AS ended) sf
	CROSS JOIN LATERAL (SELECT coalesce(sum(d.cover_starts - d.cover_ends), 0) AS covered,
			coalesce(sum(d.fresh_starts - d.fresh_ends), 0) AS not_due, coalesce(sum(d.due - d.settled), 0) AS overdue
		FROM readmodels.contact_days d WHERE d.dim = 'all' AND d.day < day.day) cd
	CROSS JOIN LATERAL (SELECT
		(SELECT count(*) FILTER (WHERE s.kind = 0) FROM readmodels.contact_spans s WHERE s.start_at >= day.d AND s.start_at < g.t)
		- (SELECT count(*) FILTER (WHERE s.kind = 0) FROM readmodels.contact_spans s WHERE s.end_at >= day.d AND s.end_at < g.t) AS covered,
		(SELECT count(*) FILTER (WHERE s.kind = 1) FROM readmodels.contact_spans s WHERE s.start_at >= day.d AND s.start_at < g.t)
		- (SELECT count(*) FILTER (WHERE s.kind = 1) FROM readmodels.contact_spans s WHERE s.end_at >= day.d AND s.end_at < g.t) AS not_due) cs
	CROSS JOIN LATERAL (SELECT
		(SELECT count(*) FROM readmodels.followup_facts s WHERE s.due_at >= day.d AND s.due_at < g.t)
		- (SELECT count(*) FROM readmodels.followup_facts s WHERE s.done_at IS NOT NULL
			AND greatest(s.due_at, s.done_at) >= day.d AND greatest(s.due_at, s.done_at) < g.t) AS overdue) fu
	CROSS JOIN LATERAL (SELECT count(DISTINCT b.customer_id) AS over FROM readmodels.contact_bursts b
		WHERE b.start_at >= g.f AND b.end_at < g.t) ov
	ORDER BY g.key`

// contactsRollupQuery is the contacts report's rollup SQL and arguments
// at p (keys, daykey and factkey as rollupQuery makes them).
func contactsRollupQuery(p Params, dim, keys, daykey, factkey string) (string, []any) {
	if p.GroupBy == Month {
		mk, mf, mt := MonthBounds(p)
		return strings.NewReplacer("${m}", "$1", "${m+1}", "$2", "${m+2}", "$3").Replace(contactsMonthlyRollup), []any{mk, mf, mt}
	}
	burstkey := `'all'::text`
	if p.GroupBy != All {
		burstkey = factKey("b", p.GroupBy)
	}
	r := strings.NewReplacer("{keys}", keys, "{daykey}", daykey, "{factkey}", factkey,
		"{burstkey}", burstkey)
	return r.Replace(contactsRollup), []any{p.To, p.From, dim}
}
