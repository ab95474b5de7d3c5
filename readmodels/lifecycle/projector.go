package lifecycle

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/projections"
)

// Name is the projector's name; its table is readmodels.customer_lifecycle.
const Name = "lifecycle"

// version of the table and of the fold; bumping it rebuilds.
const version = 1

// Projector builds the life cycles. It implements projections.Projector,
// Reconciler and Indexer.
type Projector struct{}

var (
	_ projections.Projector  = Projector{}
	_ projections.Reconciler = Projector{}
	_ projections.Indexer    = Projector{}
)

// NewProjector returns the projector.
func NewProjector() Projector { return Projector{} }

// Name implements projections.Projector.
func (Projector) Name() string { return Name }

// Version implements projections.Projector.
func (Projector) Version() int { return version }

// Handles implements projections.Projector.
func (Projector) Handles() []string {
	return []string{domain.TypeCustomerRegistered, domain.TypeCustomerChurned, domain.TypeCustomerReactivated}
}

// Setup implements projections.Projector.
func (Projector) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE customer_lifecycle (
			customer_id    uuid        NOT NULL,
			spell          integer     NOT NULL,
			registered_at  timestamptz NOT NULL,
			reactivated_at timestamptz,
			churned_at     timestamptz,
			active_from    timestamptz NOT NULL,
			active_until   timestamptz,
			last_revision  bigint      NOT NULL,
			last_position  bigint      NOT NULL,
			PRIMARY KEY (customer_id, spell),
			CHECK (active_until IS NULL OR active_until >= active_from)
		) WITH (fillfactor = 90)`)
	return err
}

// CreateIndexes implements projections.Indexer: spells by start and by
// churn; and statistics for the planner after a rebuild.
func (Projector) CreateIndexes(ctx context.Context, tx pgx.Tx) error {
	for _, s := range []string{
		`CREATE INDEX IF NOT EXISTS customer_lifecycle_from_idx ON customer_lifecycle (active_from) INCLUDE (customer_id, active_until)`,
		`CREATE INDEX IF NOT EXISTS customer_lifecycle_churned_idx ON customer_lifecycle (churned_at) WHERE churned_at IS NOT NULL`,
		`ANALYZE customer_lifecycle`,
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// AppliedRevisions implements projections.Reconciler.
func (Projector) AppliedRevisions(ctx context.Context, tx pgx.Tx, visit func(stream string, revision uint64) error) error {
	return projections.VisitAppliedRevisions(ctx, tx, `SELECT customer_id, max(last_revision) FROM customer_lifecycle GROUP BY customer_id`, visit)
}

// Spell is one active spell of a customer.
type Spell struct {
	CustomerID uuid.UUID
	// Number counts the customer's spells from 1 (the registration).
	Number        int
	RegisteredAt  time.Time
	ReactivatedAt *time.Time // nil for the first spell
	// ChurnedAt is the churned_at of the churn that ended the spell, as
	// recorded (it may be back-dated); nil while the spell lasts.
	ChurnedAt *time.Time
	// ActiveFrom and ActiveUntil bound the spell, [from, until): the
	// registration or reactivation, and the churn. A churn back-dated
	// before the spell's start ends it where it starts (an empty spell),
	// and a reactivation never starts before the previous spell's end, so
	// a customer's spells never overlap.
	ActiveFrom  time.Time
	ActiveUntil *time.Time
	revision    int64
	position    int64
	dirty       bool
}

// Evolve applies one life-cycle event to a customer's last spell (nil
// before registration) and returns the spell the event leaves current:
// the same one, or a new one for a reactivation. Events that do not fit
// (a second registration, a churn while churned, a reactivation while
// active: Decide refuses them) change nothing.
func Evolve(last *Spell, customerID uuid.UUID, e domain.Event) (current *Spell, changed bool) {
	switch e := e.(type) {
	case domain.CustomerRegistered:
		if last != nil {
			return last, false
		}
		return &Spell{CustomerID: customerID, Number: 1, RegisteredAt: e.OccurredAt, ActiveFrom: e.OccurredAt}, true
	case domain.CustomerChurned:
		if last == nil || last.ActiveUntil != nil {
			return last, false
		}
		churned := e.OccurredAt
		until := churned
		if until.Before(last.ActiveFrom) {
			until = last.ActiveFrom
		}
		last.ChurnedAt, last.ActiveUntil = &churned, &until
		return last, true
	case domain.CustomerReactivated:
		if last == nil || last.ActiveUntil == nil {
			return last, false
		}
		reactivated := e.OccurredAt
		from := reactivated
		if from.Before(*last.ActiveUntil) {
			from = *last.ActiveUntil
		}
		return &Spell{CustomerID: customerID, Number: last.Number + 1, RegisteredAt: last.RegisteredAt, ReactivatedAt: &reactivated, ActiveFrom: from}, true
	}
	return last, false
}

// Apply implements projections.Projector: load the batch's customers'
// last spells with one query, fold in memory, upsert the changed spells
// with one statement.
func (Projector) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	var ids []uuid.UUID
	seen := map[uuid.UUID]bool{}
	for i := range batch {
		id, err := batch[i].CustomerID()
		if err != nil {
			return err
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	last, err := loadLast(ctx, tx, ids)
	if err != nil {
		return err
	}
	var changed []*Spell
	for i := range batch {
		d := &batch[i]
		id, _ := d.CustomerID()
		cur := last[id]
		next, ok := Evolve(cur, id, d.Event)
		if !ok {
			continue
		}
		next.revision, next.position = int64(d.Record.Revision), int64(d.Record.Position)
		if !next.dirty {
			next.dirty = true
			changed = append(changed, next)
		}
		last[id] = next
	}
	return write(ctx, tx, changed)
}

func loadLast(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]*Spell, error) {
	out := make(map[uuid.UUID]*Spell, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `
		SELECT DISTINCT ON (customer_id) customer_id, spell, registered_at, reactivated_at, churned_at, active_from, active_until, last_revision, last_position
		FROM customer_lifecycle WHERE customer_id = ANY($1) ORDER BY customer_id, spell DESC`, ids)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		s := &Spell{}
		var n int32
		if err := rows.Scan(&s.CustomerID, &n, &s.RegisteredAt, &s.ReactivatedAt, &s.ChurnedAt, &s.ActiveFrom, &s.ActiveUntil, &s.revision, &s.position); err != nil {
			return nil, fmt.Errorf("lifecycle: load: %w", err)
		}
		s.Number = int(n)
		out[s.CustomerID] = s
	}
	return out, rows.Err()
}

func write(ctx context.Context, tx pgx.Tx, spells []*Spell) error {
	if len(spells) == 0 {
		return nil
	}
	n := len(spells)
	var (
		ids                             = make([]uuid.UUID, 0, n)
		numbers                         = make([]int32, 0, n)
		registered, reactivated, churns = make([]time.Time, 0, n), make([]*time.Time, 0, n), make([]*time.Time, 0, n)
		from, until                     = make([]time.Time, 0, n), make([]*time.Time, 0, n)
		revisions, positions            = make([]int64, 0, n), make([]int64, 0, n)
	)
	for _, s := range spells {
		ids, numbers = append(ids, s.CustomerID), append(numbers, int32(s.Number))
		registered, reactivated, churns = append(registered, s.RegisteredAt), append(reactivated, s.ReactivatedAt), append(churns, s.ChurnedAt)
		from, until = append(from, s.ActiveFrom), append(until, s.ActiveUntil)
		revisions, positions = append(revisions, s.revision), append(positions, s.position)
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO customer_lifecycle (customer_id, spell, registered_at, reactivated_at, churned_at, active_from, active_until, last_revision, last_position)
		SELECT * FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[], $7::timestamptz[], $8::bigint[], $9::bigint[])
		ON CONFLICT (customer_id, spell) DO UPDATE SET churned_at = EXCLUDED.churned_at, active_until = EXCLUDED.active_until,
			last_revision = EXCLUDED.last_revision, last_position = EXCLUDED.last_position`,
		ids, numbers, registered, reactivated, churns, from, until, revisions, positions)
	if err != nil {
		return fmt.Errorf("lifecycle: write %d spells: %w", n, err)
	}
	return nil
}
