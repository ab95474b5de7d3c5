package analytics_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// asRole runs fn in a transaction as role (the test's connection is a
// superuser's, which may SET ROLE to a role it cannot log in as).
func asRole(ctx context.Context, conn *pgx.Conn, role, sql string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+pgx.Identifier{role}.Sanitize()); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, sql)
	if err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

func insufficientPrivilege(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

// TestReadOnlyRole checks migration 00005: rapport_readonly may read every
// readmodels view, including views (re)created after the migration by the
// service, and nothing else.
func TestReadOnlyRole(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	ctx := t.Context()
	res, err := m.Commands.Handle(ctx, commandRegister("+1 555 0123"))
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := m.Engine.WaitForPosition(wctx, res.Position); err != nil {
		t.Fatal(err)
	}
	// A rebuild re-creates a projector's tables and repoints its views.
	if err := m.Engine.Rebuild(ctx, surveys.Name, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := m.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// A view the service creates after the migration (as a new projector
	// would) is readable too: default privileges.
	view := "later_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	if _, err := conn.Exec(ctx, `CREATE VIEW readmodels.`+view+` AS SELECT 1 AS x`); err != nil {
		t.Fatal(err)
	}
	var views []string
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.views WHERE table_schema = 'readmodels' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	views, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"contacts", "follow_ups", "complaints", "complaint_events", "surveys", "customer_lifecycle", "customers", view} {
		found := false
		for _, v := range views {
			found = found || v == want
		}
		if !found {
			t.Errorf("no view readmodels.%s (views: %v)", want, views)
		}
	}
	for _, v := range views {
		if err := asRole(ctx, conn.Conn(), "rapport_readonly", `SELECT * FROM readmodels.`+pgx.Identifier{v}.Sanitize()+` LIMIT 1`); err != nil {
			t.Errorf("rapport_readonly cannot read readmodels.%s: %v", v, err)
		}
	}
	var schema string
	if err := conn.QueryRow(ctx, `SELECT schema_name FROM projections.generations WHERE projector = 'surveys' AND state = 'active'`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`SELECT * FROM eventstore.events LIMIT 1`,
		`SELECT * FROM rapport.api_keys LIMIT 1`,
		`SELECT * FROM rapport.customer_keys LIMIT 1`,
		`SELECT * FROM ` + pgx.Identifier{schema, "surveys"}.Sanitize() + ` LIMIT 1`,
		`UPDATE readmodels.contacts SET by = by`,
		`DELETE FROM readmodels.surveys`,
		`CREATE VIEW readmodels.mine AS SELECT 1`,
	} {
		if err := asRole(ctx, conn.Conn(), "rapport_readonly", sql); !insufficientPrivilege(err) {
			t.Errorf("rapport_readonly: %s: %v, want permission denied", sql, err)
		}
	}
	if _, err := conn.Exec(ctx, `DROP VIEW readmodels.`+view); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnlyRoleMigrationRace runs the migration's role creation on
// several databases of the cluster at once, as parallel test processes do,
// with a fresh role name so that the creation really races: every run
// succeeds and the role exists once.
func TestReadOnlyRoleMigrationRace(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../infra/postgres/migrations/00005_readonly_role.sql")
	if err != nil {
		t.Fatal(err)
	}
	up, _, _ := strings.Cut(string(raw), "-- +goose Down")
	_, block, ok := strings.Cut(up, "-- +goose StatementBegin")
	block, _, ok2 := strings.Cut(block, "-- +goose StatementEnd")
	if !ok || !ok2 {
		t.Fatal("the migration has no statement block")
	}
	role := "rapport_ro_race_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	block = strings.ReplaceAll(block, "rapport_readonly", role)
	ctx := t.Context()
	const databases = 6
	conns := make([]*pgx.Conn, databases)
	for i := range conns {
		conn, err := pgx.Connect(ctx, pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		if _, err := conn.Exec(ctx, `CREATE SCHEMA readmodels; CREATE VIEW readmodels.v AS SELECT 1 AS x`); err != nil {
			t.Fatal(err)
		}
		conns[i] = conn
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, conn := range conns {
			_, _ = conn.Exec(ctx, `DROP OWNED BY `+pgx.Identifier{role}.Sanitize())
		}
		_, _ = conns[0].Exec(ctx, `DROP ROLE IF EXISTS `+pgx.Identifier{role}.Sanitize())
	})
	for round := range 2 { // the second round finds the role: idempotent
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, conn := range conns {
			wg.Go(func() {
				<-start
				if _, err := conn.Exec(ctx, block); err != nil {
					t.Errorf("round %d, database %d: %v", round, i, err)
				}
			})
		}
		close(start)
		wg.Wait()
	}
	for i, conn := range conns {
		if err := asRole(ctx, conn, role, `SELECT x FROM readmodels.v`); err != nil {
			t.Errorf("database %d: %v", i, err)
		}
	}
	var n int
	if err := conns[0].QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = $1`, role).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d roles named %s (%v)", n, role, err)
	}
}

func commandRegister(phone string) commands.Request {
	return commands.Request{CustomerID: uuid.Nil, Command: domain.RegisterCustomer{Name: "Ro", Phone: phone}, CommandID: uuid.New(), Actor: "tester"}
}
