package reminders_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/domain/integration"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/reminders"
)

// TestOneSchedulerScansAtATime runs two schedulers as two processes
// would: one takes the lock and scans, the other stands by without
// scanning; when the first stops, the second takes over and emits what
// falls due next.
func TestOneSchedulerScansAtATime(t *testing.T) {
	m := apptest.MustOpen(t)
	w := newWorld(t, m)
	var scans [2]atomic.Int64
	run := func(i int) (stop func()) {
		s := w.scheduler(func(c *reminders.Config) {
			c.Interval = 20 * time.Millisecond
			wait := c.WaitFor
			c.WaitFor = func(ctx context.Context, p eventstore.Position, names ...string) error {
				scans[i].Add(1)
				return wait(ctx, p, names...)
			}
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(ctx) }()
		return func() { cancel(); <-done }
	}
	stopFirst := run(0)
	waitFor(t, func() bool { return scans[0].Load() > 0 })
	stopSecond := run(1)
	defer stopSecond()

	customer := w.register(t0.Add(-time.Hour), "A")
	w.do(customer, t0.Add(-2*time.Hour), domain.FileComplaint{Category: "billing", Severity: domain.SeverityCritical, Description: "d"})
	w.wait()
	waitFor(t, func() bool { return len(w.feedRemindersNow()) == 1 })
	if n := scans[1].Load(); n != 0 {
		t.Fatalf("the standby scanned %d times while the first held the lock", n)
	}

	stopFirst()
	w.set(t0.Add(17 * time.Hour)) // the resolution (24 h) is at risk
	waitFor(t, func() bool { return len(w.feedRemindersNow()) == 2 })
	events := w.feedRemindersNow()
	if scans[1].Load() == 0 || events[1].Type != integration.TypeReminderComplaintSLAAtRisk {
		t.Fatalf("after the failover: %d scans by the standby, %+v", scans[1].Load(), events)
	}
}

// feedRemindersNow is the feed's reminders without waiting.
func (w *world) feedRemindersNow() []integration.Event {
	w.t.Helper()
	events, err := feedQueries(w.m).After(context.Background(), 0, integration.ReminderTypes(), 100)
	if err != nil {
		w.t.Fatal(err)
	}
	return events
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
