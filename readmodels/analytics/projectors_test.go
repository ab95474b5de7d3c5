package analytics_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/projections/projectiontest"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

var activityProjectors = []string{contacts.Name, complaints.Name, surveys.Name, lifecycle.Name}

// TestProjectorsFollowTheDomain projects a generated year of customer
// histories (encoded like the command side's) and compares every row of
// the contacts, follow-ups, complaints, surveys and life-cycle read models
// with the customers folded by the domain; then erases a customer, checks
// that its personal columns are NULL and its figures' inputs unchanged, and
// that a rebuild from the log gives the same tables without resurrecting
// personal data.
func TestProjectorsFollowTheDomain(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	ctx := t.Context()
	appends := projectiontest.NewGenerator(7).Plan(4000)
	if err := projectiontest.Encode(ctx, m.Codec, appends, 4); err != nil {
		t.Fatal(err)
	}
	last, err := projectiontest.AppendAll(ctx, m.Store, appends)
	if err != nil {
		t.Fatal(err)
	}
	wait := func() {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := m.Engine.WaitForPosition(wctx, last); err != nil {
			t.Fatal(err)
		}
	}
	wait()
	history := map[uuid.UUID][]domain.Event{}
	for _, a := range appends {
		history[a.Customer] = append(history[a.Customer], a.Domain...)
	}
	check := func(when string, erased uuid.UUID) {
		t.Helper()
		compareWithDomain(t, m, history, erased, when)
		report, err := m.Engine.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range report.Projectors {
			for _, name := range activityProjectors {
				if pr.Name == name && (!pr.OK() || pr.Streams == 0) {
					t.Errorf("%s: %s does not reconcile with the log: %+v", when, name, pr)
				}
			}
		}
	}
	check("projected", uuid.Nil)

	// Erase the busiest customer.
	var victim uuid.UUID
	for id, events := range history {
		if victim == uuid.Nil || len(events) > len(history[victim]) {
			victim = id
		}
	}
	res, err := m.Commands.Handle(ctx, commands.Request{CustomerID: victim, Command: domain.EraseCustomerData{Reason: "test"},
		CommandID: uuid.New(), Actor: "tester", At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	last = res.Position
	wait()
	history[victim] = append(history[victim], domain.CustomerDataErased{Reason: "test"})
	check("after the erasure", victim)

	var wg sync.WaitGroup
	for _, name := range activityProjectors {
		wg.Go(func() {
			if err := m.Engine.Rebuild(ctx, name, nil); err != nil {
				t.Errorf("rebuild %s: %v", name, err)
			}
		})
	}
	wg.Wait()
	check("after a rebuild", victim)
}

// compareWithDomain checks the read models against the domain's fold of
// each customer's events.
func compareWithDomain(t *testing.T, m *apptest.Main, history map[uuid.UUID][]domain.Event, erased uuid.UUID, when string) {
	t.Helper()
	ctx := t.Context()
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
	rows, err := m.Pool.Query(ctx, `SELECT k.customer_id, k.complaint_id, category, severity, status, description, channel, assignee,
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
	type followUpRow struct {
		due, scheduled time.Time
		done           *time.Time
		note           *string
	}
	followUps := map[complaintKey]followUpRow{}
	rows, err = m.Pool.Query(ctx, `SELECT customer_id, follow_up_id, due_at, scheduled_at, done_at, note FROM readmodels.follow_ups`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k complaintKey
		var r followUpRow
		if err := rows.Scan(&k.customer, &k.id, &r.due, &r.scheduled, &r.done, &r.note); err != nil {
			t.Fatal(err)
		}
		followUps[k] = r
	}
	type perCustomer struct {
		contacts, summaries, surveys, comments int
		lastContact                            *time.Time
		spells                                 int
		open                                   bool
		churnedAt                              *time.Time
	}
	counts := map[uuid.UUID]*perCustomer{}
	get := func(id uuid.UUID) *perCustomer {
		if counts[id] == nil {
			counts[id] = &perCustomer{}
		}
		return counts[id]
	}
	rows, err = m.Pool.Query(ctx, `SELECT customer_id, count(*), count(summary), max(occurred_at) FROM readmodels.contacts GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		var n, summaries int64
		var lastContact *time.Time
		if err := rows.Scan(&id, &n, &summaries, &lastContact); err != nil {
			t.Fatal(err)
		}
		c := get(id)
		c.contacts, c.summaries, c.lastContact = int(n), int(summaries), lastContact
	}
	rows, err = m.Pool.Query(ctx, `SELECT customer_id, count(*), count(comment) FROM readmodels.surveys GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		var n, comments int64
		if err := rows.Scan(&id, &n, &comments); err != nil {
			t.Fatal(err)
		}
		get(id).surveys, get(id).comments = int(n), int(comments)
	}
	rows, err = m.Pool.Query(ctx, `SELECT DISTINCT ON (customer_id) customer_id, spell, active_until IS NULL, churned_at
		FROM readmodels.customer_lifecycle ORDER BY customer_id, spell DESC`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		var spell int32
		c := &perCustomer{}
		if err := rows.Scan(&id, &spell, &c.open, &c.churnedAt); err != nil {
			t.Fatal(err)
		}
		get(id).spells, get(id).open, get(id).churnedAt = int(spell), c.open, c.churnedAt
	}

	same := func(a time.Time, b *time.Time) bool { return (a.IsZero() && b == nil) || (b != nil && a.Equal(*b)) }
	seenComplaints, seenFollowUps := 0, 0
	for id, events := range history {
		c := domain.Fold(events...)
		isErased := id == erased
		var contactsLogged, surveysAnswered, reactivations int
		var lastContact time.Time
		for _, e := range events {
			switch e := e.(type) {
			case domain.ContactLogged:
				contactsLogged++
				if e.OccurredAt.After(lastContact) {
					lastContact = e.OccurredAt
				}
			case domain.SurveyRecorded:
				surveysAnswered++
			case domain.CustomerReactivated:
				reactivations++
			}
		}
		got := get(id)
		if got.contacts != contactsLogged || !same(lastContact, got.lastContact) || got.surveys != surveysAnswered {
			errorf("customer %s: %d contacts (last %v), %d surveys; the domain says %d (last %v), %d", id, got.contacts, got.lastContact,
				got.surveys, contactsLogged, lastContact, surveysAnswered)
		}
		if isErased && (got.summaries != 0 || got.comments != 0) || !isErased && (got.summaries != got.contacts || got.comments != got.surveys) {
			errorf("customer %s (erased %v): %d summaries of %d contacts, %d comments of %d surveys", id, isErased, got.summaries, got.contacts, got.comments, got.surveys)
		}
		if got.spells != 1+reactivations || got.open != (c.Status == domain.StatusActive || c.Status == domain.StatusErased && c.ChurnedAt.IsZero()) ||
			!c.ChurnedAt.IsZero() && !same(c.ChurnedAt, got.churnedAt) {
			errorf("customer %s (%s, churned %v): %d spells, open %v, churned %v", id, c.Status, c.ChurnedAt, got.spells, got.open, got.churnedAt)
		}
		for _, dc := range c.Complaints {
			seenComplaints++
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
				wantDescription && *r.description != dc.Description || deref(r.assignee) != dc.Assignee || deref(r.channel) != string(dc.Channel) ||
				r.timelineRows != steps {
				errorf("complaint %s: read model %+v, domain %+v (%d steps)", dc.ID, r, dc, steps)
			}
		}
		for _, f := range c.FollowUps {
			seenFollowUps++
			r, ok := followUps[complaintKey{id, f.ID}]
			if !ok {
				errorf("follow-up %s missing", f.ID)
				continue
			}
			if !r.due.Equal(f.DueAt) || !r.scheduled.Equal(f.ScheduledAt) || f.Done != (r.done != nil) || f.Done && !r.done.Equal(f.DoneAt) ||
				(r.note != nil) != (f.Note != "" && !isErased) {
				errorf("follow-up %s: read model %+v, domain %+v", f.ID, r, f)
			}
		}
	}
	if seenComplaints != len(complaintRows) || seenFollowUps != len(followUps) || seenComplaints == 0 || seenFollowUps == 0 {
		errorf("%d complaints and %d follow-ups in the read models, %d and %d in the log", len(complaintRows), len(followUps), seenComplaints, seenFollowUps)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestActiveCustomerCounts cross-checks "active at an instant" in SQL
// with the domain: for instants across the generated year, the customers
// the life cycles call active are exactly those whose events up to then
// fold to an active (not churned) customer.
func TestActiveCustomerCounts(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	ctx := t.Context()
	appends := projectiontest.NewGenerator(11).Plan(2000)
	if err := projectiontest.Encode(ctx, m.Codec, appends, 4); err != nil {
		t.Fatal(err)
	}
	last, err := projectiontest.AppendAll(ctx, m.Store, appends)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := m.Engine.WaitForPosition(wctx, last); err != nil {
		t.Fatal(err)
	}
	history := map[uuid.UUID][]domain.Event{}
	for _, a := range appends {
		history[a.Customer] = append(history[a.Customer], a.Domain...)
	}
	start := time.Now().AddDate(-1, 0, 0)
	for day := 0; day <= 400; day += 23 {
		at := start.AddDate(0, 0, day)
		want := 0
		for _, events := range history {
			// The generator dates every event after the one before, so
			// the state at an instant folds the events up to it.
			var upTo []domain.Event
			for _, e := range events {
				if !e.BusinessTime().After(at) {
					upTo = append(upTo, e)
				}
			}
			if domain.Fold(upTo...).Status == domain.StatusActive {
				want++
			}
		}
		var got int
		if err := m.Pool.QueryRow(ctx, `SELECT count(*) FROM readmodels.customer_lifecycle
			WHERE active_from <= $1 AND (active_until IS NULL OR active_until > $1)`, at).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("active at %s: %d, the domain says %d", at.Format(time.DateOnly), got, want)
		}
	}
}
