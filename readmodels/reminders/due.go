package reminders

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// reminder is one reminder found due: what identifies it (kind, subject,
// basis), its customer and due time, and the event that says it.
type reminder struct {
	kind     string
	subject  uuid.UUID
	basis    time.Time
	customer uuid.UUID
	due      time.Time
	event    domain.Event
}

// atRiskShare is PRODUCT.md's "less than 25 % of the target left": a step
// is at risk from opened_at + 75 % of its target.
const atRiskShare = 0.25

// kinds of the complaint reminders, one per step.
func slaKind(kind, step string) string { return kind + "/" + step }

// scope is what a scan looks at: every reminder due from floor on (a
// full scan) or those due since since, and those of the customers touched
// since the checkpoint (known unless it is the first scan, or too many
// were touched), due from floor on.
type scope struct {
	floor     time.Time
	since     *time.Time
	customers []uuid.UUID
}

// due finds the reminders of the scope whose time came by now and that
// are not recorded as emitted: each query walks the index its work queue
// uses over the range of due times asked, or, for the touched customers,
// their rows by customer id. complete is false when a query hit the batch.
func (s *Scheduler) due(ctx context.Context, sc scope, now time.Time) (out []reminder, complete bool, err error) {
	floor := sc.floor
	since := floor // a full scan: everything due from the floor on
	if sc.since != nil && sc.since.After(floor) {
		since = *sc.since
	}
	out, complete, err = s.dueIn(ctx, &since, nil, now)
	if err != nil || len(sc.customers) == 0 {
		return out, complete, err
	}
	more, done, err := s.dueIn(ctx, &floor, sc.customers, now)
	if err != nil {
		return nil, false, err
	}
	// A reminder both due since the high-water time and of a touched
	// customer is found twice: emit it once.
	seen := map[uuid.UUID]bool{}
	var all []reminder
	for _, r := range append(out, more...) {
		id := domain.ReminderID(r.kind, r.subject, r.basis)
		if !seen[id] {
			seen[id] = true
			all = append(all, r)
		}
	}
	return all, complete && done, nil
}

// dueIn is due over one part of a scope: due from since on, for some
// customers (or all).
func (s *Scheduler) dueIn(ctx context.Context, since *time.Time, customers []uuid.UUID, now time.Time) (out []reminder, complete bool, err error) {
	complete = true
	add := func(found []reminder, err error) error {
		if err != nil {
			return err
		}
		if len(found) >= s.cfg.Batch {
			complete = false
		}
		out = append(out, found...)
		return nil
	}
	for _, sev := range []domain.Severity{domain.SeverityCritical, domain.SeverityHigh, domain.SeverityMedium, domain.SeverityLow} {
		target := s.cfg.SLA[sev]
		for _, step := range []struct {
			name   string
			length time.Duration
		}{{domain.SLAStepFirstResponse, target.FirstResponse}, {domain.SLAStepResolution, target.Resolution}} {
			if step.length <= 0 {
				continue
			}
			if err := add(s.complaints(ctx, domain.ReminderSLABreached, sev, step.name, step.length, step.length, since, customers, now)); err != nil {
				return nil, false, err
			}
			riskFrom := step.length - time.Duration(float64(step.length)*atRiskShare)
			if err := add(s.complaints(ctx, domain.ReminderSLAAtRisk, sev, step.name, step.length, riskFrom, since, customers, now)); err != nil {
				return nil, false, err
			}
		}
	}
	if err := add(s.followUps(ctx, since, customers, now)); err != nil {
		return nil, false, err
	}
	for _, tier := range []string{"A", "B", "C", ""} {
		if err := add(s.contactDue(ctx, tier, since, customers, now)); err != nil {
			return nil, false, err
		}
	}
	return out, complete, nil
}

