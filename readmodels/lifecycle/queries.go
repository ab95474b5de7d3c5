package lifecycle

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// Queries reads the life cycles through readmodels.customer_lifecycle.
type Queries struct{ pool *pgxpool.Pool }

// NewQueries returns the queries on pool.
func NewQueries(pool *pgxpool.Pool) *Queries { return &Queries{pool: pool} }

// Reads names the projectors whose tables the queries read: this one's.
func (*Queries) Reads() []string { return []string{Name} }

// Known reports whether the customer is registered (the lists of its
// contacts, complaints, surveys and follow-ups answer 404 otherwise).
func (q *Queries) Known(ctx context.Context, customerID uuid.UUID) (bool, error) {
	var known bool
	err := q.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM readmodels.customer_lifecycle WHERE customer_id = $1)`, customerID).Scan(&known)
	return known, readmodel.Fail("lifecycle: known", err)
}

// Spells returns the customer's spells, oldest first.
func (q *Queries) Spells(ctx context.Context, customerID uuid.UUID) ([]Spell, error) {
	rows, err := q.pool.Query(ctx, `SELECT customer_id, spell, registered_at, reactivated_at, churned_at, active_from, active_until, last_revision, last_position
		FROM readmodels.customer_lifecycle WHERE customer_id = $1 ORDER BY spell`, customerID)
	var spells []Spell
	if err == nil {
		spells, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Spell, error) {
			var s Spell
			var n int32
			err := row.Scan(&s.CustomerID, &n, &s.RegisteredAt, &s.ReactivatedAt, &s.ChurnedAt, &s.ActiveFrom, &s.ActiveUntil, &s.revision, &s.position)
			s.Number = int(n)
			return s, err
		})
	}
	return spells, readmodel.Fail("lifecycle: spells", err)
}
