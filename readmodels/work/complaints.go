package work

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/sla"
)

// SLA selections of the complaint queue.
const (
	SLAAny      = "any"
	SLABreached = "breached"
	SLAAtRisk   = "at_risk"
)

// Steps a complaint's next SLA target is for.
const (
	StepFirstResponse = "first_response"
	StepResolution    = "resolution"
)

// ComplaintFilter narrows the complaint queue.
type ComplaintFilter struct {
	Filter
	// SLA is SLAAny (or ""), SLABreached or SLAAtRisk.
	SLA      string
	Severity string
	Assignee string
}

// OpenComplaint is a row of the complaint queue.
type OpenComplaint struct {
	ID         uuid.UUID
	CustomerID uuid.UUID
	Category   string
	Severity   string
	Status     string
	Assignee   *string
	FiledAt    time.Time
	OpenedAt   time.Time
	// AcknowledgedAt is the first response of the last opening.
	AcknowledgedAt *time.Time
	// NextStep is the step whose target comes next: the first response
	// until there was one, then the resolution.
	NextStep string
	// DueAt is that target; SecondsLeft is DueAt − now (negative when past).
	DueAt       time.Time
	SecondsLeft int64
	// AtRisk: not breached, and less than 25 % of the next target's time
	// is left.
	AtRisk bool
	SLA    complaints.SLAState
}

// atRiskShare is PRODUCT.md's "less than 25 % of the target left".
const atRiskShare = 0.25

// Complaints returns the open complaints, the most urgent first: by the
// time of their next SLA target (the past ones first, the longest past
// first), then id. Complaints of erased customers are left out (no
// command can work them).
func (q *Queries) Complaints(ctx context.Context, f ComplaintFilter, limit int, cursor string) (readmodel.Page[OpenComplaint], error) {
	limit, err := checkLimit(limit)
	if err != nil {
		return readmodel.Page[OpenComplaint]{}, err
	}
	after, err := ComplaintsCursor.Continue(cursor, limit)
	if err != nil {
		return readmodel.Page[OpenComplaint]{}, fmt.Errorf("work: complaints: %w", err)
	}
	now := q.now()
	sql, args, err := q.complaintsSQL(f, after, now, limit)
	if err != nil {
		return readmodel.Page[OpenComplaint]{}, err
	}
	rows, err := q.pool.Query(ctx, sql, args...)
	items, err := collect(rows, err, func(row pgx.CollectableRow) (OpenComplaint, error) {
		var (
			c          OpenComplaint
			resolvedAt *time.Time
		)
		err := row.Scan(&c.ID, &c.CustomerID, &c.Category, &c.Severity, &c.Status, &c.Assignee, &c.FiledAt, &c.OpenedAt,
			&c.AcknowledgedAt, &resolvedAt, &c.NextStep, &c.DueAt)
		c.FiledAt, c.OpenedAt, c.DueAt, c.AcknowledgedAt = c.FiledAt.UTC(), c.OpenedAt.UTC(), c.DueAt.UTC(), readmodel.UTC(c.AcknowledgedAt)
		c.SecondsLeft = int64(c.DueAt.Sub(now) / time.Second)
		c.SLA = complaints.Judge(q.targets, c.Severity, c.OpenedAt, c.AcknowledgedAt, resolvedAt, now)
		length := complaints.Target(q.targets, c.Severity).Resolution
		if c.NextStep == StepFirstResponse {
			length = complaints.Target(q.targets, c.Severity).FirstResponse
		}
		c.AtRisk = !c.SLA.Breached() && float64(c.DueAt.Sub(now)) < float64(length)*atRiskShare
		return c, err
	})
	if err != nil {
		return readmodel.Page[OpenComplaint]{}, readmodel.Fail("work: complaints", err)
	}
	return readmodel.PageOf(items, limit, ComplaintsCursor, func(c OpenComplaint) readmodel.Key {
		return readmodel.Key{At: c.DueAt, ID: c.ID}
	}), nil
}

// severities are the severities the queue has a branch for, the ones the
// SLA targets name; a complaint of any other severity (none, as Decide
// validates it) is answered by the queue's last branch.
var severities = []string{"critical", "high", "medium", "low"}

