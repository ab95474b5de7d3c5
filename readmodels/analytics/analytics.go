// Package analytics computes the analysts' figures (PRODUCT.md,
// "Definitions") from the read models, one SQL round trip per figure
// family, reading only the readmodels.* views: satisfaction from
// readmodels.surveys, churn and retention from readmodels.customer_lifecycle,
// complaint handling from readmodels.complaints, contact coverage from
// readmodels.contacts and readmodels.follow_ups, and the groups from
// readmodels.customers. ../README.md states every definition and the SQL
// that computes it; the queries here are that SQL.
//
// Grouping: segment, tier and region are the customer's current
// classification and owner its current account manager (all from
// readmodels.customers; a customer without one falls in the group with a
// null key); month is the calendar month (UTC) of the fact counted. For
// figures that hold at an instant, a month is judged at its own bounds:
// churn from the month's start, coverage and overdue follow-ups at its
// end (both clipped to the period).
package analytics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/sla"
)

// GroupBy is how a report groups its figures.
type GroupBy string

const (
	// All makes one group, keyed "all".
	All     GroupBy = ""
	Segment GroupBy = "segment"
	Tier    GroupBy = "tier"
	Region  GroupBy = "region"
	// Owner is the customer's account manager.
	Owner GroupBy = "owner"
	// Month is the calendar month (UTC) of the fact counted, keyed
	// YYYY-MM.
	Month GroupBy = "month"
)

// GroupBys lists the groupings a request may name.
func GroupBys() []GroupBy { return []GroupBy{Segment, Tier, Region, Owner, Month} }

// Family is a set of figures answered together.
type Family string

const (
	Satisfaction Family = "satisfaction"
	Churn        Family = "churn"
	Complaints   Family = "complaints"
	Contacts     Family = "contacts"
	// KPIs are the headline figures of every family.
	KPIs Family = "kpis"
)

// DefaultPeriod is the period a report covers without from: the 90 days
// up to to.
const DefaultPeriod = 90 * 24 * time.Hour

// CoverageWindow is how far back a contact counts for contact coverage:
// the 30 days (of 24 h) up to the instant judged.
const CoverageWindow = 30 * 24 * time.Hour

// MaxMonths bounds the months of a report grouped by month.
const MaxMonths = 1200

// Params select a report: the period [From, To) and the grouping.
type Params struct {
	From, To time.Time
	GroupBy  GroupBy
}

// Months counts the calendar months (UTC) the period touches.
func (p Params) Months() int {
	f, t := p.From.UTC(), p.To.Add(-time.Microsecond).UTC()
	return (t.Year()-f.Year())*12 + int(t.Month()) - int(f.Month()) + 1
}

// Group holds the figures of one group. A nil figure has a zero
// denominator: there was nothing to compute it from.
type Group struct {
	// Key is the group's value: "all" without grouping, a label, an
	// account manager or a month (YYYY-MM); nil for customers without the
	// classification or account manager.
	Key *string

	// Satisfaction.
	CSATPct       *float64
	CSATAvg       *float64
	NPS           *float64
	Responses     int64
	CSATResponses int64
	NPSResponses  int64

	// Churn.
	ChurnRate     *float64
	RetentionRate *float64
	ActiveAtStart int64
	Churned       int64

	// Complaints.
	ComplaintRate         *float64
	ResolutionRate        *float64
	FirstResponseMedianS  *float64
	ResolutionMedianS     *float64
	SLABreaches           int64
	FirstResponseBreaches int64
	ResolutionBreaches    int64
	Filed                 int64
	Resolved              int64
	ActiveInPeriod        int64

	// Contacts.
	ContactCoverage  *float64
	FollowUpsOverdue int64
	ActiveAtEnd      int64
	Contacted        int64
}

// Report is the figures of a period by group.
type Report struct {
	Params
	Groups []Group
}

