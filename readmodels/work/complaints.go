package work

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

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
	b := &builder{}
	nowArg, slaArg := b.arg(now), b.arg(q.slaJSON)
	// t: the due times of the last opening's targets; x: the next step,
	// its due time, its length (for the 25 %) and the breach, in package
	// sla's SQL (the analytics' too; complaints.Judge in Go).
	head := `SELECT k.complaint_id, k.customer_id, k.category, k.severity, k.status, k.assignee, k.filed_at, k.opened_at,
			k.acknowledged_at, k.resolved_at, x.step, x.due_at
		FROM readmodels.complaints k
		JOIN readmodels.customers c ON c.id = k.customer_id
		CROSS JOIN LATERAL (SELECT ` + sla.FirstResponseDueSQL("k", slaArg) + ` AS fr_due, ` + sla.ResolutionDueSQL("k", slaArg) + ` AS res_due) t
		CROSS JOIN LATERAL (SELECT CASE WHEN k.acknowledged_at IS NULL THEN 'first_response' ELSE 'resolution' END AS step,
			CASE WHEN k.acknowledged_at IS NULL THEN t.fr_due ELSE t.res_due END AS due_at,
			CASE WHEN k.acknowledged_at IS NULL THEN t.fr_due ELSE t.res_due END - k.opened_at AS length,
			(` + sla.FirstResponseBreachSQL("k", slaArg, nowArg) + `) OR (` + sla.ResolutionBreachSQL("k", slaArg, nowArg) + `) AS breached) x`
	b.where = append(b.where, "k.status <> 'resolved'", "c.status <> 'erased'")
	b.customer(f.Filter)
	if f.Severity != "" {
		b.add("k.severity = ?", f.Severity)
	}
	if f.Assignee != "" {
		b.add("k.assignee = ?", f.Assignee)
	}
	switch f.SLA {
	case "", SLAAny:
	case SLABreached:
		b.where = append(b.where, "x.breached")
	case SLAAtRisk:
		b.where = append(b.where, "NOT x.breached AND x.due_at - "+nowArg+"::timestamptz < x.length * "+fmt.Sprint(atRiskShare))
	default:
		return readmodel.Page[OpenComplaint]{}, fmt.Errorf("%w: sla %q", ErrBadRequest, f.SLA)
	}
	if after != nil {
		b.add("(x.due_at, k.complaint_id) > (?, "+b.arg(after.ID)+")", after.At)
	}
	rows, err := q.pool.Query(ctx, b.sql(head, "x.due_at, k.complaint_id", limit), b.args...)
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
