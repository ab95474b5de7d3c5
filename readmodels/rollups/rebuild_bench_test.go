package rollups_test

import (
	"context"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/postgres/postgrestest"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
	"github.com/rapport-crm/rapport/readmodels/rollups"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// BenchmarkRollupsRebuild is the rebuild cost the rollups add: the log's
// events/s rebuilding the rollups, beside the surveys and life-cycle read
// models (what the rollups fold, without re-keying) and the directory
// (every event), in the same run, over a generated log of
// RAPPORT_BENCH_EVENTS events (default 20,000):
//
//	RAPPORT_BENCH_EVENTS=200000 go test ./readmodels/rollups -run '^$' -bench RollupsRebuild -benchtime 1x -timeout 30m
func BenchmarkRollupsRebuild(b *testing.B) {
	log := postgrestest.LoadLog(b, postgrestest.EventsFromEnv(b, 20_000))
	ctx := context.Background()
	directory, err := customers.NewProjector(customers.Config{})
	if err != nil {
		b.Fatal(err)
	}
	eng, err := projections.New(projections.Config{Pool: log.Pool, Store: log.Store, Codec: log.Codec,
		Projectors: []projections.Projector{directory, surveys.NewProjector(), lifecycle.NewProjector(), rollups.NewProjector()}})
	if err != nil {
		b.Fatal(err)
	}
	rebuild := func(name string) float64 {
		t0 := time.Now()
		if err := eng.Rebuild(ctx, name, nil); err != nil {
			b.Fatal(err)
		}
		return float64(log.Events) / time.Since(t0).Seconds()
	}
	rebuild(customers.Name) // warms the key cache for every projector alike
	b.ResetTimer()
	for range b.N {
		for _, name := range []string{customers.Name, surveys.Name, lifecycle.Name, rollups.Name} {
			b.ReportMetric(rebuild(name), "events/s-"+name)
		}
	}
}
