package reminders_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/domain/integration"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/audit"
	"github.com/rapport-crm/rapport/readmodels/feed"
	"github.com/rapport-crm/rapport/readmodels/reminders"
)

// t0 is the instant the first scan judges at.
var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

type world struct {
	t    *testing.T
	m    *apptest.Main
	last eventstore.Position
	// clock is what the schedulers read.
	clock atomic.Pointer[time.Time]
}

func newWorld(t *testing.T, m *apptest.Main) *world {
	w := &world{t: t, m: m}
	w.set(t0)
	return w
}

func (w *world) set(at time.Time) { w.clock.Store(&at) }

func (w *world) do(id uuid.UUID, at time.Time, cmd domain.Command) uuid.UUID {
	w.t.Helper()
	res, err := w.m.Commands.Handle(context.Background(), commands.Request{
		CustomerID: id, Command: cmd, CommandID: uuid.New(), Actor: "tester", CorrelationID: "reminders", At: at,
	})
	if err != nil {
		w.t.Fatalf("%T at %s: %v", cmd, at, err)
	}
	w.last = max(w.last, res.Position)
	if _, ok := cmd.(domain.RegisterCustomer); ok {
		return res.CustomerID
	}
	return res.CreatedID
}

func (w *world) wait() {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.m.Engine.WaitForPosition(ctx, w.last); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) register(at time.Time, tier string) uuid.UUID {
	return w.do(uuid.Nil, at, domain.RegisterCustomer{Name: "Someone Personal", Phone: "+1 555 0100", Segment: "smb", Tier: tier, Region: "north"})
}