// columns are each family's figures, in the order the API answers them.
var columns = map[Family][]string{
	Satisfaction: {"csat_pct", "csat_avg", "nps", "responses", "csat_responses", "nps_responses"},
	Churn:        {"churn_rate", "retention_rate", "active_at_start", "churned"},
	Complaints: {"complaint_rate", "resolution_rate", "first_response_median_s", "resolution_median_s",
		"sla_breaches", "first_response_breaches", "resolution_breaches", "filed", "resolved", "active_in_period"},
	Contacts: {"contact_coverage", "follow_ups_overdue", "active_at_end", "contacted"},
	KPIs: {"csat_pct", "csat_avg", "nps", "responses", "churn_rate", "retention_rate",
		"complaint_rate", "resolution_rate", "first_response_median_s", "resolution_median_s", "sla_breaches",
		"contact_coverage", "follow_ups_overdue"},
}

// Columns lists a family's figures in answer order (without the key).
func Columns(f Family) []string { return columns[f] }

// Families lists the families.
func Families() []Family { return []Family{Satisfaction, Churn, Complaints, Contacts, KPIs} }

// Figure returns the named figure: a *float64 (nil when undefined) or an
// int64.
func (g *Group) Figure(name string) any {
	switch name {
	case "csat_pct":
		return g.CSATPct
	case "csat_avg":
		return g.CSATAvg
	case "nps":
		return g.NPS
	case "responses":
		return g.Responses
	case "csat_responses":
		return g.CSATResponses
	case "nps_responses":
		return g.NPSResponses
	case "churn_rate":
		return g.ChurnRate
	case "retention_rate":
		return g.RetentionRate
	case "active_at_start":
		return g.ActiveAtStart
	case "churned":
		return g.Churned
	case "complaint_rate":
		return g.ComplaintRate
	case "resolution_rate":
		return g.ResolutionRate
	case "first_response_median_s":
		return g.FirstResponseMedianS
	case "resolution_median_s":
		return g.ResolutionMedianS
	case "sla_breaches":
		return g.SLABreaches
	case "first_response_breaches":
		return g.FirstResponseBreaches
	case "resolution_breaches":
		return g.ResolutionBreaches
	case "filed":
		return g.Filed
	case "resolved":
		return g.Resolved
	case "active_in_period":
		return g.ActiveInPeriod
	case "contact_coverage":
		return g.ContactCoverage
	case "follow_ups_overdue":
		return g.FollowUpsOverdue
	case "active_at_end":
		return g.ActiveAtEnd
	case "contacted":
		return g.Contacted
	}
	return nil
}

// percent is 100 × part ÷ whole, nil when whole is 0.
func percent(part, whole int64) *float64 {
	if whole == 0 {
		return nil
	}
	v := 100 * float64(part) / float64(whole)
	return &v
}

func ratio(sum, n int64) *float64 {
	if n == 0 {
		return nil
	}
	v := float64(sum) / float64(n)
	return &v
}

// Queries computes reports from the read models.
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

// ErrInvalidParams is returned for a period that is empty or, grouped by
// month, longer than MaxMonths.
var ErrInvalidParams = errors.New("analytics: invalid parameters")

// Report computes a family's figures.
func (q *Queries) Report(ctx context.Context, f Family, p Params) (Report, error) {
	if !p.From.Before(p.To) || (p.GroupBy == Month && p.Months() > MaxMonths) {
		return Report{}, ErrInvalidParams
	}
	if _, ok := columns[f]; !ok {
		return Report{}, fmt.Errorf("analytics: unknown family %q", f)
	}
	parts := []Family{f}
	if f == KPIs {
		parts = []Family{Satisfaction, Churn, Complaints, Contacts}
	}
	batch := &pgx.Batch{}
	for _, part := range parts {
		sql, args := q.query(part, p)
		batch.Queue(sql, args...)
	}
	results := q.pool.SendBatch(ctx, batch)
	defer results.Close()
	merged := newMerger()
	for _, part := range parts {
		rows, err := results.Query()
		if err != nil {
			return Report{}, fmt.Errorf("analytics: %s: %w", part, err)
		}
		if err := scan(rows, part, merged); err != nil {
			return Report{}, fmt.Errorf("analytics: %s: %w", part, err)
		}
	}
	if err := results.Close(); err != nil {
		return Report{}, fmt.Errorf("analytics: %w", err)
	}
	return Report{Params: p, Groups: merged.groups()}, nil
}