// complaints finds the open complaints of one severity whose step is
// pending and whose reminder of kind came (opened_at + after) by now, and
// not before since: after is the target for a breach (strictly past it,
// as package sla judges a breach), 75 % of it for at risk — which holds
// only while the target itself has not passed. The bounds are computed
// here as a range of opened_at, which complaints_open_idx serves.
func (s *Scheduler) complaints(ctx context.Context, kind string, sev domain.Severity, step string, length, after time.Duration, since *time.Time, customers []uuid.UUID, now time.Time) ([]reminder, error) {
	k := slaKind(kind, step)
	upper := now.Add(-after) // opened_at < upper: the time came
	var lower *time.Time     // opened_at >= lower
	if kind == domain.ReminderSLAAtRisk {
		t := now.Add(-length) // not breached yet
		lower = &t
	}
	if since != nil {
		if t := since.Add(-after); lower == nil || t.After(*lower) {
			lower = &t
		}
	}
	pending := `k.status <> 'resolved'`
	if step == domain.SLAStepFirstResponse {
		pending += ` AND k.acknowledged_at IS NULL`
	}
	args := []any{string(sev), upper, sinceArg(lower), k, s.cfg.Batch, customersArg(customers)}
	if kind == domain.ReminderSLABreached && customers != nil {
		// A step done after its deadline was breached all the same (as
		// package sla judges it): when the scheduler was down or behind at
		// the deadline, the late answer touched the customer, and this is
		// where the breach is found. Only the touched customers' rows are
		// read this way, by customer; at risk needs the step still pending.
		done := `k.resolved_at`
		if step == domain.SLAStepFirstResponse {
			done = `k.acknowledged_at, k.resolved_at`
		}
		pending = `coalesce(` + done + `, 'infinity'::timestamptz) > k.opened_at + $7::bigint * interval '1 microsecond'`
		args = append(args, length.Microseconds())
	}
	rows, err := s.cfg.Pool.Query(ctx, `
		SELECT k.complaint_id, k.customer_id, k.opened_at, c.last_revision
		FROM readmodels.complaints k
		JOIN readmodels.customers c ON c.id = k.customer_id
		WHERE `+pending+` AND k.severity = $1 AND k.opened_at < $2 AND ($3::timestamptz IS NULL OR k.opened_at >= $3)
		  AND ($6::uuid[] IS NULL OR k.customer_id = ANY($6)) AND c.status <> 'erased'
		  AND NOT EXISTS (SELECT 1 FROM rapport.reminders r WHERE r.kind = $4 AND r.subject_id = k.complaint_id AND r.basis = k.opened_at)
		ORDER BY k.opened_at, k.complaint_id
		LIMIT $5`, args...)
	return collect(rows, err, "complaints", func(row pgx.CollectableRow) (reminder, error) {
		var (
			r        reminder
			revision int64
		)
		err := row.Scan(&r.subject, &r.customer, &r.basis, &revision)
		r.basis = r.basis.UTC()
		r.kind = k
		subject := domain.ReminderSubject{CustomerID: r.customer, CustomerRevision: uint64(revision)}
		due := r.basis.Add(length)
		if kind == domain.ReminderSLABreached {
			r.due = due
			r.event = domain.ComplaintSLABreached{ReminderSubject: subject, ComplaintID: r.subject, Severity: sev, Step: step, OpenedAt: r.basis, DueAt: due, OccurredAt: due}
		} else {
			r.due = r.basis.Add(after)
			r.event = domain.ComplaintSLAAtRisk{ReminderSubject: subject, ComplaintID: r.subject, Severity: sev, Step: step, OpenedAt: r.basis, DueAt: due, OccurredAt: r.due}
		}
		return r, err
	})
}

