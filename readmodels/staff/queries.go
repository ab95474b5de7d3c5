package staff

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/sla"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// Scorecard is one staff member's figures over a period. A nil figure has
// a zero denominator: there was nothing to compute it from.
type Scorecard struct {
	Member string

	// ContactsLogged: contacts by the member that occurred in the period.
	ContactsLogged int64
	// FollowUpsDue: follow-ups by the member due in the period;
	// FollowUpsOnTime those of them done by a contact no later than due;
	// FollowUpsDoneOnTimePct = on time ÷ due × 100.
	FollowUpsDue           int64
	FollowUpsOnTime        int64
	FollowUpsDoneOnTimePct *float64
	// ComplaintsOwned: complaints filed in the period whose assignee is the
	// member; of them, FirstResponseMedianS (acknowledgement, else a
	// resolution without one, minus the last opening), Resolved and
	// ResolutionRate = resolved ÷ owned × 100, and SLABreaches (first
	// response or resolution past its target, judged now).
	ComplaintsOwned      int64
	FirstResponseMedianS *float64
	Resolved             int64
	ResolutionRate       *float64
	SLABreaches          int64
	// CSATResponsesAfterComplaints: surveys answered in the period with a
	// CSAT answer that follow a complaint the member owns;
	// CSATPctAfterComplaints: those with CSAT 4 or 5 ÷ them × 100.
	CSATResponsesAfterComplaints int64
	CSATPctAfterComplaints       *float64
	// Accounts: active customers the member manages (account manager) at
	// the period's end.
	Accounts int64
	// AccountsAtStart: active customers the member manages at the period's
	// start; AccountsChurned: those of them churned in the period;
	// AccountsChurnRate = churned ÷ at start × 100.
	AccountsAtStart   int64
	AccountsChurned   int64
	AccountsChurnRate *float64
}

// Report is the scorecards of a period [From, To), by member name.
type Report struct {
	From, To time.Time
	Staff    []Scorecard
}

// Columns are the figures in the order the API answers them (after the
// member).
var Columns = []string{"contacts_logged", "follow_ups_due", "follow_ups_done_on_time_pct", "complaints_owned",
	"first_response_median_s", "resolution_rate", "sla_breaches", "csat_responses_after_complaints",
	"csat_pct_after_complaints", "accounts", "accounts_at_start", "accounts_churned", "accounts_churn_rate"}

// Figure returns the named figure: a *float64 (nil when undefined) or an
// int64.
func (s *Scorecard) Figure(name string) any {
	switch name {
	case "contacts_logged":
		return s.ContactsLogged
	case "follow_ups_due":
		return s.FollowUpsDue
	case "follow_ups_done_on_time_pct":
		return s.FollowUpsDoneOnTimePct
	case "complaints_owned":
		return s.ComplaintsOwned
	case "first_response_median_s":
		return s.FirstResponseMedianS
	case "resolution_rate":
		return s.ResolutionRate
	case "sla_breaches":
		return s.SLABreaches
	case "csat_responses_after_complaints":
		return s.CSATResponsesAfterComplaints
	case "csat_pct_after_complaints":
		return s.CSATPctAfterComplaints
	case "accounts":
		return s.Accounts
	case "accounts_at_start":
		return s.AccountsAtStart
	case "accounts_churned":
		return s.AccountsChurned
	case "accounts_churn_rate":
		return s.AccountsChurnRate
	}
	return nil
}

// Queries computes the scorecards.
type Queries struct {
	pool    *pgxpool.Pool
	targets sla.Targets
	now     func() time.Time
}

// NewQueries returns the queries; targets are the SLA targets breaches are
// judged by (nil: the defaults).
func NewQueries(pool *pgxpool.Pool, targets sla.Targets) *Queries {
	if targets == nil {
		targets = sla.Defaults()
	}
	return &Queries{pool: pool, targets: targets, now: time.Now}
}

// WithClock returns queries that judge SLA breaches at now() (tests).
func (q *Queries) WithClock(now func() time.Time) *Queries {
	c := *q
	c.now = now
	return &c
}

// Reads names the projectors whose tables the scorecards read.
func (*Queries) Reads() []string {
	return []string{Name, contacts.Name, complaints.Name, surveys.Name, lifecycle.Name}
}

// ErrInvalidPeriod is returned for an empty period.
var ErrInvalidPeriod = errors.New("staff: the period is empty")

