package rollups_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
	"github.com/rapport-crm/rapport/infra/postgres/postgrestest"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/projections/projectiontest"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
	"github.com/rapport-crm/rapport/readmodels/rollups"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// TestRollupsAgreeWithTheDocumentedSQL builds every read model over a
// generated history in small batches (so that registrations, surveys and
// reclassifications fall in different batches), then reclassifies
// segments, tiers and regions, reassigns account managers, records more
// surveys and erases customers live, and finally rebuilds the rollups: at
// each step every figure of every family, grouping and period must be
// exactly what the documented SQL (the queries without rollups) answers.
// Without the re-keying the same comparison must fail.
func TestRollupsAgreeWithTheDocumentedSQL(t *testing.T) {
	// The two runs have their own databases: they run at once.
	t.Run("with re-keying", func(t *testing.T) {
		t.Parallel()
		for step, diffs := range agreement(t, rollups.NewProjector(), true) {
			for _, d := range diffs {
				t.Errorf("%s: %s", step, d)
			}
		}
	})
	t.Run("without re-keying the comparison fails", func(t *testing.T) {
		t.Parallel()
		diffs := agreement(t, rollups.NewProjectorWithoutRekey(), false)
		if len(diffs["after the live reclassifications"]) == 0 {
			t.Fatal("rollups that are not re-keyed agree with the documented SQL: the comparison proves nothing")
		}
		t.Logf("without re-keying, %d reports differ after the live changes, e.g. %s", len(diffs["after the live reclassifications"]), diffs["after the live reclassifications"][0])
	})
}

