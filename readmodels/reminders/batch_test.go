package reminders_test

import (
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/reminders"
)

// A scan whose query fills its batch emits that batch and leaves the
// checkpoint where it was, so the next scan (full again, before the
// first complete one) goes on where it stopped; nothing is lost or
// emitted twice.
func TestAFullBatchLeavesTheCheckpoint(t *testing.T) {
	m := apptest.MustOpen(t)
	w := newWorld(t, m)
	for i := range 3 {
		w.register(t0.Add(-time.Duration(20+i)*24*time.Hour), "A") // due for contact since t0-5d and earlier
	}
	small := func(c *reminders.Config) { c.Batch = 2 }
	first := w.scan(w.scheduler(small))
	if first.Found != 2 || first.Complete || !first.Full {
		t.Fatalf("first scan %+v, want 2 found of a full batch", first)
	}
	var rows int
	if err := m.Pool.QueryRow(t.Context(), `SELECT count(*) FROM rapport.reminder_scheduler`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("the checkpoint was written after an incomplete scan: %d rows, %v", rows, err)
	}
	second := w.scan(w.scheduler(small))
	if second.Found != 1 || !second.Complete || !second.Full {
		t.Fatalf("second scan %+v, want the last one, complete", second)
	}
	if got := w.keys(w.feedReminders()); len(got) != 3 {
		t.Fatalf("the feed has %v, want 3 contact-due reminders", got)
	}
	if res := w.scan(w.scheduler(small)); res.Found != 0 || res.Full {
		t.Fatalf("third scan %+v", res)
	}
}