// scorecardSQL computes every member's figures over [$1, $2) in one round
// trip: $3 are the SLA targets in seconds by severity, $4 the instant
// breaches are judged at. A member is named in the period when any figure
// counts something of theirs.
var scorecardSQL = `
	WITH
	logged AS (
		SELECT ct.by AS member, count(*) AS n
		FROM readmodels.contacts ct
		WHERE ct.occurred_at >= $1::timestamptz AND ct.occurred_at < $2::timestamptz
		GROUP BY 1),
	promised AS (
		SELECT fu.by AS member, count(*) AS due, count(*) FILTER (WHERE fu.done_at <= fu.due_at) AS on_time
		FROM readmodels.follow_ups fu
		WHERE fu.due_at >= $1::timestamptz AND fu.due_at < $2::timestamptz
		GROUP BY 1),
	owned AS (
		SELECT k.assignee AS member, count(*) AS owned,
			count(*) FILTER (WHERE k.status = 'resolved') AS resolved,
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM coalesce(k.acknowledged_at, k.resolved_at) - k.opened_at)::float8)
				FILTER (WHERE coalesce(k.acknowledged_at, k.resolved_at) IS NOT NULL) AS fr_median,
			count(*) FILTER (WHERE k.fr_breach OR k.res_breach) AS breaches
		FROM (SELECT x.*, ` + sla.FirstResponseBreachSQL("x", "$3", "$4") + ` AS fr_breach, ` + sla.ResolutionBreachSQL("x", "$3", "$4") + ` AS res_breach
			FROM readmodels.complaints x
			WHERE x.filed_at >= $1::timestamptz AND x.filed_at < $2::timestamptz AND x.assignee IS NOT NULL) k
		GROUP BY 1),
	after AS (
		SELECT k.assignee AS member, count(s.csat) AS csat_n, count(*) FILTER (WHERE s.csat >= 4) AS csat_top
		FROM readmodels.surveys s
		JOIN readmodels.complaints k ON k.customer_id = s.customer_id AND k.complaint_id = s.complaint_id
		WHERE s.answered_at >= $1::timestamptz AND s.answered_at < $2::timestamptz AND k.assignee IS NOT NULL
		GROUP BY 1),
	at_end AS (
		SELECT sp.member, count(DISTINCT sp.customer_id) AS accounts
		FROM readmodels.team_spells sp
		JOIN readmodels.customer_lifecycle l ON l.customer_id = sp.customer_id
		WHERE sp.role = 'account_manager' AND sp.assigned_at < $2::timestamptz AND (sp.until IS NULL OR sp.until >= $2::timestamptz)
			AND l.active_from < $2::timestamptz AND (l.active_until IS NULL OR l.active_until >= $2::timestamptz)
		GROUP BY 1),
	at_start AS (
		SELECT sp.member, count(DISTINCT sp.customer_id) AS active,
			count(DISTINCT sp.customer_id) FILTER (WHERE l.active_until < $2::timestamptz) AS churned
		FROM readmodels.team_spells sp
		JOIN readmodels.customer_lifecycle l ON l.customer_id = sp.customer_id
		WHERE sp.role = 'account_manager' AND sp.assigned_at <= $1::timestamptz AND (sp.until IS NULL OR sp.until > $1::timestamptz)
			AND l.active_from <= $1::timestamptz AND (l.active_until IS NULL OR l.active_until > $1::timestamptz)
		GROUP BY 1),
	members AS (
		SELECT member FROM logged UNION SELECT member FROM promised UNION SELECT member FROM owned
		UNION SELECT member FROM after UNION SELECT member FROM at_end UNION SELECT member FROM at_start)
	SELECT m.member, coalesce(lg.n, 0), coalesce(p.due, 0), coalesce(p.on_time, 0),
		coalesce(o.owned, 0), o.fr_median, coalesce(o.resolved, 0), coalesce(o.breaches, 0),
		coalesce(a.csat_n, 0), coalesce(a.csat_top, 0),
		coalesce(e.accounts, 0), coalesce(st.active, 0), coalesce(st.churned, 0)
	FROM members m
	LEFT JOIN logged lg ON lg.member = m.member
	LEFT JOIN promised p ON p.member = m.member
	LEFT JOIN owned o ON o.member = m.member
	LEFT JOIN after a ON a.member = m.member
	LEFT JOIN at_end e ON e.member = m.member
	LEFT JOIN at_start st ON st.member = m.member
	ORDER BY m.member`

// Report computes the scorecards of [from, to).
func (q *Queries) Report(ctx context.Context, from, to time.Time) (Report, error) {
	if !from.Before(to) {
		return Report{}, ErrInvalidPeriod
	}
	rows, err := q.pool.Query(ctx, scorecardSQL, from, to, q.targetsJSON(), q.now())
	var staff []Scorecard
	if err == nil {
		staff, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Scorecard, error) {
			var s Scorecard
			var csatTop int64
			err := row.Scan(&s.Member, &s.ContactsLogged, &s.FollowUpsDue, &s.FollowUpsOnTime,
				&s.ComplaintsOwned, &s.FirstResponseMedianS, &s.Resolved, &s.SLABreaches,
				&s.CSATResponsesAfterComplaints, &csatTop, &s.Accounts, &s.AccountsAtStart, &s.AccountsChurned)
			s.FollowUpsDoneOnTimePct = percent(s.FollowUpsOnTime, s.FollowUpsDue)
			s.ResolutionRate = percent(s.Resolved, s.ComplaintsOwned)
			s.CSATPctAfterComplaints = percent(csatTop, s.CSATResponsesAfterComplaints)
			s.AccountsChurnRate = percent(s.AccountsChurned, s.AccountsAtStart)
			return s, err
		})
	}
	if err != nil {
		return Report{}, readmodel.Fail("staff: scorecards", err)
	}
	return Report{From: from, To: to, Staff: staff}, nil
}

// targetsJSON is the SLA targets in seconds by severity, every severity
// present (the defaults fill what the configuration leaves out).
func (q *Queries) targetsJSON() map[string][2]int64 {
	out := sla.Defaults().Seconds()
	for sev, t := range q.targets.Seconds() {
		if domain.Severity(sev).Valid() {
			out[sev] = t
		}
	}
	return out
}

// percent is 100 × part ÷ whole, nil when whole is 0.
func percent(part, whole int64) *float64 {
	if whole == 0 {
		return nil
	}
	v := 100 * float64(part) / float64(whole)
	return &v
}
