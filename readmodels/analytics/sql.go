package analytics

import (
	"strings"
	"time"

	"github.com/rapport-crm/rapport/readmodels/cadence"
	"github.com/rapport-crm/rapport/readmodels/sla"
)

// attribute is the group key of a customer (alias c: readmodels.customers).
var attribute = map[GroupBy]string{
	Segment: `nullif(c.segment, '')`,
	Tier:    `nullif(c.tier, '')`,
	Region:  `nullif(c.region, '')`,
	Owner:   `c.account_manager`,
}

// months are the calendar months (UTC) the period touches, each with its
// bounds clipped to the period, [f, t): arrays computed by MonthBounds and
// passed as the query's last three parameters (${m} is the first one's
// number). Arrays rather than generate_series so that the planner knows
// there are few.
const months = `SELECT * FROM unnest(${m}::text[], ${m+1}::timestamptz[], ${m+2}::timestamptz[]) AS m(key, f, t)`

// MonthBounds are the calendar months (UTC) the period touches: their keys
// (YYYY-MM) and bounds clipped to the period, [from, to).
func MonthBounds(p Params) (keys []string, from, to []time.Time) {
	f := p.From.UTC()
	for m := time.Date(f.Year(), f.Month(), 1, 0, 0, 0, 0, time.UTC); m.Before(p.To); m = m.AddDate(0, 1, 0) {
		next := m.AddDate(0, 1, 0)
		keys = append(keys, m.Format("2006-01"))
		from = append(from, maxTime(m, p.From))
		to = append(to, minTime(next, p.To))
	}
	return keys, from, to
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// The breach of each target of a complaint's last opening (alias x),
// judged at $4 against the targets $3: the step (acknowledgement, else a
// resolution without one; the resolution) came after the target, or has
// not come and the target is past. The SQL is package sla's, which the
// work queue uses too.
var (
	firstResponseBreach = sla.FirstResponseBreachSQL("x", "$3", "$4")
	resolutionBreach    = sla.ResolutionBreachSQL("x", "$3", "$4")
)

// filedAgg aggregates the complaints filed in [$1, $2) (alias k, with
// fr_breach and res_breach), by {key}. The first response is the one the
// breach judges: the acknowledgement, else a resolution without one.
var filedAgg = `
	SELECT {key} AS key, count(*) AS filed,
		count(*) FILTER (WHERE k.status = 'resolved') AS resolved,
		percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM coalesce(k.acknowledged_at, k.resolved_at) - k.opened_at)::float8)
			FILTER (WHERE coalesce(k.acknowledged_at, k.resolved_at) IS NOT NULL) AS fr_median,
		percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM k.resolved_at - k.opened_at)::float8)
			FILTER (WHERE k.status = 'resolved') AS res_median,
		count(*) FILTER (WHERE k.fr_breach OR k.res_breach) AS breaches,
		count(*) FILTER (WHERE k.fr_breach) AS fr_breaches,
		count(*) FILTER (WHERE k.res_breach) AS res_breaches
	FROM (SELECT x.*, ` + firstResponseBreach + ` AS fr_breach, ` + resolutionBreach + ` AS res_breach
		FROM readmodels.complaints x WHERE x.filed_at >= $1::timestamptz AND x.filed_at < $2::timestamptz) k
	{join}
	GROUP BY 1`

// grouped are the queries grouped by a customer attribute ({key} over
// alias c) or not at all ({key} 'all'): every group of {keys} answers,
// with zero counts when it has no data.
var grouped = map[Family]string{
	Satisfaction: `
		WITH keys AS ({keys}),
		agg AS (
			SELECT {key} AS key, count(*) AS responses, count(s.csat) AS csat_n, count(*) FILTER (WHERE s.csat >= 4) AS csat_top,
				coalesce(sum(s.csat), 0) AS csat_sum, count(s.nps) AS nps_n,
				count(*) FILTER (WHERE s.nps >= 9) AS promoters, count(*) FILTER (WHERE s.nps <= 6) AS detractors
			FROM readmodels.surveys s LEFT JOIN readmodels.customers c ON c.id = s.customer_id
			WHERE s.answered_at >= $1::timestamptz AND s.answered_at < $2::timestamptz
			GROUP BY 1)
		SELECT g.key, coalesce(a.responses, 0), coalesce(a.csat_n, 0), coalesce(a.csat_top, 0), coalesce(a.csat_sum, 0),
			coalesce(a.nps_n, 0), coalesce(a.promoters, 0), coalesce(a.detractors, 0)
		FROM (SELECT key FROM keys UNION SELECT key FROM agg) g LEFT JOIN agg a ON a.key IS NOT DISTINCT FROM g.key
		ORDER BY g.key NULLS LAST`,
	Churn: `
		WITH keys AS ({keys}),
		agg AS (
			SELECT {key} AS key, count(*) AS active_at_start, count(*) FILTER (WHERE l.active_until < $2::timestamptz) AS churned
			FROM readmodels.customer_lifecycle l LEFT JOIN readmodels.customers c ON c.id = l.customer_id
			WHERE l.active_from <= $1::timestamptz AND (l.active_until IS NULL OR l.active_until > $1::timestamptz)
			GROUP BY 1)
		SELECT g.key, coalesce(a.active_at_start, 0), coalesce(a.churned, 0)
		FROM (SELECT key FROM keys UNION SELECT key FROM agg) g LEFT JOIN agg a ON a.key IS NOT DISTINCT FROM g.key
		ORDER BY g.key NULLS LAST`,
	Complaints: `
		WITH keys AS ({keys}),
		filed AS (` + strings.Replace(filedAgg, "{join}", `LEFT JOIN readmodels.customers c ON c.id = k.customer_id`, 1) + `),
		active AS (
			SELECT {key} AS key, count(DISTINCT l.customer_id) AS active
			FROM readmodels.customer_lifecycle l LEFT JOIN readmodels.customers c ON c.id = l.customer_id
			WHERE l.active_from < $2::timestamptz AND (l.active_until IS NULL OR l.active_until > greatest(l.active_from, $1::timestamptz))
			GROUP BY 1)
		SELECT g.key, coalesce(f.filed, 0), coalesce(f.resolved, 0), f.fr_median, f.res_median,
			coalesce(f.breaches, 0), coalesce(f.fr_breaches, 0), coalesce(f.res_breaches, 0), coalesce(a.active, 0)
		FROM (SELECT key FROM keys UNION SELECT key FROM filed UNION SELECT key FROM active) g
		LEFT JOIN filed f ON f.key IS NOT DISTINCT FROM g.key
		LEFT JOIN active a ON a.key IS NOT DISTINCT FROM g.key
		ORDER BY g.key NULLS LAST`,
	Contacts: `
		WITH keys AS ({keys}),
		coverage AS (
			SELECT {key} AS key, count(*) AS active,
				count(*) FILTER (WHERE EXISTS (SELECT 1 FROM readmodels.contacts ct WHERE ct.customer_id = l.customer_id
					AND ct.occurred_at >= $1::timestamptz - interval '720 hours' AND ct.occurred_at < $1::timestamptz)) AS contacted,
				count(*) FILTER (WHERE ` + notDueAt("l", "$1::timestamptz", "$3::integer[]") + `) AS not_due
			FROM readmodels.customer_lifecycle l LEFT JOIN readmodels.customers c ON c.id = l.customer_id
			WHERE l.active_from < $1::timestamptz AND (l.active_until IS NULL OR l.active_until >= $1::timestamptz)
			GROUP BY 1),
		overdue AS (
			SELECT {key} AS key, count(*) AS overdue
			FROM readmodels.follow_ups fu LEFT JOIN readmodels.customers c ON c.id = fu.customer_id
			WHERE fu.due_at < $1::timestamptz AND (fu.done_at IS NULL OR fu.done_at >= $1::timestamptz)
			GROUP BY 1),
		over AS (
			SELECT {key} AS key, count(*) AS over
			FROM (` + cadence.OverContactedInSQL("$2::timestamptz", "$1::timestamptz", "$4::integer") + `) o
			LEFT JOIN readmodels.customers c ON c.id = o.customer_id
			GROUP BY 1)
		SELECT g.key, coalesce(v.active, 0), coalesce(v.contacted, 0), coalesce(o.overdue, 0), coalesce(v.not_due, 0), coalesce(x.over, 0)
		FROM (SELECT key FROM keys UNION SELECT key FROM coverage UNION SELECT key FROM overdue UNION SELECT key FROM over) g
		LEFT JOIN coverage v ON v.key IS NOT DISTINCT FROM g.key
		LEFT JOIN overdue o ON o.key IS NOT DISTINCT FROM g.key
		LEFT JOIN over x ON x.key IS NOT DISTINCT FROM g.key
		ORDER BY g.key NULLS LAST`,
}

// monthly are the queries grouped by calendar month: facts by the month
// they happened in, instants at the month's own bounds (clipped to the
// period).
var monthly = map[Family]string{
	Satisfaction: `
		WITH keys AS (` + months + `),
		agg AS (
			SELECT to_char(s.answered_at AT TIME ZONE 'UTC', 'YYYY-MM') AS key, count(*) AS responses, count(s.csat) AS csat_n,
				count(*) FILTER (WHERE s.csat >= 4) AS csat_top, coalesce(sum(s.csat), 0) AS csat_sum, count(s.nps) AS nps_n,
				count(*) FILTER (WHERE s.nps >= 9) AS promoters, count(*) FILTER (WHERE s.nps <= 6) AS detractors
			FROM readmodels.surveys s
			WHERE s.answered_at >= $1::timestamptz AND s.answered_at < $2::timestamptz
			GROUP BY 1)
		SELECT g.key, coalesce(a.responses, 0), coalesce(a.csat_n, 0), coalesce(a.csat_top, 0), coalesce(a.csat_sum, 0),
			coalesce(a.nps_n, 0), coalesce(a.promoters, 0), coalesce(a.detractors, 0)
		FROM keys g LEFT JOIN agg a ON a.key = g.key
		ORDER BY g.key`,
	Churn: `
		WITH keys AS (` + months + `)
		SELECT g.key, x.active_at_start, x.churned
		FROM keys g CROSS JOIN LATERAL (
			SELECT count(*) AS active_at_start, count(*) FILTER (WHERE l.active_until < g.t) AS churned
			FROM readmodels.customer_lifecycle l
			WHERE l.active_from <= g.f AND (l.active_until IS NULL OR l.active_until > g.f)) x
		ORDER BY g.key`,
	Complaints: `
		WITH keys AS (` + months + `),
		filed AS (` + strings.NewReplacer("{key}", `to_char(k.filed_at AT TIME ZONE 'UTC', 'YYYY-MM')`, "{join}", "").Replace(filedAgg) + `)
		SELECT g.key, coalesce(f.filed, 0), coalesce(f.resolved, 0), f.fr_median, f.res_median,
			coalesce(f.breaches, 0), coalesce(f.fr_breaches, 0), coalesce(f.res_breaches, 0), a.active
		FROM keys g LEFT JOIN filed f ON f.key = g.key
		CROSS JOIN LATERAL (
			SELECT count(DISTINCT l.customer_id) AS active FROM readmodels.customer_lifecycle l
			WHERE l.active_from < g.t AND (l.active_until IS NULL OR l.active_until > greatest(l.active_from, g.f))) a
		ORDER BY g.key`,
	Contacts: `
		WITH keys AS (` + months + `),
		recent AS (
			SELECT DISTINCT g.key, ct.customer_id
			FROM keys g JOIN readmodels.contacts ct ON ct.occurred_at >= g.t - interval '720 hours' AND ct.occurred_at < g.t),
		coverage AS (
			SELECT g.key, count(*) AS active, count(r.customer_id) AS contacted,
				count(*) FILTER (WHERE ` + notDueAt("l", "g.t", "$1::integer[]") + `) AS not_due
			FROM keys g
			JOIN readmodels.customer_lifecycle l ON l.active_from < g.t AND (l.active_until IS NULL OR l.active_until >= g.t)
			LEFT JOIN recent r ON r.key = g.key AND r.customer_id = l.customer_id
			LEFT JOIN readmodels.customers c ON c.id = l.customer_id
			GROUP BY g.key),
		overdue AS (
			SELECT g.key, count(*) AS overdue
			FROM keys g JOIN readmodels.follow_ups fu ON fu.due_at < g.t AND (fu.done_at IS NULL OR fu.done_at >= g.t)
			GROUP BY g.key),
		over AS (
			SELECT g.key, count(*) AS over
			FROM keys g CROSS JOIN LATERAL (` + cadence.OverContactedInSQL("g.f", "g.t", "$2::integer") + `) o
			GROUP BY g.key)
		SELECT g.key, coalesce(v.active, 0), coalesce(v.contacted, 0), coalesce(o.overdue, 0), coalesce(v.not_due, 0), coalesce(x.over, 0)
		FROM keys g LEFT JOIN coverage v ON v.key = g.key LEFT JOIN overdue o ON o.key = g.key LEFT JOIN over x ON x.key = g.key
		ORDER BY g.key`,
}

// notDueAt says that the active spell l's customer (its current tier from
// alias c, which may be missing) was not due for a contact just before
// the instant at: its last contact before at, or its registration when
// there was none, is no more than its cadence old there (cadence.DueAtSQL
// lies at or after at).
func notDueAt(l, at, days string) string {
	last := `coalesce((SELECT max(lc.occurred_at) FROM readmodels.contacts lc WHERE lc.customer_id = ` + l + `.customer_id AND lc.occurred_at < ` + at + `), ` + l + `.registered_at)`
	return cadence.DueAtSQL("c.tier", last, days) + ` >= ` + at
}
