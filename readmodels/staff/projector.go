package staff

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

// Name is the projector's name; its table is readmodels.team_spells.
const Name = "staff"

// version of the table and of the fold; bumping it rebuilds.
const version = 1

// Projector builds the team spells. It implements projections.Projector,
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
func (Projector) Handles() []string { return []string{domain.TypeTeamMemberAssigned} }

// Setup implements projections.Projector. A spell is one member in one role
// of one customer, from assigned_at until the next assignment of the role
// (NULL while it lasts).
func (Projector) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE team_spells (
			customer_id uuid        NOT NULL,
			role        text        NOT NULL,
			member      text        NOT NULL,
			assigned_at timestamptz NOT NULL,
			until       timestamptz,
			revision    bigint      NOT NULL,
			position    bigint      NOT NULL,
			PRIMARY KEY (customer_id, revision)
		);`)
	return err
}

// CreateIndexes implements projections.Indexer: the open spell of a role
// (closed by the next assignment) and the account managers' spells (the
// scorecards).
func (Projector) CreateIndexes(ctx context.Context, tx pgx.Tx) error {
	for _, s := range []string{
		`CREATE INDEX IF NOT EXISTS team_spells_open_idx ON team_spells (customer_id, role) WHERE until IS NULL`,
		`CREATE INDEX IF NOT EXISTS team_spells_member_idx ON team_spells (role, member, assigned_at) INCLUDE (customer_id, until)`,
		`ANALYZE team_spells`,
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// AppliedRevisions implements projections.Reconciler: every assignment
// is a row, so the last applied revision is the largest.
func (Projector) AppliedRevisions(ctx context.Context, tx pgx.Tx, visit func(stream string, revision uint64) error) error {
	return projections.VisitAppliedRevisions(ctx, tx, `SELECT customer_id, max(revision) FROM team_spells GROUP BY customer_id`, visit)
}

// Apply implements projections.Projector: the batch's assignments are
// chained in memory per customer and role, the spell each first one
// follows is closed with one UPDATE, and the new spells are written with
// one COPY.
func (Projector) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	type roleKey struct {
		customer uuid.UUID
		role     string
	}
	type spell struct {
		member        string
		at            time.Time
		revision, pos int64
	}
	chains := map[roleKey][]spell{}
	var order []roleKey
	for i := range batch {
		d := &batch[i]
		e, ok := d.Event.(domain.TeamMemberAssigned)
		if !ok {
			continue
		}
		id, err := d.CustomerID()
		if err != nil {
			return err
		}
		k := roleKey{id, string(e.Role)}
		if _, seen := chains[k]; !seen {
			order = append(order, k)
		}
		chains[k] = append(chains[k], spell{member: e.Member, at: e.OccurredAt, revision: int64(d.Record.Revision), pos: int64(d.Record.Position)})
	}
	if len(order) == 0 {
		return nil
	}
	var (
		closeIDs   []uuid.UUID
		closeRoles []string
		closeAt    []time.Time
		rows       [][]any
	)
	for _, k := range order {
		chain := chains[k]
		closeIDs, closeRoles, closeAt = append(closeIDs, k.customer), append(closeRoles, k.role), append(closeAt, chain[0].at)
		for i, s := range chain {
			var until any
			if i+1 < len(chain) {
				until = chain[i+1].at
			}
			rows = append(rows, []any{k.customer, k.role, s.member, s.at, until, s.revision, s.pos})
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE team_spells t SET until = v.at
		FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS v(customer_id, role, at)
		WHERE t.customer_id = v.customer_id AND t.role = v.role AND t.until IS NULL`, closeIDs, closeRoles, closeAt); err != nil {
		return fmt.Errorf("staff: close spells: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"team_spells"}, []string{"customer_id", "role", "member", "assigned_at", "until", "revision", "position"},
		pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("staff: write %d spells: %w", len(rows), err)
	}
	return nil
}