// agreement runs the scenario with the rollups projector p and returns,
// by step, the figures that differ from the documented SQL's. Without
// every step it stops after the live changes and compares only there
// (the run without re-keying needs no more to fail).
func agreement(t *testing.T, p rollups.Projector, every bool) map[string][]string {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	store, err := postgres.NewEventStore(pool, postgres.EventStoreConfig{CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	keys, err := postgres.NewKeyring(pool, bytes.Repeat([]byte{5}, 32), postgres.KeyringConfig{})
	if err != nil {
		t.Fatal(err)
	}
	codec := eventcodec.New(domain.NewRegistry(), keys)
	directory, err := customers.NewProjector(customers.Config{})
	if err != nil {
		t.Fatal(err)
	}
	config := projections.Config{Pool: pool, Store: store, Codec: codec,
		Projectors:        []projections.Projector{directory, surveys.NewProjector(), lifecycle.NewProjector(), complaints.NewProjector(), contacts.NewProjector(), p},
		BatchSize:         23,
		RebuildBatchSize:  41,
		LockRetryInterval: 100 * time.Millisecond, PollInterval: 50 * time.Millisecond}
	eng, err := projections.New(config)
	if err != nil {
		t.Fatal(err)
	}

	gen := projectiontest.NewGenerator(7)
	history := gen.Plan(4000)
	if err := projectiontest.Encode(ctx, codec, history, 4); err != nil {
		t.Fatal(err)
	}
	last, err := postgrestest.BulkLoad(ctx, pool, history)
	if err != nil {
		t.Fatal(err)
	}
	stop := runEngine(t, eng)
	waitFor(t, eng, last)
	now := time.Now()
	out := map[string][]string{}
	if every {
		out["after the history"] = compare(t, pool, now)
		// Before a generation has caught up its complaint blocks are not
		// built, and the reports read the same arrays from the facts.
		var built bool
		if err := pool.QueryRow(ctx, `SELECT built FROM readmodels.complaint_blocks_state`).Scan(&built); err != nil || !built {
			t.Fatalf("the complaint blocks are not built after the history (%v): the comparison did not read them", err)
		}
		if _, err := pool.Exec(ctx, `UPDATE readmodels.complaint_blocks_state SET built = false`); err != nil {
			t.Fatal(err)
		}
		out["with the complaint blocks not built"] = compare(t, pool, now)
		if _, err := pool.Exec(ctx, `UPDATE readmodels.complaint_blocks_state SET built = true`); err != nil {
			t.Fatal(err)
		}
	}

	edges, late := contactEdges(now)
	live := append(append(edges, liveChanges(history)...), late...)
	if err := projectiontest.Encode(ctx, codec, live, 4); err != nil {
		t.Fatal(err)
	}
	if last, err = projectiontest.AppendAll(ctx, store, live); err != nil {
		t.Fatal(err)
	}
	waitFor(t, eng, last)
	out["after the live reclassifications"] = compare(t, pool, now)
	if !every {
		return out
	}

	stop()
	if err := eng.Rebuild(ctx, rollups.Name, nil); err != nil {
		t.Fatal(err)
	}
	out["after a rebuild"] = compare(t, pool, now)

	// In batches too large to build the complaint blocks as it goes, a
	// rebuild builds them all once it has caught up (CreateIndexes).
	config.RebuildBatchSize = 5000
	large, err := projections.New(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := large.Rebuild(ctx, rollups.Name, nil); err != nil {
		t.Fatal(err)
	}
	var built bool
	if err := pool.QueryRow(ctx, `SELECT built FROM readmodels.complaint_blocks_state`).Scan(&built); err != nil || !built {
		t.Errorf("the complaint blocks are not built after a rebuild in large batches (%v)", err)
	}
	out["after a rebuild in large batches"] = compare(t, pool, now)
	return out
}

// liveChanges are, after the history, for every third customer a new
// tier and region, for every fourth a new account manager and segment, a
// survey after each change, and for every fifth an erasure.
func liveChanges(history []projectiontest.Append) []projectiontest.Append {
	next := map[uuid.UUID]uint64{}
	var order []uuid.UUID
	erased := map[uuid.UUID]bool{}
	for _, a := range history {
		if _, ok := next[a.Customer]; !ok {
			order = append(order, a.Customer)
		}
		next[a.Customer] = a.FirstRevision + uint64(len(a.Domain))
		for _, e := range a.Domain {
			if _, ok := e.(domain.CustomerDataErased); ok {
				erased[a.Customer] = true
			}
		}
	}
	at := time.Now().UTC().Add(-20 * 24 * time.Hour).Truncate(time.Second)
	tiers, regions, segments := []string{"A", "B", "C", ""}, []string{"emea", "apac", "amer"}, []string{"smb", "enterprise", "", "public"}
	var out []projectiontest.Append
	emit := func(id uuid.UUID, e domain.Event) {
		out = append(out, projectiontest.Append{Customer: id, Stream: domain.StreamName(id), FirstRevision: next[id], Domain: []domain.Event{e}})
		next[id]++
	}
	for i, id := range order {
		if erased[id] {
			continue
		}
		at = at.Add(17 * time.Minute)
		csat, nps := 1+i%5, i%11
		survey := func() {
			emit(id, domain.SurveyRecorded{SurveyID: uuid.NewSHA1(id, fmt.Appendf(nil, "live-%d", next[id])), CSAT: &csat, NPS: &nps, OccurredAt: at})
		}
		if i%3 == 0 {
			tier, region := tiers[i%len(tiers)], regions[i%len(regions)]
			emit(id, domain.CustomerClassified{Tier: &tier, Region: &region, OccurredAt: at})
			survey()
		}
		if i%4 == 0 {
			seg := segments[i%len(segments)]
			emit(id, domain.TeamMemberAssigned{Role: domain.RoleAccountManager, Member: fmt.Sprintf("manager-%d", i%6), OccurredAt: at})
			emit(id, domain.CustomerClassified{Segment: &seg, OccurredAt: at})
			survey()
		}
		if i%5 == 0 {
			emit(id, domain.CustomerDataErased{OccurredAt: at})
		}
	}
	return out
}

// compare runs every family × grouping × period with and without
// rollups, breaches judged at now, and lists the differences.
func compare(t *testing.T, pool *pgxpool.Pool, now time.Time) []string {
	t.Helper()
	ctx := context.Background()
	sql := analytics.NewQueries(pool, nil).WithClock(func() time.Time { return now })
	rolled := sql.WithRollups()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	periods := [][2]time.Time{
		{now.AddDate(-1, 0, -5), now.Add(time.Hour)},                                             // the whole history
		{now.Add(-analytics.DefaultPeriod), now},                                                 // the default: edges inside days
		{day.AddDate(0, -3, 0), day},                                                             // whole days only
		{day.AddDate(0, 0, -30).Add(10 * time.Hour), day.AddDate(0, 0, -30).Add(15 * time.Hour)}, // within one day
		{day.AddDate(0, 0, -200).Add(23 * time.Hour), day.AddDate(0, 0, -199).Add(time.Hour)},    // two partial days
	}
	// Periods starting exactly where a spell starts and where one ends
	// (the cohort's bounds are inclusive and exclusive there).
	var started, ended time.Time
	if err := pool.QueryRow(ctx, `SELECT (SELECT active_from FROM readmodels.customer_lifecycle WHERE spell > 1 ORDER BY customer_id LIMIT 1),
		(SELECT active_until FROM readmodels.customer_lifecycle WHERE active_until IS NOT NULL ORDER BY customer_id LIMIT 1)`).Scan(&started, &ended); err != nil {
		t.Fatal(err)
	}
	periods = append(periods, [2]time.Time{started, started.AddDate(0, 0, 40)}, [2]time.Time{ended, ended.AddDate(0, 2, 0)})
	periods = append(periods, contactPeriods(now)...)
	groupings := []analytics.GroupBy{analytics.All, analytics.Segment, analytics.Tier, analytics.Region, analytics.Owner, analytics.Month}
	var diffs []string
	for _, f := range analytics.Families() {
		for _, g := range groupings {
			for _, pd := range periods {
				p := analytics.Params{From: pd[0], To: pd[1], GroupBy: g}
				want, err := sql.Report(ctx, f, p)
				if err != nil {
					t.Fatalf("%s by %q: %v", f, g, err)
				}
				got, err := rolled.Report(ctx, f, p)
				if err != nil {
					t.Fatalf("%s by %q with rollups: %v", f, g, err)
				}
				if !reflect.DeepEqual(got.Groups, want.Groups) {
					diffs = append(diffs, fmt.Sprintf("%s by %q over [%s, %s): rollups %s, documented SQL %s",
						f, g, pd[0].Format(time.RFC3339), pd[1].Format(time.RFC3339), show(got.Groups), show(want.Groups)))
				}
			}
		}
	}
	return diffs
}

func show(gs []analytics.Group) string {
	var b bytes.Buffer
	for _, g := range gs {
		k := "null"
		if g.Key != nil {
			k = *g.Key
		}
		fmt.Fprintf(&b, "[%s resp=%d csat=%d nps=%d active=%d filed=%d] ", k, g.Responses, g.CSATResponses, g.NPSResponses, g.ActiveAtStart, g.Filed)
	}
	return b.String()
}

func runEngine(t *testing.T, eng *projections.Engine) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := eng.Run(ctx); err != nil {
			t.Errorf("engine: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, eng *projections.Engine, pos eventstore.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := eng.WaitForPosition(ctx, pos); err != nil {
		t.Fatalf("wait for position %d: %v", pos, err)
	}
}
