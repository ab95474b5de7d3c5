package risk

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/rapport-crm/rapport/readmodels/sla"
)

// untilWeights are the weights of the factors whose changes over time
// readmodels.customer_risk_valid_until knows: every instant at which one
// of them can change is among its candidates. A factor added later (its
// weight in weightTable but not here) is unknown to it: Bounded is false
// as soon as such a weight is not 0.
var untilWeights = []string{
	"contact_30d", "contact_60d", "contact_90d", "open_complaint", "open_complaints_max", "sla_breach",
	"complaints_90d", "csat_low", "csat_neutral", "nps_detractor", "nps_passive", "csat_drop", "follow_up_overdue",
}

// Bounded reports whether customer_risk_valid_until bounds a score made
// with w: every weight it does not know is 0. A cache of scores
// (work.Queries' at-risk queue) is only used when it is.
func (w Weights) Bounded() bool {
	for _, x := range weightTable {
		if *x.field(&w) != 0 && !slices.Contains(untilWeights, x.key) {
			return false
		}
	}
	return true
}

// ValidUntilFunctionSQL returns the statement that creates (or replaces)
//
//	readmodels.customer_risk_valid_until(status, registered_at,
//	    last_contact_at, open_complaints, complaints_total, complaints,
//	    next_follow_up_due_at,
//	    as_of timestamptz DEFAULT now(), sla jsonb DEFAULT <PRODUCT.md targets>)
//	  RETURNS timestamptz
//
// over the columns of readmodels.customers: the earliest instant at or
// after as_of at which a time-dependent factor of readmodels.customer_risk
// can change ('infinity' when none can), whatever the weights. Between
// two events of a customer its score is a step function of the time, and
// every step is one of these instants: a threshold of days_since_contact
// (31, 61, 91 days after the last contact or the registration), the due
// time of the earliest pending follow-up, an open complaint's first
// response and resolution targets, and, with 3 complaints or more, each
// complaint's filing and the end of its 90 days. So a score computed at
// as_of holds at every instant t with as_of <= t < valid_until, exactly:
// each factor compares t with one of these instants (t >= x or t > x),
// and no x lies in [as_of, valid_until) unless it is as_of itself with a
// strict comparison, which gives the empty interval.
//
// The thresholds are the ones scoreFunctionSQL writes, from the same
// constants; TestValidUntilBoundsTheScore (package work) checks the
// two against each other around every candidate instant.
func ValidUntilFunctionSQL() string {
	slaJSON, err := json.Marshal(sla.Defaults().Seconds())
	if err != nil {
		panic(err)
	}
	r := strings.NewReplacer(
		"{since}", "coalesce(last_contact_at, registered_at)",
		"{contact_1}", hours(contactDays1+1), "{contact_2}", hours(contactDays2+1), "{contact_3}", hours(contactDays3+1),
		"{recent_window}", hours(recentWindowDays), "{recent_count}", strconv.Itoa(recentComplaints),
		"{default_sla}", sqlString(string(slaJSON)),
	)
	return r.Replace(`
CREATE OR REPLACE FUNCTION readmodels.customer_risk_valid_until(
	status text, registered_at timestamptz, last_contact_at timestamptz,
	open_complaints integer, complaints_total integer, complaints jsonb,
	next_follow_up_due_at timestamptz,
	as_of timestamptz DEFAULT now(),
	sla jsonb DEFAULT {default_sla})
RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT CASE WHEN status IS DISTINCT FROM 'active' THEN 'infinity'::timestamptz ELSE coalesce((
	SELECT min(x.at) FROM (
		-- days_since_contact
		SELECT {since} + interval '{contact_1}'
		UNION ALL SELECT {since} + interval '{contact_2}'
		UNION ALL SELECT {since} + interval '{contact_3}'
		-- follow_up_overdue
		UNION ALL SELECT next_follow_up_due_at
		-- sla_breach: the targets of the open complaints' last openings
		UNION ALL SELECT s.at
		FROM jsonb_array_elements(CASE WHEN open_complaints > 0 THEN complaints ELSE '[]'::jsonb END) AS c(e)
		CROSS JOIN LATERAL (SELECT (c.e->>'opened_at')::timestamptz AS opened, sla->(c.e->>'severity') AS target) t
		CROSS JOIN LATERAL (VALUES (t.opened + (t.target->>0)::bigint * interval '1 second'),
			(t.opened + (t.target->>1)::bigint * interval '1 second')) AS s(at)
		WHERE c.e->>'status' <> 'resolved'
		-- complaints_last_90_days: a filing enters the window, then leaves it
		UNION ALL SELECT w.at
		FROM jsonb_array_elements(CASE WHEN complaints_total >= {recent_count} THEN complaints ELSE '[]'::jsonb END) AS c(e)
		CROSS JOIN LATERAL (VALUES ((c.e->>'filed_at')::timestamptz),
			((c.e->>'filed_at')::timestamptz + interval '{recent_window}')) AS w(at)
	) AS x(at)
	WHERE x.at >= as_of), 'infinity'::timestamptz) END
$fn$`)
}