// merger joins the groups of several families by key, in first-seen
// order (every query sorts its groups the same way).
type merger struct {
	order []*Group
	byKey map[string]*Group
}

func newMerger() *merger { return &merger{byKey: map[string]*Group{}} }

func (m *merger) group(key *string) *Group {
	k := "\x00null"
	if key != nil {
		k = *key
	}
	g := m.byKey[k]
	if g == nil {
		g = &Group{Key: key}
		m.byKey[k] = g
		m.order = append(m.order, g)
	}
	return g
}

func (m *merger) groups() []Group {
	out := make([]Group, len(m.order))
	for i, g := range m.order {
		out[i] = *g
	}
	// Keep null keys last, as the queries do, also after a merge.
	var keyed, null []Group
	for _, g := range out {
		if g.Key == nil {
			null = append(null, g)
		} else {
			keyed = append(keyed, g)
		}
	}
	return append(keyed, null...)
}

func scan(rows pgx.Rows, f Family, m *merger) error {
	defer rows.Close()
	for rows.Next() {
		var key *string
		switch f {
		case Satisfaction:
			var n, csatN, top, sum, npsN, promoters, detractors int64
			if err := rows.Scan(&key, &n, &csatN, &top, &sum, &npsN, &promoters, &detractors); err != nil {
				return err
			}
			g := m.group(key)
			g.Responses, g.CSATResponses, g.NPSResponses = n, csatN, npsN
			g.CSATPct, g.CSATAvg, g.NPS = percent(top, csatN), ratio(sum, csatN), percent(promoters-detractors, npsN)
		case Churn:
			var active, churned int64
			if err := rows.Scan(&key, &active, &churned); err != nil {
				return err
			}
			g := m.group(key)
			g.ActiveAtStart, g.Churned = active, churned
			g.ChurnRate = percent(churned, active)
			if g.ChurnRate != nil {
				r := 100 - *g.ChurnRate
				g.RetentionRate = &r
			}
		case Complaints:
			var filed, resolved, breaches, frBreaches, resBreaches, active int64
			var frMedian, resMedian *float64
			if err := rows.Scan(&key, &filed, &resolved, &frMedian, &resMedian, &breaches, &frBreaches, &resBreaches, &active); err != nil {
				return err
			}
			g := m.group(key)
			g.Filed, g.Resolved, g.ActiveInPeriod = filed, resolved, active
			g.SLABreaches, g.FirstResponseBreaches, g.ResolutionBreaches = breaches, frBreaches, resBreaches
			g.FirstResponseMedianS, g.ResolutionMedianS = frMedian, resMedian
			g.ComplaintRate, g.ResolutionRate = percent(filed, active), percent(resolved, filed)
		case Contacts:
			var active, contacted, overdue int64
			if err := rows.Scan(&key, &active, &contacted, &overdue); err != nil {
				return err
			}
			g := m.group(key)
			g.ActiveAtEnd, g.Contacted, g.FollowUpsOverdue = active, contacted, overdue
			g.ContactCoverage = percent(contacted, active)
		}
	}
	return rows.Err()
}

// targetsJSON is the SLA targets in seconds by severity, every severity
// present, as the complaint query takes them.
func (q *Queries) targetsJSON() map[string][2]int64 {
	out := sla.Defaults().Seconds()
	for sev, t := range q.targets.Seconds() {
		if domain.Severity(sev).Valid() {
			out[sev] = t
		}
	}
	return out
}