// followUps finds the follow-ups due by now (and since since) that no
// contact has done, through follow_ups_pending_idx.
func (s *Scheduler) followUps(ctx context.Context, since *time.Time, customers []uuid.UUID, now time.Time) ([]reminder, error) {
	rows, err := s.cfg.Pool.Query(ctx, `
		SELECT fu.follow_up_id, fu.customer_id, fu.due_at, fu.by, c.last_revision
		FROM readmodels.follow_ups fu
		JOIN readmodels.customers c ON c.id = fu.customer_id
		WHERE fu.done_at IS NULL AND fu.due_at <= $1 AND ($2::timestamptz IS NULL OR fu.due_at >= $2) AND c.status <> 'erased'
		  AND ($5::uuid[] IS NULL OR fu.customer_id = ANY($5))
		  AND NOT EXISTS (SELECT 1 FROM rapport.reminders r WHERE r.kind = $3 AND r.subject_id = fu.follow_up_id AND r.basis = fu.due_at)
		ORDER BY fu.due_at, fu.follow_up_id
		LIMIT $4`, now, sinceArg(since), domain.ReminderFollowUpDue, s.cfg.Batch, customersArg(customers))
	return collect(rows, err, "follow-ups", func(row pgx.CollectableRow) (reminder, error) {
		var (
			r        reminder
			by       string
			revision int64
		)
		err := row.Scan(&r.subject, &r.customer, &r.basis, &by, &revision)
		r.basis = r.basis.UTC()
		r.kind, r.due = domain.ReminderFollowUpDue, r.basis
		r.event = domain.FollowUpDue{ReminderSubject: domain.ReminderSubject{CustomerID: r.customer, CustomerRevision: uint64(revision)}, FollowUpID: r.subject, By: by, DueAt: r.basis}
		return r, err
	})
}

// contactDue finds the active customers of one tier ("" for every tier
// but A, B and C) that became due for a contact by now (and since since):
// coalesce(last_contact_at, registered_at) + (cadence + 1) × 24 h, the
// work queue's rule (cadence.DueAtSQL), through customers_contact_due_*_idx.
// The basis is that last contact (or registration): a new contact starts
// a new one.
func (s *Scheduler) contactDue(ctx context.Context, tier string, since *time.Time, customers []uuid.UUID, now time.Time) ([]reminder, error) {
	class := `c.tier NOT IN ('A', 'B', 'C')`
	if tier != "" {
		class = `c.tier = '` + tier + `'`
	}
	days := s.cfg.Cadence.Days(tier)
	lag := time.Duration(days+1) * 24 * time.Hour
	const base = `coalesce(c.last_contact_at, c.registered_at)`
	var lower *time.Time
	if since != nil {
		t := since.Add(-lag)
		lower = &t
	}
	rows, err := s.cfg.Pool.Query(ctx, `
		SELECT c.id, c.tier, c.last_contact_at, `+base+`, c.last_revision
		FROM readmodels.customers c
		WHERE c.status = 'active' AND `+class+` AND `+base+` <= $1
		  AND ($2::timestamptz IS NULL OR `+base+` >= $2) AND ($5::uuid[] IS NULL OR c.id = ANY($5))
		  AND NOT EXISTS (SELECT 1 FROM rapport.reminders r WHERE r.kind = $3 AND r.subject_id = c.id AND r.basis = `+base+`)
		ORDER BY `+base+`, c.id
		LIMIT $4`, now.Add(-lag), sinceArg(lower), domain.ReminderContactDue, s.cfg.Batch, customersArg(customers))
	return collect(rows, err, "contact-due", func(row pgx.CollectableRow) (reminder, error) {
		var (
			r        reminder
			tierOf   string
			last     *time.Time
			revision int64
		)
		err := row.Scan(&r.subject, &tierOf, &last, &r.basis, &revision)
		r.basis, last = r.basis.UTC(), readmodel.UTC(last)
		r.customer, r.kind, r.due = r.subject, domain.ReminderContactDue, r.basis.Add(lag)
		r.event = domain.ContactDue{ReminderSubject: domain.ReminderSubject{CustomerID: r.customer, CustomerRevision: uint64(revision)}, Tier: tierOf, CadenceDays: days, LastContactAt: last, DueAt: r.due}
		return r, err
	})
}

func customersArg(customers []uuid.UUID) any {
	if customers == nil {
		return nil
	}
	return customers
}

func sinceArg(since *time.Time) any {
	if since == nil {
		return nil
	}
	return *since
}

func collect(rows pgx.Rows, err error, what string, scan func(pgx.CollectableRow) (reminder, error)) ([]reminder, error) {
	if err != nil {
		return nil, readmodel.Fail("reminders: "+what, err)
	}
	out, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, readmodel.Fail("reminders: "+what, err)
	}
	return out, nil
}
