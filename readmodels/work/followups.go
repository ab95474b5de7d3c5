package work

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// States of a pending follow-up, judged at the query's time now (UTC
// days).
const (
	// FollowUpOverdue: due before now.
	FollowUpOverdue = "overdue"
	// FollowUpDueToday: due from now to the end of today.
	FollowUpDueToday = "due_today"
	// FollowUpUpcoming: due from tomorrow on.
	FollowUpUpcoming = "upcoming"
)

// FollowUpFilter narrows the follow-up queue.
type FollowUpFilter struct {
	Filter
	// State is "" (all pending), FollowUpOverdue, FollowUpDueToday or
	// FollowUpUpcoming.
	State string
	// By is the staff member the follow-up is for.
	By string
}

// PendingFollowUp is a row of the follow-up queue.
type PendingFollowUp struct {
	ID          uuid.UUID
	CustomerID  uuid.UUID
	DueAt       time.Time
	By          string
	Note        *string
	ScheduledAt time.Time
	State       string
}

// FollowUps returns the follow-ups no contact has completed, earliest due
// first (then id). Follow-ups of erased customers are left out.
//
// Pending is done_at IS NULL: the analytics' predicate (not done before
// the instant asked) at now, since a contact is never dated after the
// moment it is logged; this form is what the partial index
// follow_ups_pending_idx serves.
func (q *Queries) FollowUps(ctx context.Context, f FollowUpFilter, limit int, cursor string) (readmodel.Page[PendingFollowUp], error) {
	limit, err := checkLimit(limit)
	if err != nil {
		return readmodel.Page[PendingFollowUp]{}, err
	}
	after, err := FollowUpsCursor.Continue(cursor, limit)
	if err != nil {
		return readmodel.Page[PendingFollowUp]{}, fmt.Errorf("work: follow-ups: %w", err)
	}
	now := q.now().UTC()
	tomorrow := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	b := &builder{}
	head := `SELECT fu.follow_up_id, fu.customer_id, fu.due_at, fu.by, fu.note, fu.scheduled_at
		FROM readmodels.follow_ups fu
		JOIN readmodels.customers c ON c.id = fu.customer_id`
	b.where = append(b.where, "fu.done_at IS NULL", "c.status <> 'erased'")
	b.customer(f.Filter)
	switch f.State {
	case "":
	case FollowUpOverdue:
		b.add("fu.due_at < ?", now)
	case FollowUpDueToday:
		b.add("fu.due_at >= ?", now)
		b.add("fu.due_at < ?", tomorrow)
	case FollowUpUpcoming:
		b.add("fu.due_at >= ?", tomorrow)
	default:
		return readmodel.Page[PendingFollowUp]{}, fmt.Errorf("%w: state %q", ErrBadRequest, f.State)
	}
	if f.By != "" {
		b.add("fu.by = ?", f.By)
	}
	if after != nil {
		b.add("(fu.due_at, fu.follow_up_id) > (?, "+b.arg(after.ID)+")", after.At)
	}
	rows, err := q.pool.Query(ctx, b.sql(head, "fu.due_at, fu.follow_up_id", limit), b.args...)
	items, err := collect(rows, err, func(row pgx.CollectableRow) (PendingFollowUp, error) {
		var p PendingFollowUp
		err := row.Scan(&p.ID, &p.CustomerID, &p.DueAt, &p.By, &p.Note, &p.ScheduledAt)
		p.DueAt, p.ScheduledAt = p.DueAt.UTC(), p.ScheduledAt.UTC()
		switch {
		case p.DueAt.Before(now):
			p.State = FollowUpOverdue
		case p.DueAt.Before(tomorrow):
			p.State = FollowUpDueToday
		default:
			p.State = FollowUpUpcoming
		}
		return p, err
	})
	if err != nil {
		return readmodel.Page[PendingFollowUp]{}, readmodel.Fail("work: follow-ups", err)
	}
	return readmodel.PageOf(items, limit, FollowUpsCursor, func(p PendingFollowUp) readmodel.Key {
		return readmodel.Key{At: p.DueAt, ID: p.ID}
	}), nil
}
