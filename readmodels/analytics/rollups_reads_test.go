package analytics_test

import (
	"errors"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/lifecycle"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/rollups"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// TestReadsWithRollups is TestReads for the queries with rollups: each
// family, in every grouping, runs on a database holding only the tables
// of the projectors Reads names, so min_position waits for those.
func TestReadsWithRollups(t *testing.T) {
	t.Parallel()
	directory, err := customers.NewProjector(customers.Config{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]projections.Projector{customers.Name: directory, surveys.Name: surveys.NewProjector(),
		lifecycle.Name: lifecycle.NewProjector(), complaints.Name: complaints.NewProjector(), contacts.Name: contacts.NewProjector(),
		rollups.Name: rollups.NewProjector()}
	to := time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)
	params := func(g analytics.GroupBy) analytics.Params {
		return analytics.Params{From: to.AddDate(0, -3, 0), To: to, GroupBy: g}
	}
	groupings := append([]analytics.GroupBy{analytics.All}, analytics.GroupBys()...)
	none := analytics.NewQueries(apptest.ReadModels(t), nil).WithRollups()
	for _, f := range analytics.Families() {
		if _, err := none.Report(t.Context(), f, params(analytics.All)); !errors.Is(err, readmodel.ErrNotReady) {
			t.Errorf("%s before setup: %v, want ErrNotReady", f, err)
		}
		var projectors []projections.Projector
		for _, name := range none.Reads(f) {
			p, ok := byName[name]
			if !ok {
				t.Fatalf("%s reads %q, which is no read model", f, name)
			}
			projectors = append(projectors, p)
		}
		q := analytics.NewQueries(apptest.ReadModels(t, projectors...), nil).WithRollups()
		for _, g := range groupings {
			if _, err := q.Report(t.Context(), f, params(g)); err != nil {
				t.Errorf("%s by %q reading only %v: %v", f, g, q.Reads(f), err)
			}
		}
	}
}

// TestRollupsLeaveTheConnectionsAsTheyWere: the rollups' queries run with
// parallel workers off and more sort memory (serialSQL), for their batch
// only: every pooled connection a report used keeps the server's settings
// afterwards.
func TestRollupsLeaveTheConnectionsAsTheyWere(t *testing.T) {
	t.Parallel()
	directory, err := customers.NewProjector(customers.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pool := apptest.ReadModels(t, directory, surveys.NewProjector(), lifecycle.NewProjector(), complaints.NewProjector(),
		contacts.NewProjector(), rollups.NewProjector())
	var server string
	if err := pool.QueryRow(t.Context(), `SELECT reset_val FROM pg_settings WHERE name = 'max_parallel_workers_per_gather'`).Scan(&server); err != nil {
		t.Fatal(err)
	}
	// The other settings the reports change, as a connection has them.
	others := map[string]string{"work_mem": "", "jit": ""}
	for name := range others {
		var v string
		if err := pool.QueryRow(t.Context(), `SELECT current_setting($1)`, name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		others[name] = v
	}
	if server == "0" {
		t.Skip("the server runs without parallel workers: a leak would not show")
	}
	q := analytics.NewQueries(pool, nil).WithRollups()
	to := time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)
	for _, f := range analytics.Families() {
		if _, err := q.Report(t.Context(), f, analytics.Params{From: to.AddDate(0, -3, 0), To: to, GroupBy: analytics.Segment}); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	conns := pool.AcquireAllIdle(t.Context())
	if len(conns) == 0 {
		t.Fatal("no idle connection after the reports")
	}
	for _, c := range conns {
		var got string
		if err := c.QueryRow(t.Context(), `SHOW max_parallel_workers_per_gather`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != server {
			t.Errorf("a connection kept max_parallel_workers_per_gather = %s after a report (the server's: %s)", got, server)
		}
		for name, before := range others {
			if err := c.QueryRow(t.Context(), `SELECT current_setting($1)`, name).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != before {
				t.Errorf("a connection kept %s = %s after a report (before: %s)", name, got, before)
			}
		}
		c.Release()
	}
}
