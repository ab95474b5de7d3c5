package risk

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rapport-crm/rapport/readmodels/sla"
)

// Thresholds of the time-dependent factors, in whole days of 24 hours
// elapsed (PRODUCT.md, Definitions: 30 days and 23 hours is 30 days).
const (
	contactDays1      = 30
	contactDays2      = 60
	contactDays3      = 90
	recentWindowDays  = 90
	recentComplaints  = 3
	csatLowMax        = 2
	csatNeutral       = 3
	npsDetractorMax   = 6
	npsPassiveMax     = 8
	csatDropMinPoints = 2
)

// FunctionSQL returns the statements that create (or replace) the SQL
// functions of the score in the readmodels schema:
//
//	readmodels.customer_risk(status, registered_at, last_contact_at,
//	    open_complaints, complaints_total, complaints, last_csat, prev_csat,
//	    last_nps, next_follow_up_due_at,
//	    as_of timestamptz DEFAULT now(), weights integer[] DEFAULT <defaults>,
//	    sla jsonb DEFAULT <PRODUCT.md targets>)
//	  RETURNS TABLE (score integer, level text, factors jsonb)
//
// over the columns of readmodels.customers: one row, whose columns are all
// NULL unless status is active. factors is a JSON array of {factor,
// points}, in Factors' order, without the factors that give no points.
// weights is Weights.Array (readmodels.customer_risk_weights('{"contact_90d":
// 40}') builds one from named weights over the defaults); sla is
// sla.Targets.Seconds as JSON ({"high": [14400, 259200], …}).
//
// The function is a single SQL SELECT that PostgreSQL inlines into the
// query calling it (LATERAL in FROM), so that a list filtering on the level
// pays a few comparisons per row; only customers with open complaints, or
// with 3 complaints or more, read the complaints JSON.
//
// The functions take columns, not the view's row type, so that they depend
// on nothing a rebuild replaces: both generations of a rebuild use them.
// CREATE OR REPLACE cannot change a function's result columns: a change
// of those needs a new function name.
func FunctionSQL() []string {
	return []string{weightsFunctionSQL(), scoreFunctionSQL()}
}

// weightIndex is the 1-based position of a weight in the weights array.
func weightIndex(key string) int {
	i := slices.IndexFunc(weightTable, func(x weight) bool { return x.key == key })
	if i < 0 {
		panic("risk: no weight " + key)
	}
	return i + 1
}

func hours(days int) string { return strconv.Itoa(days*24) + " hours" }

