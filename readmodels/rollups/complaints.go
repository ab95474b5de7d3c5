package rollups

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/complaints"
)

// The complaint rollup. Complaint handling is judged over the complaints
// filed in a period, in their latest state, with medians and SLA breaches
// (judged when the report runs, against the configured targets): none of
// it adds up by day, so complaint_facts is a narrow copy of the documented
// table's timing columns, folded with the domain's own Evolve as package
// complaints folds them, for the reports to scan without the wide rows.
//
// Each fact carries its customer's current group keys (re-keyed with
// rollup_customers) and its timings as the documented SQL computes them
// (generated columns: the first response's instant and both durations in
// seconds), so that one index-only scan of the period's facts answers
// every grouping: no join with the customers, no interval arithmetic per
// row beyond the breach's comparison with the targets.

// complaintKey is one complaint of one customer.
type complaintKey struct{ customer, complaint uuid.UUID }

// complaintFold folds a batch's complaint events.
type complaintFold struct {
	rows  map[complaintKey]*domain.Complaint
	order []complaintKey
	dirty map[complaintKey]bool
}

// loadComplaints reads the stored complaints keys.
func loadComplaints(ctx context.Context, tx pgx.Tx, keys []complaintKey) (*complaintFold, error) {
	f := &complaintFold{rows: map[complaintKey]*domain.Complaint{}, dirty: map[complaintKey]bool{}}
	if len(keys) == 0 {
		return f, nil
	}
	customers, ids := make([]uuid.UUID, len(keys)), make([]uuid.UUID, len(keys))
	for i, k := range keys {
		customers[i], ids[i] = k.customer, k.complaint
	}
	rows, err := tx.Query(ctx, `
		SELECT x.customer_id, x.complaint_id, severity, status, filed_at, opened_at, acknowledged_at, resolved_at, openings, escalations
		FROM complaint_facts x JOIN unnest($1::uuid[], $2::uuid[]) AS t(customer_id, complaint_id)
			ON x.customer_id = t.customer_id AND x.complaint_id = t.complaint_id`, customers, ids)
	if err != nil {
		return nil, fmt.Errorf("rollups: load complaints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			customer               uuid.UUID
			c                      domain.Complaint
			severity, status       string
			acknowledged, resolved *time.Time
			openings, escalations  int32
		)
		if err := rows.Scan(&customer, &c.ID, &severity, &status, &c.FiledAt, &c.OpenedAt, &acknowledged, &resolved, &openings, &escalations); err != nil {
			return nil, fmt.Errorf("rollups: load complaints: %w", err)
		}
		c.Severity, c.Status = domain.Severity(severity), domain.ComplaintStatus(status)
		if acknowledged != nil {
			c.Acknowledged, c.AcknowledgedAt = true, *acknowledged
		}
		if resolved != nil {
			c.ResolvedAt = *resolved
		}
		c.Openings, c.Escalations = int(openings), int(escalations)
		f.rows[complaintKey{customer, c.ID}] = &c
	}
	return f, rows.Err()
}

// apply folds one complaint event with package complaints' own Fold.
func (f *complaintFold) apply(customer, id uuid.UUID, e domain.Event) {
	k := complaintKey{customer, id}
	next, ok := complaints.Fold(f.rows[k], e)
	if !ok {
		return
	}
	f.rows[k] = &next
	if !f.dirty[k] {
		f.dirty[k] = true
		f.order = append(f.order, k)
	}
}

// write upserts the changed complaints.
func (f *complaintFold) write(ctx context.Context, tx pgx.Tx) error {
	n := len(f.order)
	if n == 0 {
		return nil
	}
	customers, ids := make([]uuid.UUID, 0, n), make([]uuid.UUID, 0, n)
	severity, status := make([]string, 0, n), make([]string, 0, n)
	filed, opened := make([]time.Time, 0, n), make([]time.Time, 0, n)
	acknowledged, resolved := make([]*time.Time, 0, n), make([]*time.Time, 0, n)
	openings, escalations := make([]int32, 0, n), make([]int32, 0, n)
	for _, k := range f.order {
		c := f.rows[k]
		customers, ids = append(customers, k.customer), append(ids, k.complaint)
		severity, status = append(severity, string(c.Severity)), append(status, string(c.Status))
		filed, opened = append(filed, c.FiledAt), append(opened, c.OpenedAt)
		var ack, res *time.Time
		if c.Acknowledged {
			ack = &c.AcknowledgedAt
		}
		if !c.ResolvedAt.IsZero() {
			res = &c.ResolvedAt
		}
		acknowledged, resolved = append(acknowledged, ack), append(resolved, res)
		openings, escalations = append(openings, int32(c.Openings)), append(escalations, int32(c.Escalations))
	}
	// The keys are the customers' current ones: Apply writes
	// rollup_customers before the complaints.
	if _, err := tx.Exec(ctx, `
		INSERT INTO complaint_facts AS x (customer_id, complaint_id, severity, status, filed_at, opened_at, acknowledged_at, resolved_at,
			openings, escalations, segment, tier, region, account_manager)
		SELECT t.*, coalesce(c.segment, ''), coalesce(c.tier, ''), coalesce(c.region, ''), c.account_manager
		FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::timestamptz[],
			$8::timestamptz[], $9::int[], $10::int[]) AS t(customer_id, complaint_id, severity, status, filed_at, opened_at,
			acknowledged_at, resolved_at, openings, escalations)
		LEFT JOIN rollup_customers c ON c.id = t.customer_id
		ON CONFLICT (customer_id, complaint_id) DO UPDATE SET status = EXCLUDED.status, opened_at = EXCLUDED.opened_at,
			acknowledged_at = EXCLUDED.acknowledged_at, resolved_at = EXCLUDED.resolved_at, openings = EXCLUDED.openings,
			escalations = EXCLUDED.escalations, segment = EXCLUDED.segment, tier = EXCLUDED.tier, region = EXCLUDED.region,
			account_manager = EXCLUDED.account_manager`,
		customers, ids, severity, status, filed, opened, acknowledged, resolved, openings, escalations); err != nil {
		return fmt.Errorf("rollups: write %d complaints: %w", n, err)
	}
	return nil
}

// rekeyComplaints gives the stored complaints of the customers ids their
// current keys (written to rollup_customers just before).
func rekeyComplaints(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) error {
	if _, err := tx.Exec(ctx, `
		UPDATE complaint_facts x SET segment = c.segment, tier = c.tier, region = c.region, account_manager = c.account_manager
		FROM rollup_customers c
		WHERE c.id = x.customer_id AND x.customer_id = ANY($1)
			AND (x.segment, x.tier, x.region, x.account_manager) IS DISTINCT FROM (c.segment, c.tier, c.region, c.account_manager)`, ids); err != nil {
		return fmt.Errorf("rollups: re-key %d customers' complaints: %w", len(ids), err)
	}
	return nil
}
