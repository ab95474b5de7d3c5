package reminders_test

import (
	"testing"
	"time"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/integration"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/reminders"
)

// TestALateAnswerStillAnnouncesTheBreach: the scheduler was down (or
// behind) when a complaint's first response fell due, and the answer came
// after the deadline but before the next scan. The SLA was breached all
// the same, so the next scan announces it, once; an answer in time
// announces nothing.
func TestALateAnswerStillAnnouncesTheBreach(t *testing.T) {
	apptest.ForEachStore(t, func(t *testing.T, m *apptest.Main) {
		w := newWorld(t, m)
		customer := w.register(t0.Add(-time.Hour), "C")
		w.scan(w.scheduler()) // the first scan: nothing due yet

		late := w.do(customer, t0.Add(time.Minute), domain.FileComplaint{Category: "billing", Severity: domain.SeverityCritical, Description: "d"})
		inTime := w.do(customer, t0.Add(time.Minute), domain.FileComplaint{Category: "delivery", Severity: domain.SeverityCritical, Description: "d"})
		w.set(t0.Add(2 * time.Minute))
		w.scan(w.scheduler())

		// Critical: one hour to answer. No scan ran between t0+2m and t0+3h.
		w.do(customer, t0.Add(30*time.Minute), domain.AcknowledgeComplaint{ComplaintID: inTime, By: "ann"})
		w.do(customer, t0.Add(2*time.Hour), domain.AcknowledgeComplaint{ComplaintID: late, By: "ann"})
		// Down for longer than the sweep interval: the next scan is a full
		// one, and it still looks at the customers the log touched.
		w.set(t0.Add(3 * time.Hour))
		hourly := func(c *reminders.Config) { c.Sweep = time.Hour }
		if res := w.scan(w.scheduler(hourly)); !res.Full {
			t.Fatalf("the scan after the downtime was not full: %+v", res)
		}
		w.scan(w.scheduler(hourly))

		want := []key{{integration.TypeReminderComplaintSLABreached, late.String() + "/first_response"}}
		if got := w.keys(w.feedReminders()); !sameKeys(got, want) {
			t.Fatalf("the feed has %v, want %v", got, want)
		}
	})
}