// scheduler is a scheduler of the service's database with the world's
// clock (the service runs none of its own in tests).
func (w *world) scheduler(options ...func(*reminders.Config)) *reminders.Scheduler {
	w.t.Helper()
	cfg := reminders.Config{
		Pool: w.m.Pool, Store: w.m.Store, Codec: w.m.Codec,
		WaitFor: func(ctx context.Context, p eventstore.Position, names ...string) error {
			return w.m.Engine.WaitForPosition(ctx, p, names...)
		},
		Now: func() time.Time { return *w.clock.Load() },
		// No full scan but the first, unless a test asks.
		Sweep: 365 * 24 * time.Hour,
		// Back-fill everything: the scenarios' facts are days old.
		Backfill: -1,
	}
	for _, o := range options {
		o(&cfg)
	}
	s, err := reminders.New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// scan waits for the read models to apply the commands (the log's head
// a scheduler waits for is what its readers see, which a transaction
// elsewhere in the cluster may hold back) and scans.
func (w *world) scan(s *reminders.Scheduler) reminders.Result {
	w.t.Helper()
	w.wait()
	res, err := s.Scan(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	w.last = max(w.last, res.Last)
	return res
}

// feedReminders waits for the feed to pass the log's head and returns
// its reminders, in feed order.
func (w *world) feedReminders() []integration.Event {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.m.Engine.WaitForPosition(ctx, w.last, feed.Name); err != nil {
		w.t.Fatal(err)
	}
	events, err := feed.NewQueries(w.m.Pool).After(ctx, 0, integration.ReminderTypes(), 1000)
	if err != nil {
		w.t.Fatal(err)
	}
	return events
}

type key struct {
	typ     string
	subject string
}

// keys are the feed's reminders as (type, subject) pairs, failing on a
// reminder that is there twice.
func (w *world) keys(events []integration.Event) []key {
	w.t.Helper()
	var out []key
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
		k := key{e.Type, subject}
		if slices.Contains(out, k) {
			w.t.Fatalf("reminder %v is in the feed twice", k)
		}
		out = append(out, k)
	}
	return out
}

// The scenario: what is due at t0 is emitted once, with the state of its
// time; a later scan emits what fell due since; a scan again, a new
// scheduler (a restart, with its records lost) and two schedulers racing
// add nothing twice; erased customers and settled steps get none; the
// feed lists each reminder after the customer's events, without personal
// data, and reconciliation still passes.
func TestRemindersAreEmittedOnceWhenDue(t *testing.T) {
	apptest.ForEachStore(t, func(t *testing.T, m *apptest.Main) {
		w := newWorld(t, m)
		a := w.register(t0.Add(-48*time.Hour), "A")          // contact due only at t0+13d
		b := w.register(t0.Add(-20*24*time.Hour), "A")       // never contacted: due since t0-5d
		churned := w.register(t0.Add(-40*24*time.Hour), "A") // churned: never due for contact
		erased := w.register(t0.Add(-48*time.Hour), "B")     // erased: nothing at all
		file := func(id uuid.UUID, sev domain.Severity, at time.Time) uuid.UUID {
			return w.do(id, at, domain.FileComplaint{Category: "billing", Severity: sev, Description: "personal words"})
		}
		// high: 4 h / 72 h; critical: 1 h / 24 h.
		atRisk := file(a, domain.SeverityHigh, t0.Add(-3*time.Hour-30*time.Minute)) // 30 min of 4 h left
		breached := file(a, domain.SeverityCritical, t0.Add(-2*time.Hour))          // first response 1 h past
		answered := file(a, domain.SeverityCritical, t0.Add(-2*time.Hour))          // acknowledged in time
		w.do(a, t0.Add(-90*time.Minute), domain.AcknowledgeComplaint{ComplaintID: answered, By: "ann"})
		resolved := file(a, domain.SeverityHigh, t0.Add(-5*time.Hour)) // resolved: nothing
		w.do(a, t0.Add(-4*time.Hour-30*time.Minute), domain.ResolveComplaint{ComplaintID: resolved, By: "ann", Resolution: "done"})
		file(erased, domain.SeverityCritical, t0.Add(-3*time.Hour))
		w.do(erased, t0.Add(-time.Hour), domain.EraseCustomerData{Reason: "asked"})
		w.do(churned, t0.Add(-time.Hour), domain.MarkChurned{Reason: "left"})
		followUp := w.do(a, t0.Add(-time.Hour), domain.ScheduleFollowUp{DueAt: t0.Add(time.Hour), By: "ann", Note: "call back"})

		s := w.scheduler()
		res := w.scan(s)
		if !res.Full || !res.Complete || res.Found != 3 {
			t.Fatalf("first scan %+v, want a complete full scan finding 3", res)
		}
		want := []key{
			{integration.TypeReminderContactDue, b.String()},
			{integration.TypeReminderComplaintSLAAtRisk, atRisk.String() + "/first_response"},
			{integration.TypeReminderComplaintSLABreached, breached.String() + "/first_response"},
		}
		got := w.keys(w.feedReminders())
		if !sameKeys(got, want) {
			t.Fatalf("after the first scan the feed has %v, want %v", got, want)
		}
		// Again at the same instant, and with a new scheduler: nothing.
		if res := w.scan(s); res.Found != 0 || res.Full {
			t.Fatalf("second scan %+v", res)
		}

		// Two hours on: the follow-up is due, the at-risk one breached.
		w.set(t0.Add(2 * time.Hour))
		if res := w.scan(w.scheduler()); res.Found != 2 || res.Full || !res.Complete {
			t.Fatalf("scan at t0+2h %+v, want 2 found since the high-water time", res)
		}
		want = append(want,
			key{integration.TypeReminderFollowUpDue, followUp.String()},
			key{integration.TypeReminderComplaintSLABreached, atRisk.String() + "/first_response"})
		events := w.feedReminders()
		if got := w.keys(events); !sameKeys(got, want) {
			t.Fatalf("at t0+2h the feed has %v, want %v", got, want)
		}
		for _, e := range events {
			if e.CustomerID == erased || e.CustomerID == churned {
				t.Errorf("a reminder for an erased or churned customer: %+v", e)
			}
			if containsAny(string(e.Data), "Someone", "personal", "call back", "+1 555") {
				t.Errorf("personal data in %s: %s", e.Type, e.Data)
			}
		}

		// A restart that lost the scheduler's records: its scan finds
		// everything again, and the log refuses every second emission.
		if _, err := m.Pool.Exec(context.Background(), `DELETE FROM rapport.reminders; DELETE FROM rapport.reminder_scheduler`); err != nil {
			t.Fatal(err)
		}
		if res := w.scan(w.scheduler()); !res.Full || res.Found != 4 {
			// contact-due b, breached ×2, follow-up (the at-risk one is breached now)
			t.Fatalf("scan without records %+v", res)
		}
		if got := w.keys(w.feedReminders()); !sameKeys(got, want) {
			t.Fatalf("after a scan without records the feed has %v, want %v", got, want)
		}

		// Two schedulers racing over the same due set: still one each.
		w.set(t0.Add(17 * time.Hour)) // both critical resolutions (24 h) are at risk
		if _, err := m.Pool.Exec(context.Background(), `DELETE FROM rapport.reminders`); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 4)
		results := make([]reminders.Result, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = w.scheduler().Scan(context.Background())
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		for _, r := range results {
			w.last = max(w.last, r.Last)
		}
		want = append(want,
			key{integration.TypeReminderComplaintSLAAtRisk, breached.String() + "/resolution"},
			key{integration.TypeReminderComplaintSLAAtRisk, answered.String() + "/resolution"})
		events = w.feedReminders()
		if got := w.keys(events); !sameKeys(got, want) {
			t.Fatalf("after racing schedulers the feed has %v, want %v", got, want)
		}
		// Each reminder is the one event of its stream, and the feed's
		// envelope is the customer's, judged on a revision it had.
		for _, e := range events {
			id := e.ID
			recs, err := m.Store.ReadStream(context.Background(), domain.ReminderStreamName(id), eventstore.ReadStreamOptions{Direction: eventstore.Forwards, Limit: 10})
			if err != nil || len(recs) != 1 || recs[0].ID != id {
				t.Fatalf("stream of reminder %s: %d events, %v", id, len(recs), err)
			}
			// Chained (keyed) like every stored event.
			if err := m.Codec.NewVerifier().Verify(recs[0]); err != nil {
				t.Errorf("reminder %s: chain: %v", id, err)
			}
		}
		m.CheckReconciles(t, "with reminders", feed.Name)
		// The auditor of every customer (rapport audit verify --all) reads
		// past the reminder streams: the same customers, intact.
		var verified []uuid.UUID
		if err := audit.New(m.Store, m.Codec).VerifyAll(context.Background(), nil, func(v audit.Verification) error {
			if !v.Intact {
				t.Errorf("customer %s: not intact: %+v", v.CustomerID, v.BrokenAt)
			}
			verified = append(verified, v.CustomerID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(verified) != 4 {
			t.Fatalf("verify --all reported %d streams, want the 4 customers: %v", len(verified), verified)
		}
	})
}

func sameKeys(a, b []key) bool {
	cmp := func(x, y key) int {
		if x.typ != y.typ {
			if x.typ < y.typ {
				return -1
			}
			return 1
		}
		if x.subject < y.subject {
			return -1
		}
		if x.subject > y.subject {
			return 1
		}
		return 0
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}