// complaintsSQL is the complaint queue's query. The next target of an
// open complaint is its last opening plus a target that depends only on
// its severity and on whether it had its first response, so within each
// of those 8 classes the order of due_at is the order of opened_at: one
// branch per class walks complaints_queue_first_idx (no first response
// yet) or complaints_queue_next_idx (acknowledged) in that order, the
// cursor and the SLA selection move to opened_at (due_at > x is
// opened_at > x − target), and the first limit+1 of their merge are the
// page. A ninth branch keeps the rows no class holds (an open complaint
// with a resolution time, or an unknown severity: the domain's fold
// writes neither) on the general query, through the partial index
// complaints_queue_odd_idx, so the answer is the definition's whatever
// the table holds.
//
// An owner (a member of the customer's team) is a property of the
// customer: the branches would each read the open complaints of every
// customer to find a page of the member's, so the general query answers
// alone, from the member's customers (customers_team_idx) to their
// complaints. An assignee is the complaint's own: the branches walk
// complaints_queue_{first,next}_assignee_idx, the same order behind the
// assignee.
//
// Every branch selects with the definition's own SQL (package sla's due
// times and breaches, the 25 % rule); the ranges on opened_at added
// beside it are implied by it for the rows of the branch (open, no
// resolution time): breached without a first response is now past the
// earlier target, at risk is not past the step's target.
func (q *Queries) complaintsSQL(f ComplaintFilter, after *readmodel.Key, now time.Time, limit int) (string, []any, error) {
	switch f.SLA {
	case "", SLAAny, SLABreached, SLAAtRisk:
	default:
		return "", nil, fmt.Errorf("%w: sla %q", ErrBadRequest, f.SLA)
	}
	b := &builder{}
	b.customer(f.Filter)
	if f.Assignee != "" {
		b.add("k.assignee = ?", f.Assignee)
	}
	common := ""
	for _, w := range b.where {
		common += " AND " + w
	}
	slaArg, limitArg := b.arg(q.slaJSON), b.arg(limit+1)
	nowArg := ""
	if f.SLA == SLABreached || f.SLA == SLAAtRisk {
		nowArg = b.arg(now) // only a selection judges at now: an unused parameter has no type
	}
	var atArg, idArg string
	if after != nil {
		atArg, idArg = b.arg(after.At), b.arg(after.ID)
	}
	frDue, resDue := sla.FirstResponseDueSQL("k", slaArg), sla.ResolutionDueSQL("k", slaArg)
	breached := `((` + sla.FirstResponseBreachSQL("k", slaArg, nowArg) + `) OR (` + sla.ResolutionBreachSQL("k", slaArg, nowArg) + `))`
	step := `CASE WHEN k.acknowledged_at IS NULL THEN 'first_response' ELSE 'resolution' END`
	due := `CASE WHEN k.acknowledged_at IS NULL THEN ` + frDue + ` ELSE ` + resDue + ` END`
	selection := ""
	switch f.SLA {
	case SLABreached:
		selection = " AND " + breached
	case SLAAtRisk:
		selection = " AND NOT " + breached + " AND " + due + " - " + nowArg + "::timestamptz < (" + due + " - k.opened_at) * " + fmt.Sprint(atRiskShare)
	}
	head := `SELECT k.complaint_id, k.customer_id, k.category, k.severity, k.status, k.assignee, k.filed_at, k.opened_at,
			k.acknowledged_at, k.resolved_at, ` + step + ` AS step, ` + due + ` AS due_at
		FROM readmodels.complaints k JOIN readmodels.customers c ON c.id = k.customer_id`
	secs := func(d time.Duration) string { return b.arg(float64(int64(d.Seconds()))) }
	var branches []string
	for _, sev := range severities {
		if f.Severity != "" && f.Severity != sev || f.Owner != "" {
			continue
		}
		t := q.targets[domain.Severity(sev)]
		for _, first := range []bool{true, false} {
			class := `k.acknowledged_at IS NOT NULL`
			target := t.Resolution
			if first {
				class, target = `k.acknowledged_at IS NULL`, t.FirstResponse
			}
			// The target as an interval, a parameter only where used (an
			// unused parameter has no type).
			length := func() string { return `make_interval(secs => ` + secs(target) + `::float8)` }
			ranges := ""
			switch {
			case f.SLA == SLAAtRisk:
				ranges = ` AND k.opened_at >= ` + nowArg + `::timestamptz - ` + length()
			case f.SLA == SLABreached && first:
				ranges = ` AND k.opened_at < ` + nowArg + `::timestamptz - make_interval(secs => ` + secs(min(t.FirstResponse, t.Resolution)) + `::float8)`
			}
			cursor := ""
			if after != nil {
				cursor = ` AND (k.opened_at, k.complaint_id) > (` + atArg + `::timestamptz - ` + length() + `, ` + idArg + `::uuid)`
			}
			branches = append(branches, `(`+head+`
			WHERE k.status <> 'resolved' AND k.resolved_at IS NULL AND k.severity = `+b.arg(sev)+` AND `+class+`
				AND c.status <> 'erased'`+common+selection+ranges+cursor+`
			ORDER BY k.opened_at, k.complaint_id LIMIT `+limitArg+`)`)
		}
	}
	odd := ` AND (k.resolved_at IS NOT NULL OR k.severity NOT IN ('critical', 'high', 'medium', 'low'))`
	if f.Owner != "" {
		odd = "" // the general query answers alone
	}
	if f.Severity != "" {
		odd += ` AND k.severity = ` + b.arg(f.Severity)
	}
	cursor := ""
	if after != nil {
		cursor = ` AND (` + due + `, k.complaint_id) > (` + atArg + `::timestamptz, ` + idArg + `::uuid)`
	}
	branches = append(branches, `(`+head+`
			WHERE k.status <> 'resolved'`+odd+`
				AND c.status <> 'erased'`+common+selection+cursor+`
			ORDER BY 12, k.complaint_id LIMIT `+limitArg+`)`)
	return `SELECT * FROM (` + strings.Join(branches, "\n\t\tUNION ALL ") + `) u ORDER BY u.due_at, u.complaint_id LIMIT ` + limitArg, b.args, nil
}