func scoreFunctionSQL() string {
	w := func(key string) string { return "weights[" + strconv.Itoa(weightIndex(key)) + "]" }
	def := DefaultWeights().Array()
	defs := make([]string, len(def))
	for i, v := range def {
		defs[i] = strconv.Itoa(int(v))
	}
	slaJSON, err := json.Marshal(sla.Defaults().Seconds())
	if err != nil {
		panic(err)
	}
	names := Factors()
	since := "coalesce(last_contact_at, registered_at)"
	r := strings.NewReplacer(
		"{w_contact_30d}", w("contact_30d"), "{w_contact_60d}", w("contact_60d"), "{w_contact_90d}", w("contact_90d"),
		"{w_open_complaint}", w("open_complaint"), "{w_open_complaints_max}", w("open_complaints_max"),
		"{w_sla_breach}", w("sla_breach"), "{w_complaints_90d}", w("complaints_90d"),
		"{w_csat_low}", w("csat_low"), "{w_csat_neutral}", w("csat_neutral"),
		"{w_nps_detractor}", w("nps_detractor"), "{w_nps_passive}", w("nps_passive"),
		"{w_csat_drop}", w("csat_drop"), "{w_follow_up_overdue}", w("follow_up_overdue"),
		"{since}", since,
		// "more than N days" is N+1 whole days or more.
		"{contact_1}", hours(contactDays1+1), "{contact_2}", hours(contactDays2+1), "{contact_3}", hours(contactDays3+1),
		"{recent_window}", hours(recentWindowDays), "{recent_count}", strconv.Itoa(recentComplaints),
		"{csat_low_max}", strconv.Itoa(csatLowMax), "{csat_neutral}", strconv.Itoa(csatNeutral),
		"{nps_detractor_max}", strconv.Itoa(npsDetractorMax), "{nps_passive_max}", strconv.Itoa(npsPassiveMax),
		"{csat_drop}", strconv.Itoa(csatDropMinPoints),
		"{max_score}", strconv.Itoa(MaxScore), "{high_from}", strconv.Itoa(HighFrom), "{medium_from}", strconv.Itoa(MediumFrom),
		"{level_high}", sqlString(LevelHigh), "{level_medium}", sqlString(LevelMedium), "{level_low}", sqlString(LevelLow),
		"{factor_names}", sqlString("{"+strings.Join(names, ",")+"}"),
		"{default_weights}", sqlString("{"+strings.Join(defs, ",")+"}"),
		"{default_sla}", sqlString(string(slaJSON)),
	)
	return r.Replace(`
CREATE OR REPLACE FUNCTION readmodels.customer_risk(
	status text, registered_at timestamptz, last_contact_at timestamptz,
	open_complaints integer, complaints_total integer, complaints jsonb,
	last_csat integer, prev_csat integer, last_nps integer, next_follow_up_due_at timestamptz,
	as_of timestamptz DEFAULT now(),
	weights integer[] DEFAULT {default_weights},
	sla jsonb DEFAULT {default_sla})
RETURNS TABLE (score integer, level text, factors jsonb)
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT s.score,
	CASE WHEN s.score >= {high_from} THEN {level_high} WHEN s.score >= {medium_from} THEN {level_medium} WHEN s.score IS NOT NULL THEN {level_low} END,
	CASE WHEN s.score IS NOT NULL THEN (
		SELECT coalesce(jsonb_agg(jsonb_build_object('factor', f.name, 'points', f.points) ORDER BY f.i), '[]'::jsonb)
		FROM unnest({factor_names}::text[], ARRAY[s.p1, s.p2, s.p3, s.p4, s.p5, s.p6, s.p7, s.p8]) WITH ORDINALITY AS f(name, points, i)
		WHERE f.points > 0) END
FROM (
	SELECT CASE WHEN p.active THEN least({max_score}, coalesce(p.p1, 0) + coalesce(p.p2, 0) + coalesce(p.p3, 0) + coalesce(p.p4, 0)
			+ coalesce(p.p5, 0) + coalesce(p.p6, 0) + coalesce(p.p7, 0) + coalesce(p.p8, 0)) END AS score,
		p.p1, p.p2, p.p3, p.p4, p.p5, p.p6, p.p7, p.p8
	FROM (
		SELECT status = 'active' AS active,
			-- days_since_contact
			CASE WHEN {since} <= as_of - interval '{contact_3}' THEN {w_contact_90d}
				WHEN {since} <= as_of - interval '{contact_2}' THEN {w_contact_60d}
				WHEN {since} <= as_of - interval '{contact_1}' THEN {w_contact_30d}
				ELSE 0 END AS p1,
			-- open_complaints
			least(open_complaints * {w_open_complaint}, {w_open_complaints_max}) AS p2,
			-- sla_breach: an open complaint whose last opening had no first
			-- response when its first-response target passed, or is not
			-- resolved when its resolution target passed.
			CASE WHEN open_complaints > 0 AND EXISTS (
				SELECT 1
				FROM jsonb_array_elements(complaints) AS c(e)
				CROSS JOIN LATERAL (SELECT (c.e->>'opened_at')::timestamptz AS opened,
					(c.e->>'acknowledged_at')::timestamptz AS acked,
					sla->(c.e->>'severity') AS target) t
				WHERE c.e->>'status' <> 'resolved'
					AND ((as_of > t.opened + (t.target->>0)::bigint * interval '1 second'
							AND (t.acked IS NULL OR t.acked > t.opened + (t.target->>0)::bigint * interval '1 second'))
						OR as_of > t.opened + (t.target->>1)::bigint * interval '1 second'))
				THEN {w_sla_breach} ELSE 0 END AS p3,
			-- complaints_last_90_days
			CASE WHEN complaints_total >= {recent_count} AND (
				SELECT count(*)
				FROM jsonb_array_elements(complaints) AS c(e)
				WHERE (c.e->>'filed_at')::timestamptz > as_of - interval '{recent_window}'
					AND (c.e->>'filed_at')::timestamptz <= as_of) >= {recent_count}
				THEN {w_complaints_90d} ELSE 0 END AS p4,
			-- low_csat
			CASE WHEN last_csat <= {csat_low_max} THEN {w_csat_low} WHEN last_csat = {csat_neutral} THEN {w_csat_neutral} ELSE 0 END AS p5,
			-- low_nps
			CASE WHEN last_nps <= {nps_detractor_max} THEN {w_nps_detractor} WHEN last_nps <= {nps_passive_max} THEN {w_nps_passive} ELSE 0 END AS p6,
			-- csat_drop
			CASE WHEN last_csat <= prev_csat - {csat_drop} THEN {w_csat_drop} ELSE 0 END AS p7,
			-- follow_up_overdue
			CASE WHEN next_follow_up_due_at < as_of THEN {w_follow_up_overdue} ELSE 0 END AS p8
		OFFSET 0 -- evaluate each factor once per customer
	) p
) s
$fn$`)
}

// weightsFunctionSQL is readmodels.customer_risk_weights(jsonb): the
// weights array from named weights over the defaults (keys of
// WeightKeys; others are ignored).
func weightsFunctionSQL() string {
	items := make([]string, len(weightTable))
	for i, x := range weightTable {
		items[i] = fmt.Sprintf("coalesce((overrides->>%s)::integer, %d)", sqlString(x.key), x.def)
	}
	return `
CREATE OR REPLACE FUNCTION readmodels.customer_risk_weights(overrides jsonb DEFAULT '{}')
RETURNS integer[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
SELECT ARRAY[` + strings.Join(items, ", ") + `]
$fn$`
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