// query is a family's SQL and its arguments: $1 from, $2 to (contacts
// not by month: $1 to), and for complaints $3 the SLA targets, $4 the
// instant breaches are judged at; by month then the months' keys and
// bounds (churn and contacts by month take only those).
func (q *Queries) query(f Family, p Params) (string, []any) {
	args := []any{p.From, p.To}
	if f == Contacts && p.GroupBy != Month {
		args = []any{p.To} // coverage and overdue follow-ups hold at the period's end
	}
	if f == Complaints {
		args = append(args, q.targetsJSON(), q.now())
	}
	if p.GroupBy == Month {
		keys, from, to := MonthBounds(p)
		if f == Churn || f == Contacts {
			args = nil // the months' own bounds are all they need
		}
		n := len(args) + 1
		args = append(args, keys, from, to)
		r := strings.NewReplacer("${m}", fmt.Sprintf("$%d", n), "${m+1}", fmt.Sprintf("$%d", n+1), "${m+2}", fmt.Sprintf("$%d", n+2))
		return r.Replace(monthly[f]), args
	}
	key, keys := "'all'::text", `SELECT 'all'::text AS key`
	if p.GroupBy != All {
		key = attribute[p.GroupBy]
		keys = `SELECT DISTINCT ` + key + ` AS key FROM readmodels.customers c`
	}
	r := strings.NewReplacer("{keys}", keys, "{key}", key)
	return r.Replace(grouped[f]), args
}

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
// judged at $4: the step (acknowledgement, else a resolution without one;
// the resolution) came after the target, or has not come and the target
// is past.
const (
	firstResponseBreach = `coalesce(x.acknowledged_at, x.resolved_at, $4::timestamptz) >
		x.opened_at + make_interval(secs => ($3::jsonb -> x.severity ->> 0)::float8)`
	resolutionBreach = `coalesce(x.resolved_at, $4::timestamptz) >
		x.opened_at + make_interval(secs => ($3::jsonb -> x.severity ->> 1)::float8)`
)

// filedAgg aggregates the complaints filed in [$1, $2) (alias k, with
// fr_breach and res_breach), by {key}. The first response is the one the
// breach judges: the acknowledgement, else a resolution without one.
const filedAgg = `
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
					AND ct.occurred_at >= $1::timestamptz - interval '720 hours' AND ct.occurred_at < $1::timestamptz)) AS contacted
			FROM readmodels.customer_lifecycle l LEFT JOIN readmodels.customers c ON c.id = l.customer_id
			WHERE l.active_from < $1::timestamptz AND (l.active_until IS NULL OR l.active_until >= $1::timestamptz)
			GROUP BY 1),
		overdue AS (
			SELECT {key} AS key, count(*) AS overdue
			FROM readmodels.follow_ups fu LEFT JOIN readmodels.customers c ON c.id = fu.customer_id
			WHERE fu.due_at < $1::timestamptz AND (fu.done_at IS NULL OR fu.done_at >= $1::timestamptz)
			GROUP BY 1)
		SELECT g.key, coalesce(v.active, 0), coalesce(v.contacted, 0), coalesce(o.overdue, 0)
		FROM (SELECT key FROM keys UNION SELECT key FROM coverage UNION SELECT key FROM overdue) g
		LEFT JOIN coverage v ON v.key IS NOT DISTINCT FROM g.key
		LEFT JOIN overdue o ON o.key IS NOT DISTINCT FROM g.key
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
			SELECT g.key, count(*) AS active, count(r.customer_id) AS contacted
			FROM keys g
			JOIN readmodels.customer_lifecycle l ON l.active_from < g.t AND (l.active_until IS NULL OR l.active_until >= g.t)
			LEFT JOIN recent r ON r.key = g.key AND r.customer_id = l.customer_id
			GROUP BY g.key),
		overdue AS (
			SELECT g.key, count(*) AS overdue
			FROM keys g JOIN readmodels.follow_ups fu ON fu.due_at < g.t AND (fu.done_at IS NULL OR fu.done_at >= g.t)
			GROUP BY g.key)
		SELECT g.key, coalesce(v.active, 0), coalesce(v.contacted, 0), coalesce(o.overdue, 0)
		FROM keys g LEFT JOIN coverage v ON v.key = g.key LEFT JOIN overdue o ON o.key = g.key
		ORDER BY g.key`,
}
