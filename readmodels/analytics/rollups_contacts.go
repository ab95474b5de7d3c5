package analytics

import "strings"

// contactsRollup is the contact report at $1 (the period's end),
// dimension $2: the customers active at $1 are the spells started before
// it less those ended before it (day counts, $1's own day from the
// facts); the contacted are the distinct customers of
// readmodels.contact_facts in the 30 days before $1 whose spell holds $1;
// the overdue follow-ups are those due before $1 less those whose
// greatest(due_at, done_at) is before $1.
const contactsRollup = `
	WITH keys AS ({keys}),
	day AS (SELECT date_trunc('day', $1::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS d),
	recent AS (
		SELECT DISTINCT ct.customer_id FROM readmodels.contact_facts ct
		WHERE ct.occurred_at >= $1::timestamptz - interval '720 hours' AND ct.occurred_at < $1::timestamptz),
	parts AS (
		SELECT {daykey} AS key, d.starts - d.ends AS active, 0::bigint AS contacted, 0::bigint AS overdue
		FROM readmodels.spell_days d
		WHERE d.dim = $2::text AND d.day < ($1::timestamptz AT TIME ZONE 'UTC')::date
		UNION ALL
		SELECT {factkey}, 1, 0, 0 FROM readmodels.spell_facts s {join}
		WHERE s.active_from >= (SELECT d FROM day) AND s.active_from < $1::timestamptz
		UNION ALL
		SELECT {factkey}, -1, 0, 0 FROM readmodels.spell_facts s {join}
		WHERE s.active_until >= (SELECT d FROM day) AND s.active_until < $1::timestamptz
		UNION ALL
		SELECT {factkey}, 0, 1, 0 FROM recent r JOIN readmodels.spell_facts s ON s.customer_id = r.customer_id {join}
		WHERE s.active_from < $1::timestamptz AND (s.active_until IS NULL OR s.active_until >= $1::timestamptz)
		UNION ALL
		SELECT {daykey}, 0, 0, d.due - d.settled FROM readmodels.followup_days d
		WHERE d.dim = $2::text AND d.day < ($1::timestamptz AT TIME ZONE 'UTC')::date
		UNION ALL
		SELECT {factkey}, 0, 0, 1 FROM readmodels.followup_facts s {join}
		WHERE s.due_at >= (SELECT d FROM day) AND s.due_at < $1::timestamptz
		UNION ALL
		SELECT {factkey}, 0, 0, -1 FROM readmodels.followup_facts s {join}
		WHERE s.done_at IS NOT NULL AND greatest(s.due_at, s.done_at) >= (SELECT d FROM day)
			AND greatest(s.due_at, s.done_at) < $1::timestamptz),
	agg AS (
		SELECT key, sum(active)::bigint AS active, sum(contacted)::bigint AS contacted, sum(overdue)::bigint AS overdue
		FROM parts GROUP BY key HAVING sum(active) > 0 OR sum(overdue) > 0)
	SELECT g.key, coalesce(a.active, 0), coalesce(a.contacted, 0), coalesce(a.overdue, 0)
	FROM (SELECT key FROM keys UNION SELECT key FROM agg) g LEFT JOIN agg a ON a.key IS NOT DISTINCT FROM g.key
	ORDER BY g.key NULLS LAST`

// contactsMonthlyRollup is contactsRollup for each month (${m}…), judged
// at the month's own end.
const contactsMonthlyRollup = `
	WITH keys AS (` + months + `)
	SELECT g.key, x.active, x.contacted, x.overdue
	FROM keys g CROSS JOIN LATERAL (
		SELECT date_trunc('day', g.t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS d, (g.t AT TIME ZONE 'UTC')::date AS day) b
	CROSS JOIN LATERAL (SELECT
		(SELECT coalesce(sum(d.starts - d.ends), 0) FROM readmodels.spell_days d WHERE d.dim = 'all' AND d.day < b.day)
			+ (SELECT count(*) FROM readmodels.spell_facts s WHERE s.active_from >= b.d AND s.active_from < g.t)
			- (SELECT count(*) FROM readmodels.spell_facts s WHERE s.active_until >= b.d AND s.active_until < g.t) AS active,
		(SELECT count(*) FROM (SELECT DISTINCT ct.customer_id FROM readmodels.contact_facts ct
				WHERE ct.occurred_at >= g.t - interval '720 hours' AND ct.occurred_at < g.t) r
			JOIN readmodels.spell_facts s ON s.customer_id = r.customer_id
			WHERE s.active_from < g.t AND (s.active_until IS NULL OR s.active_until >= g.t)) AS contacted,
		(SELECT coalesce(sum(d.due - d.settled), 0) FROM readmodels.followup_days d WHERE d.dim = 'all' AND d.day < b.day)
			+ (SELECT count(*) FROM readmodels.followup_facts s WHERE s.due_at >= b.d AND s.due_at < g.t)
			- (SELECT count(*) FROM readmodels.followup_facts s WHERE s.done_at IS NOT NULL
				AND greatest(s.due_at, s.done_at) >= b.d AND greatest(s.due_at, s.done_at) < g.t) AS overdue) x
	ORDER BY g.key`

// contactsRollupQuery is the contact report's SQL with rollups.
func contactsRollupQuery(p Params, keys, daykey, factkey, join, dim string) (string, []any) {
	if p.GroupBy == Month {
		mk, mf, mt := MonthBounds(p)
		return strings.NewReplacer("${m}", "$1", "${m+1}", "$2", "${m+2}", "$3").Replace(contactsMonthlyRollup), []any{mk, mf, mt}
	}
	r := strings.NewReplacer("{keys}", keys, "{daykey}", daykey, "{factkey}", factkey, "{join}", join)
	return r.Replace(contactsRollup), []any{p.To, dim}
}
