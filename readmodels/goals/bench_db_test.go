package goals_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/goals"
	"github.com/rapport-crm/rapport/readmodels/staff"
)

// BenchmarkGoalsOnADatabase measures the goal list, one goal and the staff
// scorecards on an existing, seeded and projected database (a copy of the
// 100k-customer template, never the template itself), with the analytics
// queries the service wires (rollups on), and the same goals judged by
// the raw-SQL analytics as the baseline of the same run. It sets twenty
// goals tagged "bench" once (figures of every family, every kind of
// scope, five different periods) and applies them with a goals-only
// engine; the other read models are the database's.
//
//	RAPPORT_BENCH_DATABASE_URL=postgres://…/goals_100k RAPPORT_MASTER_KEY=… \
//	  nice -n 10 go test ./readmodels/goals -run '^$' -bench GoalsOnADatabase -benchtime 1x -timeout 30m
func BenchmarkGoalsOnADatabase(b *testing.B) {
	url := os.Getenv("RAPPORT_BENCH_DATABASE_URL")
	if url == "" {
		b.Skip("RAPPORT_BENCH_DATABASE_URL names the seeded database to measure")
	}
	key, err := app.ParseMasterKey(os.Getenv("RAPPORT_MASTER_KEY"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	m, err := app.New(app.Config{DatabaseURL: url, MasterKey: key, Addr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Open(ctx); err != nil {
		b.Fatal(err)
	}
	defer m.Close(context.WithoutCancel(ctx))

	// The goals, once per database.
	var existing int
	if err := m.Pool.QueryRow(ctx, `SELECT count(*) FROM readmodels.goals WHERE name LIKE 'bench %'`).Scan(&existing); err != nil {
		b.Logf("no goals table yet: %v", err)
	}
	now := time.Now().UTC()
	type spec struct {
		figure string
		scope  domain.GoalScope
		target float64
		days   int // the period starts days ago and lasts 90 days
	}
	specs := []spec{
		{"csat_pct", domain.GoalScope{}, 80, 45}, {"csat_pct", domain.GoalScope{Segment: "smb"}, 85, 45},
		{"csat_avg", domain.GoalScope{Tier: "A"}, 4, 45}, {"nps", domain.GoalScope{Tier: "A"}, 30, 45},
		{"responses", domain.GoalScope{Region: "emea"}, 100, 30}, {"churn_rate", domain.GoalScope{}, 5, 45},
		{"retention_rate", domain.GoalScope{Region: "emea"}, 95, 45}, {"complaint_rate", domain.GoalScope{}, 10, 30},
		{"resolution_rate", domain.GoalScope{Owner: "alice"}, 90, 45}, {"first_response_median_s", domain.GoalScope{}, 3600, 60},
		{"resolution_median_s", domain.GoalScope{Segment: "enterprise"}, 86400, 60}, {"sla_breaches", domain.GoalScope{}, 100, 45},
		{"contact_coverage", domain.GoalScope{Segment: "enterprise"}, 70, 45}, {"follow_ups_overdue", domain.GoalScope{}, 50, 45},
		{"csat_pct", domain.GoalScope{Region: "apac"}, 75, 120}, {"nps", domain.GoalScope{}, 20, 120},
		{"churn_rate", domain.GoalScope{Segment: "smb"}, 6, 120}, {"complaint_rate", domain.GoalScope{Tier: "B"}, 8, 60},
		{"retention_rate", domain.GoalScope{}, 90, 30}, {"contact_coverage", domain.GoalScope{Owner: "bob"}, 60, 60},
	}
	if existing < len(specs) {
		var last eventstore.Position
		for i, s := range specs {
			from := now.AddDate(0, 0, -s.days)
			to := from.AddDate(0, 0, 90)
			res, err := m.Goals.Handle(ctx, commands.GoalRequest{Command: domain.SetGoal{Name: fmt.Sprintf("bench %02d %s", i, s.figure), Figure: s.figure,
				Comparator: domain.AtLeast, Target: &s.target, From: &from, To: &to, Scope: s.scope}, CommandID: uuid.New(), Actor: "bench"})
			if err != nil {
				b.Fatalf("%s: %v", s.figure, err)
			}
			last = res.Position
		}
		eng, err := projections.New(projections.Config{Pool: m.Pool, Store: m.Store, Codec: m.Codec, Projectors: []projections.Projector{goals.NewProjector()}})
		if err != nil {
			b.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = eng.Run(runCtx) }()
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		err = eng.WaitForPosition(waitCtx, last, goals.Name)
		cancel()
		stop()
		<-done
		if err != nil {
			b.Fatal(err)
		}
	}
	var nCustomers, nGoals int
	if err := m.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM readmodels.customers), (SELECT count(*) FROM readmodels.goals WHERE NOT closed)`).Scan(&nCustomers, &nGoals); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d customers, %d open goals", nCustomers, nGoals)

	fast := analytics.NewQueries(m.Pool, nil).WithRollups()
	raw := analytics.NewQueries(m.Pool, nil)
	fastGoals, rawGoals := goals.NewQueries(m.Pool, fast), goals.NewQueries(m.Pool, raw)
	sq := staff.NewQueries(m.Pool, nil)
	period := analytics.Params{From: now.Add(-analytics.DefaultPeriod), To: now}
	var one uuid.UUID
	list := func(q *goals.Queries) func() error {
		return func() error {
			p, err := q.Goals(ctx, goals.ListParams{}, "", 20)
			if err != nil {
				return err
			}
			if len(p.Items) != 20 {
				return fmt.Errorf("%d goals", len(p.Items))
			}
			one = p.Items[1].ID
			// The handler's stale check, one per goal.
			for _, g := range p.Items {
				if _, err := m.Engine.StaleFor(ctx, domain.GoalStreamName(g.ID), goals.Name); err != nil {
					return err
				}
			}
			return nil
		}
	}
	measure := func(name string, runs int, f func() error) {
		var ds []time.Duration
		for range runs + 1 {
			t := time.Now()
			if err := f(); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(t))
		}
		ds = ds[1:] // warm-up
		slices.Sort(ds)
		b.Logf("%-52s p50 %8.1f ms  p95 %8.1f ms  (%d runs)", name, ms(ds[len(ds)/2]), ms(ds[(len(ds)*95+99)/100-1]), runs)
	}
	// What each goal costs alone (its two reports), to see which figures
	// are slow.
	page, err := fastGoals.Goals(ctx, goals.ListParams{}, "", 20)
	if err != nil {
		b.Fatal(err)
	}
	for _, g := range page.Items {
		t := time.Now()
		if _, err := fastGoals.Goal(ctx, g.ID); err != nil {
			b.Fatal(err)
		}
		b.Logf("one goal: %-24s %-10s %8.1f ms", g.Figure, g.Scope, ms(time.Since(t)))
	}
	if os.Getenv("RAPPORT_BENCH_PER_GOAL") != "" {
		return
	}
	b.ResetTimer()
	for range b.N {
		measure("GET /v1/goals (20 goals, rollups)", 20, list(fastGoals))
		measure("GET /v1/goals/{id} (rollups)", 20, func() error { _, err := fastGoals.Goal(ctx, one); return err })
		measure("GET /v1/analytics/staff (90 days)", 20, func() error { _, err := sq.Report(ctx, period.From, period.To); return err })
		measure("reference: kpis 90 days (rollups)", 20, func() error { _, err := fast.Report(ctx, analytics.KPIs, period); return err })
		measure("baseline: GET /v1/goals (20 goals, raw SQL)", 5, list(rawGoals))
	}
}
