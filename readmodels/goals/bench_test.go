package goals_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/postgres/postgrestest"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/goals"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
	"github.com/rapport-crm/rapport/readmodels/staff"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// BenchmarkGoalAndStaffQueries loads a generated log of
// RAPPORT_BENCH_EVENTS events (default 20,000; about ten per customer),
// builds the read models the goals and the scorecards read, sets ten goals
// (figures of every family, scoped and not), and reports the p50 and p95
// of the goal list (ten goals judged), one scoped goal, the staff
// scorecards of the last 90 days, and — as the reference measured in the
// same run — the analytics KPIs and satisfaction by segment over 90 days.
//
//	RAPPORT_BENCH_EVENTS=1000000 go test ./readmodels/goals -run '^$' -bench GoalAndStaff -benchtime 1x -timeout 60m
func BenchmarkGoalAndStaffQueries(b *testing.B) {
	log := postgrestest.LoadLog(b, postgrestest.EventsFromEnv(b, 20_000))
	ctx := context.Background()
	handler, err := commands.NewGoals(commands.GoalConfig{Store: log.Store, Codec: log.Codec})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	quarter := func(offset int) (*time.Time, *time.Time) {
		from := now.AddDate(0, 0, -45+offset)
		to := from.AddDate(0, 0, 90)
		return &from, &to
	}
	type g struct {
		figure string
		scope  domain.GoalScope
		target float64
	}
	var first uuid.UUID
	for i, x := range []g{
		{"csat_pct", domain.GoalScope{}, 80}, {"csat_pct", domain.GoalScope{Segment: "smb"}, 85}, {"nps", domain.GoalScope{Tier: "A"}, 30},
		{"churn_rate", domain.GoalScope{}, 5}, {"retention_rate", domain.GoalScope{Region: "emea"}, 95},
		{"complaint_rate", domain.GoalScope{}, 10}, {"resolution_rate", domain.GoalScope{Owner: "alice"}, 90},
		{"first_response_median_s", domain.GoalScope{}, 3600}, {"contact_coverage", domain.GoalScope{Segment: "enterprise"}, 70},
		{"sla_breaches", domain.GoalScope{}, 100},
	} {
		from, to := quarter(i)
		res, err := handler.Handle(ctx, commands.GoalRequest{Command: domain.SetGoal{Name: x.figure, Figure: x.figure, Comparator: domain.AtLeast,
			Target: &x.target, From: from, To: to, Scope: x.scope}, CommandID: uuid.New(), Actor: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if i == 1 {
			first = res.GoalID
		}
	}
	directory, err := customers.NewProjector(customers.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ps := []projections.Projector{directory, contacts.NewProjector(), complaints.NewProjector(), surveys.NewProjector(),
		lifecycle.NewProjector(), staff.NewProjector(), goals.NewProjector()}
	eng, err := projections.New(projections.Config{Pool: log.Pool, Store: log.Store, Codec: log.Codec, Projectors: ps})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	for _, p := range ps {
		if err := eng.Rebuild(ctx, p.Name(), nil); err != nil {
			b.Fatal(err)
		}
	}
	var nCustomers int
	if err := log.Pool.QueryRow(ctx, `SELECT count(*) FROM readmodels.customers`).Scan(&nCustomers); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d events, %d customers, read models built in %s", log.Events, nCustomers, time.Since(t0).Round(time.Second))

	an := analytics.NewQueries(log.Pool, nil)
	gq := goals.NewQueries(log.Pool, an)
	sq := staff.NewQueries(log.Pool, nil)
	period := analytics.Params{From: now.Add(-analytics.DefaultPeriod), To: now}
	measure := func(name string, f func() error) {
		const runs = 30
		var ds []time.Duration
		for range runs + 2 {
			t := time.Now()
			if err := f(); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(t))
		}
		ds = ds[2:] // warm-up
		slices.Sort(ds)
		b.Logf("%-40s p50 %6.1f ms  p95 %6.1f ms", name, ms(ds[len(ds)/2]), ms(ds[len(ds)*95/100]))
	}
	b.ResetTimer()
	for range b.N {
		measure("GET /v1/goals (10 goals judged)", func() error {
			p, err := gq.Goals(ctx, goals.ListParams{}, "", 50)
			if err == nil && len(p.Items) != 10 {
				b.Fatalf("%d goals", len(p.Items))
			}
			return err
		})
		measure("GET /v1/goals/{id} (csat_pct, segment)", func() error { _, err := gq.Goal(ctx, first); return err })
		measure("GET /v1/analytics/staff (90 days)", func() error { _, err := sq.Report(ctx, period.From, period.To); return err })
		measure("reference: kpis, no grouping (90 days)", func() error { _, err := an.Report(ctx, analytics.KPIs, period); return err })
		measure("reference: satisfaction by segment", func() error {
			p := period
			p.GroupBy = analytics.Segment
			_, err := an.Report(ctx, analytics.Satisfaction, p)
			return err
		})
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
