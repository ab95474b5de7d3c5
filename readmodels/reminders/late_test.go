package reminders_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/domain/integration"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/reminders"
	"github.com/rapport-crm/rapport/readmodels/sla"
)

// What a scan after the first finds besides what fell due since the
// high-water time: facts recorded late (a complaint filed hours after it
// was made; a new tier that makes a customer due in the past) through the
// customers the log touched, a reopened complaint's new opening, and the
// reminders a changed SLA target makes due (a full scan). What it never
// emits: reminders due before the back-fill floor of the very first scan,
// and anything while the read models are behind the log.
func TestRemindersFollowLateFactsAndChanges(t *testing.T) {
	apptest.ForEachStore(t, func(t *testing.T, m *apptest.Main) {
		w := newWorld(t, m)
		backfill := func(c *reminders.Config) { c.Backfill = 24 * time.Hour }
		// Old: due for contact since t0-15d, its complaint breached 3 days
		// ago: before the floor (t0 - 24 h) of the first scan.
		old := w.register(t0.Add(-30*24*time.Hour), "A")
		w.do(old, t0.Add(-3*24*time.Hour), domain.FileComplaint{Category: "billing", Severity: domain.SeverityCritical, Description: "d"})
		late := w.register(t0.Add(-time.Hour), "A")
		moved := w.register(t0.Add(-15*24*time.Hour-12*time.Hour), "B") // B: due at t0+14d12h; A: at t0-12h
		slow := w.register(t0.Add(-time.Hour), "C")

		if res := w.scan(w.scheduler(backfill)); res.Found != 0 || !res.Full {
			t.Fatalf("first scan %+v: everything due is older than the back-fill", res)
		}

		// A complaint made two hours ago, filed now: its first response
		// was due an hour ago, before the high-water time.
		w.set(t0.Add(time.Minute))
		complaint := w.do(late, t0.Add(-2*time.Hour), domain.FileComplaint{Category: "billing", Severity: domain.SeverityCritical, Description: "d"})
		tierA := "A"
		w.do(moved, t0.Add(time.Minute), domain.ClassifyCustomer{Tier: &tierA})
		res := w.scan(w.scheduler(backfill))
		want := []key{
			{integration.TypeReminderComplaintSLABreached, complaint.String() + "/first_response"},
			{integration.TypeReminderContactDue, moved.String()},
		}
		if got := w.keys(w.feedReminders()); res.Full || !sameKeys(got, want) {
			t.Fatalf("after late facts (%+v) the feed has %v, want %v", res, got, want)
		}

		// Resolved and reopened: the new opening's first response is due
		// an hour after it.
		w.set(t0.Add(3 * time.Minute))
		w.do(late, t0.Add(2*time.Minute), domain.ResolveComplaint{ComplaintID: complaint, By: "ann", Resolution: "r"})
		w.do(late, t0.Add(3*time.Minute), domain.ReopenComplaint{ComplaintID: complaint, Reason: "again"})
		w.scan(w.scheduler(backfill))
		w.set(t0.Add(2 * time.Hour))
		// A high complaint filed an hour ago: 4 h to answer, nothing due.
		high := w.do(slow, t0.Add(time.Hour), domain.FileComplaint{Category: "billing", Severity: domain.SeverityHigh, Description: "d"})
		w.scan(w.scheduler(backfill))
		want = append(want, key{integration.TypeReminderComplaintSLABreached, complaint.String() + "/first_response"})
		events := w.feedReminders()
		got := w.keys2(events)
		if !sameKeys(got, want) {
			t.Fatalf("after the reopening the feed has %v, want %v", got, want)
		}

		// Half an hour for a high complaint's first response: the next
		// scan is full and finds it due since t0+1h30.
		targets, err := sla.Parse("high=30m/72h")
		if err != nil {
			t.Fatal(err)
		}
		if res := w.scan(w.scheduler(backfill, func(c *reminders.Config) { c.SLA = targets })); !res.Full || res.Found != 1 {
			t.Fatalf("scan with a new target %+v", res)
		}
		want = append(want, key{integration.TypeReminderComplaintSLABreached, high.String() + "/first_response"})
		if got := w.keys2(w.feedReminders()); !sameKeys(got, want) {
			t.Fatalf("after the new target the feed has %v, want %v", got, want)
		}

		// Read models behind the log: the scan emits nothing.
		w.set(t0.Add(30 * 24 * time.Hour))
		behind := w.scheduler(backfill, func(c *reminders.Config) {
			c.WaitFor = func(context.Context, eventstore.Position, ...string) error { return errors.New("behind") }
		})
		if res, err := behind.Scan(context.Background()); err == nil || res.Emitted != 0 {
			t.Fatalf("a scan over read models behind the log: %+v, %v", res, err)
		}
	})
}

// keys2 is keys allowing one subject twice when its two reminders differ
// by the opening (a reopened complaint): it keys by type, subject and
// opening, then drops the opening.
func (w *world) keys2(events []integration.Event) []key {
	w.t.Helper()
	var out []key
	seen := map[string]bool{}
	for _, e := range events {
		var data map[string]any
		if err := jsonUnmarshal(e.Data, &data); err != nil {
			w.t.Fatal(err)
		}
		subject := e.CustomerID.String()
		for _, f := range []string{"complaint_id", "follow_up_id"} {
			if v, ok := data[f].(string); ok {
				subject = v
			}
		}
		if step, ok := data["step"].(string); ok {
			subject += "/" + step
		}
		opened, _ := data["opened_at"].(string)
		if id := e.Type + subject + opened; seen[id] {
			w.t.Fatalf("reminder %s %s %s is in the feed twice", e.Type, subject, opened)
		} else {
			seen[id] = true
		}
		out = append(out, key{e.Type, subject})
	}
	return out
}
