package analytics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/cadence"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/sla"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// Queries computes reports from the read models.
type Queries struct {
	pool    *pgxpool.Pool
	targets sla.Targets
	now     func() time.Time
	// rollups answers from the rollups read model (WithRollups).
	rollups bool
	cadence []int32
	maxOut  int32
}

// NewQueries returns the queries; targets are the SLA targets breaches are
// judged by (nil: the defaults).
func NewQueries(pool *pgxpool.Pool, targets sla.Targets) *Queries {
	if targets == nil {
		targets = sla.Defaults()
	}
	q := &Queries{pool: pool, targets: targets, now: time.Now}
	return q.WithCadence(cadence.Cadence{}, 0)
}

// WithCadence returns queries that judge cadence adherence by the cadence
// c (zero fields: the defaults) and over-contact by maxOutboundPerWeek (0:
// the default, 3).
func (q *Queries) WithCadence(c cadence.Cadence, maxOutboundPerWeek int) *Queries {
	n := *q
	c.SetDefaults()
	if maxOutboundPerWeek <= 0 {
		maxOutboundPerWeek = cadence.DefaultMaxOutboundPerWeek
	}
	n.cadence, n.maxOut = c.Array(), int32(maxOutboundPerWeek)
	return &n
}

// WithClock returns queries that judge SLA breaches at now() (tests).
func (q *Queries) WithClock(now func() time.Time) *Queries {
	c := *q
	c.now = now
	return &c
}

// reads are the projectors whose tables each family's SQL reads; every
// family groups by the customer directory. KPIs read what their parts do.
var reads = map[Family][]string{
	Satisfaction: {surveys.Name, customers.Name},
	Churn:        {lifecycle.Name, customers.Name},
	Complaints:   {complaints.Name, lifecycle.Name, customers.Name},
	Contacts:     {contacts.Name, lifecycle.Name, customers.Name},
	KPIs:         {surveys.Name, complaints.Name, contacts.Name, lifecycle.Name, customers.Name},
}

// Reads names the projectors whose tables the family's report reads (nil
// for an unknown family), so that min_position waits for exactly those.
func (q *Queries) Reads(f Family) []string {
	if q.rollups {
		if (f == Contacts || f == KPIs) && !q.contactRollup() {
			return slices.Clone(contactFallbackReads)
		}
		return slices.Clone(rollupReads[f])
	}
	return slices.Clone(reads[f])
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
	if q.rollups && len(parts) > 1 {
		merged, err := q.parallel(ctx, parts, p)
		if err != nil {
			return Report{}, err
		}
		return Report{Params: p, Groups: merged.groups()}, nil
	}
	batch := &pgx.Batch{}
	serial := q.serial(f, p)
	if serial {
		batch.Queue(serialSQL)
	}
	for _, part := range parts {
		sql, args := q.query(part, p)
		batch.Queue(sql, args...)
	}
	results := q.pool.SendBatch(ctx, batch)
	defer results.Close()
	if serial {
		if _, err := results.Exec(); err != nil {
			return Report{}, readmodel.Fail("analytics", err)
		}
	}
	merged := newMerger()
	for _, part := range parts {
		rows, err := results.Query()
		if err == nil {
			err = q.scan(rows, part, merged)
		}
		if err != nil {
			return Report{}, readmodel.Fail("analytics: "+string(part), err)
		}
	}
	if err := results.Close(); err != nil {
		return Report{}, readmodel.Fail("analytics", err)
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

// scan reads the rows of family f's query into m.
func (q *Queries) scan(rows pgx.Rows, f Family, m *merger) error {
	if q.rollups && f == Complaints {
		return q.scanComplaintBlocks(rows, m)
	}
	return scanRows(rows, f, m)
}

func scanRows(rows pgx.Rows, f Family, m *merger) error {
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
			var active, contacted, overdue, notDue, over int64
			if err := rows.Scan(&key, &active, &contacted, &overdue, &notDue, &over); err != nil {
				return err
			}
			g := m.group(key)
			g.ActiveAtEnd, g.Contacted, g.FollowUpsOverdue, g.NotDue, g.OverContacted = active, contacted, overdue, notDue, over
			g.ContactCoverage, g.CadenceAdherence = percent(contacted, active), percent(notDue, active)
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
// not by month: $1 to, $2 from, $3 the cadence in days, $4 the most
// outbound contacts in 7 days), and for complaints $3 the SLA targets, $4
// the instant breaches are judged at; by month then the months' keys and
// bounds (churn by month takes only those, contacts by month $1 the
// cadence and $2 the maximum before them).
func (q *Queries) query(f Family, p Params) (string, []any) {
	if q.rollups {
		if sql, args, ok := q.rollupQuery(f, p); ok {
			return sql, args
		}
	}
	args := []any{p.From, p.To}
	if f == Contacts && p.GroupBy != Month {
		// Coverage, overdue follow-ups and adherence hold at the period's
		// end; over-contact is counted within it.
		args = []any{p.To, p.From, q.cadence, q.maxOut}
	}
	if f == Complaints {
		args = append(args, q.targetsJSON(), q.now())
	}
	if p.GroupBy == Month {
		keys, from, to := MonthBounds(p)
		if f == Churn {
			args = nil // the months' own bounds are all they need
		}
		if f == Contacts {
			args = []any{q.cadence, q.maxOut}
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
	if q.rollups {
		if p.GroupBy != All {
			keys = rollupKeys(p.GroupBy)
		}
		r := strings.NewReplacer("{keys}", keys, "{key}", key)
		return onRollupCustomers(r.Replace(grouped[f])), args
	}
	r := strings.NewReplacer("{keys}", keys, "{key}", key)
	return r.Replace(grouped[f]), args
}
