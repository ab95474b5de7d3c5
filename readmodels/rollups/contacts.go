package rollups

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
)

// The contact rollup. Coverage asks which customers active at T had a
// contact in the 30 days before T: distinct customers, not additive, so
// contact_facts is a narrow copy of the contacts (customer, occurred_at)
// for the report to read the window without the wide rows. Overdue
// follow-ups at T are due before T and not done before T, that is those
// due before T less those whose greatest(due_at, done_at) is before T:
// two cumulative counts, kept per group and UTC day in followup_days
// (due on the day of due_at, settled on the day of greatest(due_at,
// done_at)). A follow-up is done by the first contact that occurred at or
// after it was scheduled, as package contacts folds it.

// followUpFact is one follow-up as the rollup keeps it.
type followUpFact struct {
	customer, id       uuid.UUID
	scheduledAt, dueAt time.Time
	doneAt             time.Time // zero while pending
	stored, wasDone    bool
	completedInBatch   bool
}

// contactFold folds a batch's contacts and follow-ups.
type contactFold struct {
	pending  map[uuid.UUID][]*followUpFact
	fresh    []*followUpFact
	contacts struct {
		customer, id []uuid.UUID
		at           []time.Time
	}
}

// loadFollowUps reads the pending follow-ups of the customers ids.
func loadFollowUps(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (*contactFold, error) {
	f := &contactFold{pending: map[uuid.UUID][]*followUpFact{}}
	if len(ids) == 0 {
		return f, nil
	}
	rows, err := tx.Query(ctx, `SELECT customer_id, follow_up_id, scheduled_at, due_at FROM followup_facts WHERE customer_id = ANY($1) AND done_at IS NULL`, ids)
	if err != nil {
		return nil, fmt.Errorf("rollups: load follow-ups: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		fu := &followUpFact{stored: true}
		if err := rows.Scan(&fu.customer, &fu.id, &fu.scheduledAt, &fu.dueAt); err != nil {
			return nil, fmt.Errorf("rollups: load follow-ups: %w", err)
		}
		f.pending[fu.customer] = append(f.pending[fu.customer], fu)
	}
	return f, rows.Err()
}

func (f *contactFold) apply(id uuid.UUID, e domain.Event) {
	switch e := e.(type) {
	case domain.ContactLogged:
		f.contacts.customer, f.contacts.id, f.contacts.at = append(f.contacts.customer, id), append(f.contacts.id, e.ContactID), append(f.contacts.at, e.OccurredAt)
		for _, fu := range f.pending[id] {
			if fu.doneAt.IsZero() && !e.OccurredAt.Before(fu.scheduledAt) {
				fu.doneAt, fu.completedInBatch = e.OccurredAt, true
			}
		}
	case domain.FollowUpScheduled:
		fu := &followUpFact{customer: id, id: e.FollowUpID, scheduledAt: e.OccurredAt, dueAt: e.DueAt}
		f.pending[id] = append(f.pending[id], fu)
		f.fresh = append(f.fresh, fu)
	}
}

// write stores the batch's contacts and follow-ups and adds what changed
// to the day counts under each customer's keys (written before): a new
// follow-up's due day, and the settled day of one done in the batch.
func (f *contactFold) write(ctx context.Context, tx pgx.Tx) error {
	if n := len(f.contacts.id); n > 0 {
		if _, err := tx.Exec(ctx, `
			INSERT INTO contact_facts (customer_id, contact_id, occurred_at)
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[])`, f.contacts.customer, f.contacts.id, f.contacts.at); err != nil {
			return fmt.Errorf("rollups: write %d contacts: %w", n, err)
		}
	}
	var customers, ids, dIDs []uuid.UUID
	var scheduled, due []time.Time
	var done []*time.Time
	var days []string
	var dues, settled []int64
	day := func(t time.Time) string { return t.UTC().Format(time.DateOnly) }
	settle := func(fu *followUpFact) {
		at := fu.dueAt
		if fu.doneAt.After(at) {
			at = fu.doneAt
		}
		dIDs, days, dues, settled = append(dIDs, fu.customer), append(days, day(at)), append(dues, 0), append(settled, 1)
	}
	for _, fu := range f.fresh {
		var d *time.Time
		if !fu.doneAt.IsZero() {
			d = &fu.doneAt
		}
		customers, ids, scheduled, due, done = append(customers, fu.customer), append(ids, fu.id), append(scheduled, fu.scheduledAt), append(due, fu.dueAt), append(done, d)
		dIDs, days, dues, settled = append(dIDs, fu.customer), append(days, day(fu.dueAt)), append(dues, 1), append(settled, 0)
		if d != nil {
			settle(fu)
		}
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, `
			INSERT INTO followup_facts (customer_id, follow_up_id, scheduled_at, due_at, done_at)
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[])`,
			customers, ids, scheduled, due, done); err != nil {
			return fmt.Errorf("rollups: write %d follow-ups: %w", len(ids), err)
		}
	}
	customers, ids, done = customers[:0], ids[:0], done[:0]
	for _, fus := range f.pending {
		for _, fu := range fus {
			if fu.stored && fu.completedInBatch {
				customers, ids, done = append(customers, fu.customer), append(ids, fu.id), append(done, &fu.doneAt)
				settle(fu)
			}
		}
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, `
			UPDATE followup_facts f SET done_at = t.done_at
			FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS t(customer_id, follow_up_id, done_at)
			WHERE f.customer_id = t.customer_id AND f.follow_up_id = t.follow_up_id`, customers, ids, done); err != nil {
			return fmt.Errorf("rollups: complete %d follow-ups: %w", len(ids), err)
		}
	}
	if len(dIDs) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO followup_days AS d (dim, key, day, due, settled)
		SELECT x.dim, x.key, t.day::date, sum(t.due), sum(t.settled)
		FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[]) AS t(id, day, due, settled)
		LEFT JOIN rollup_customers c ON c.id = t.id
		CROSS JOIN LATERAL (VALUES `+everyDim+`) AS x(dim, key)
		GROUP BY 1, 2, 3
		`+addFollowUpsOnConflict, dIDs, days, dues, settled); err != nil {
		return fmt.Errorf("rollups: count %d follow-ups' days: %w", len(dIDs), err)
	}
	return nil
}

const addFollowUpsOnConflict = `ON CONFLICT (dim, key, day) DO UPDATE SET due = d.due + EXCLUDED.due, settled = d.settled + EXCLUDED.settled`

// moveFollowUps is the re-keying of the stored follow-ups of the
// customers m (id, dim, old key, new key).
const moveFollowUps = `
	INSERT INTO followup_days AS d (dim, key, day, due, settled)
	SELECT x.dim, x.key, ev.day, sum(x.sign * ev.due), sum(x.sign * ev.settled)
	FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS m(id, dim, old, new)
	JOIN followup_facts f ON f.customer_id = m.id
	CROSS JOIN LATERAL (VALUES ((f.due_at AT TIME ZONE 'UTC')::date, 1, 0),
		((greatest(f.due_at, f.done_at) AT TIME ZONE 'UTC')::date, 0, 1)) AS ev(day, due, settled)
	CROSS JOIN LATERAL (VALUES (m.dim, m.old, -1), (m.dim, m.new, 1)) AS x(dim, key, sign)
	WHERE ev.day IS NOT NULL AND (ev.settled = 0 OR f.done_at IS NOT NULL)
	GROUP BY 1, 2, 3
	` + addFollowUpsOnConflict
