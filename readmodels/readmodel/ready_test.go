package readmodel_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// TestFail: a query of a view that does not exist yet is ErrNotReady (and
// keeps PostgreSQL's error); any other failure is not.
func TestFail(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := t.Context()
	_, err := pool.Exec(ctx, `SELECT * FROM readmodels.not_there`)
	err = readmodel.Fail("test: list", err)
	var pgErr *pgconn.PgError
	if !errors.Is(err, readmodel.ErrNotReady) || !errors.As(err, &pgErr) {
		t.Errorf("missing table: %v", err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE t (x int)`); err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `SELECT y FROM t`)
	if err = readmodel.Fail("test: list", err); err == nil || errors.Is(err, readmodel.ErrNotReady) || !errors.As(err, &pgErr) {
		t.Errorf("missing column: %v", err)
	}
	if readmodel.Fail("test", nil) != nil {
		t.Error("Fail(nil) is not nil")
	}
}
