package complaints_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// TestProjectorFollowsTheDomain projects a generated year of customer
// histories (encoded like the command side's) and compares every complaint
// row, and the length of its timeline, with the complaints folded by the
// domain; then erases a customer, checks that its personal columns are
// NULL and the rest unchanged, and that a rebuild from the log gives the
// same tables without resurrecting personal data.
func TestProjectorFollowsTheDomain(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	h := m.Generate(t, 7, 4000)
	check := func(when string, erased uuid.UUID) {
		t.Helper()
		compareWithDomain(t, m, h.Events, erased, when)
		m.CheckReconciles(t, when, complaints.Name)
	}
	check("projected", uuid.Nil)
	victim := h.EraseBusiest(t)
	check("after the erasure", victim)
	m.Rebuild(t, complaints.Name)
	check("after a rebuild", victim)
}

// compareWithDomain checks the complaints against the domain's fold of
// each customer's events.
func compareWithDomain(t *testing.T, m *apptest.Main, history map[uuid.UUID][]domain.Event, erased uuid.UUID, when string) {
	t.Helper()
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf(when+": "+format, args...)
	}
	type complaintKey struct{ customer, id uuid.UUID }
	type complaintRow struct {
		category, severity, status          string
		description, channel, assignee      *string
		filed, opened                       time.Time
		acknowledged, resolved              *time.Time
		openings, escalations, timelineRows int
	}
	complaintRows := map[complaintKey]complaintRow{}
	rows, err := m.Pool.Query(t.Context(), `SELECT k.customer_id, k.complaint_id, category, severity, status, description, channel, assignee,
		filed_at, opened_at, acknowledged_at, resolved_at, openings, escalations,
		(SELECT count(*) FROM readmodels.complaint_events e WHERE e.customer_id = k.customer_id AND e.complaint_id = k.complaint_id)
		FROM readmodels.complaints k`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k complaintKey
		var r complaintRow
		var openings, escalations int32
		var timeline int64
		if err := rows.Scan(&k.customer, &k.id, &r.category, &r.severity, &r.status, &r.description, &r.channel, &r.assignee,
			&r.filed, &r.opened, &r.acknowledged, &r.resolved, &openings, &escalations, &timeline); err != nil {
			t.Fatal(err)
		}
		r.openings, r.escalations, r.timelineRows = int(openings), int(escalations), int(timeline)
		complaintRows[k] = r
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}

	same := func(a time.Time, b *time.Time) bool { return (a.IsZero() && b == nil) || (b != nil && a.Equal(*b)) }
	seen := 0
	for id, events := range history {
		c := domain.Fold(events...)
		isErased := id == erased
		for _, dc := range c.Complaints {
			seen++
			r, ok := complaintRows[complaintKey{id, dc.ID}]
			if !ok {
				errorf("complaint %s missing", dc.ID)
				continue
			}
			var ack time.Time
			if dc.Acknowledged {
				ack = dc.AcknowledgedAt
			}
			steps := 0
			for _, e := range events {
				switch e := e.(type) {
				case domain.ComplaintFiled:
					steps += b2i(e.ComplaintID == dc.ID)
				case domain.ComplaintAssigned:
					steps += b2i(e.ComplaintID == dc.ID)
				case domain.ComplaintAcknowledged:
					steps += b2i(e.ComplaintID == dc.ID)
				case domain.ComplaintEscalated:
					steps += b2i(e.ComplaintID == dc.ID)
				case domain.ComplaintResolved:
					steps += b2i(e.ComplaintID == dc.ID)
				case domain.ComplaintReopened:
					steps += b2i(e.ComplaintID == dc.ID)
				}
			}
			wantDescription := dc.Description != "" && !isErased
			if r.category != dc.Category || r.severity != string(dc.Severity) || r.status != string(dc.Status) ||
				!r.filed.Equal(dc.FiledAt) || !r.opened.Equal(dc.OpenedAt) || !same(ack, r.acknowledged) || !same(dc.ResolvedAt, r.resolved) ||
				r.openings != dc.Openings || r.escalations != dc.Escalations || (r.description != nil) != wantDescription ||
				wantDescription && *r.description != dc.Description || readmodel.Deref(r.assignee) != dc.Assignee ||
				readmodel.Deref(r.channel) != string(dc.Channel) || r.timelineRows != steps {
				errorf("complaint %s: read model %+v, domain %+v (%d steps)", dc.ID, r, dc, steps)
			}
		}
	}
	if seen != len(complaintRows) || seen == 0 {
		errorf("%d complaints in the read model, %d in the log", len(complaintRows), seen)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
