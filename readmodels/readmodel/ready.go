package readmodel

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotReady says a read model cannot answer yet: its tables do not exist
// because its projector has not created its first generation (the
// service's first start, or a projector run by another process that has
// not started). It passes by itself; the API answers it 503 with
// Retry-After.
var ErrNotReady = errors.New("readmodel: the read model is not ready yet")

// undefinedTable is PostgreSQL's SQLSTATE for a relation that does not
// exist (42P01): the readmodels.* view of a projector that has not created
// its tables yet.
const undefinedTable = "42P01"

// Fail wraps the error of the read-model query op ("contacts: list"): one
// that found its tables missing matches ErrNotReady (errors.Is), and every
// error keeps its cause (errors.As finds the *pgconn.PgError).
func Fail(op string, err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == undefinedTable {
		return fmt.Errorf("%s: %w: %w", op, ErrNotReady, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
