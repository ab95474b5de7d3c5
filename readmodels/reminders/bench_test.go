package reminders_test

import (
	"context"
	"encoding/base64"
	"os"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/readmodels/reminders"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// BenchmarkScanAtScale measures the scheduler on a copy of a seeded
// database (never the template), whose read models are built and still:
//
//	RAPPORT_BENCH_DATABASE_URL=postgres://…/copy RAPPORT_MASTER_KEY=… \
//	  go test -run '^$' -bench ScanAtScale -benchtime 20x ./readmodels/reminders/
//
// first: the very first scan (full, back-filling 24 h), once; tick: a
// scan with nothing new since the checkpoint (what runs every 5 s);
// sweep: a full scan with nothing new (hourly); queue: the first page of
// GET /v1/work/complaints?sla=breached, the baseline of the same run.
func BenchmarkScanAtScale(b *testing.B) {
	url := os.Getenv("RAPPORT_BENCH_DATABASE_URL")
	if url == "" {
		b.Skip("RAPPORT_BENCH_DATABASE_URL names a copy of a seeded database")
	}
	key, err := base64.StdEncoding.DecodeString(os.Getenv("RAPPORT_MASTER_KEY"))
	if err != nil {
		b.Fatal(err)
	}
	m, err := app.New(app.Config{DatabaseURL: url, MasterKey: key})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Open(ctx); err != nil {
		b.Fatal(err)
	}
	defer m.Close(ctx)
	scheduler := func(sweep time.Duration) *reminders.Scheduler {
		s, err := reminders.New(reminders.Config{
			Pool: m.Pool, Store: m.Store, Codec: m.Codec, Sweep: sweep,
			// Nothing writes the copy: its read models are at the head.
			WaitFor: func(context.Context, eventstore.Position, ...string) error { return nil },
		})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	scan := func(b *testing.B, s *reminders.Scheduler) reminders.Result {
		res, err := s.Scan(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Pool.Exec(ctx, `DELETE FROM rapport.reminder_scheduler`); err != nil {
				b.Fatal(err)
			}
			res := scan(b, scheduler(0))
			b.ReportMetric(float64(res.Found), "found")
			b.ReportMetric(float64(res.Emitted), "emitted")
		}
	})
	b.Run("tick", func(b *testing.B) {
		s := scheduler(365 * 24 * time.Hour)
		for b.Loop() {
			if res := scan(b, s); res.Full || res.Found > 0 {
				b.Fatalf("tick %+v", res)
			}
		}
	})
	b.Run("sweep", func(b *testing.B) {
		s := scheduler(time.Nanosecond)
		for b.Loop() {
			if res := scan(b, s); !res.Full {
				b.Fatalf("sweep %+v", res)
			}
		}
	})
	b.Run("queue", func(b *testing.B) {
		q := work.NewQueries(m.Pool)
		for b.Loop() {
			if _, err := q.Complaints(ctx, work.ComplaintFilter{SLA: work.SLABreached}, 50, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
}
