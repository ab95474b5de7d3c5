package goals

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/projections"
)

// Name is the projector's name; its table is readmodels.goals.
const Name = "goals"

// version of the table and of the fold; bumping it rebuilds.
const version = 1

// Projector builds the goals read model. It implements
// projections.Projector and Reconciler.
type Projector struct{}

var (
	_ projections.Projector  = Projector{}
	_ projections.Reconciler = Projector{}
)

// NewProjector returns the projector.
func NewProjector() Projector { return Projector{} }

// Name implements projections.Projector.
func (Projector) Name() string { return Name }

// Version implements projections.Projector.
func (Projector) Version() int { return version }

// Handles implements projections.Projector: the goal streams' events only.
func (Projector) Handles() []string { return domain.NewRegistry().GoalTypes() }

// Setup implements projections.Projector. Goals are few (set by people),
// so the table needs no deferred indexes.
func (Projector) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE goals (
			goal_id       uuid             PRIMARY KEY,
			name          text             NOT NULL,
			figure        text             NOT NULL,
			comparator    text             NOT NULL,
			target        double precision NOT NULL,
			period_from   timestamptz      NOT NULL,
			period_to     timestamptz      NOT NULL,
			scope_segment text,
			scope_tier    text,
			scope_region  text,
			scope_owner   text,
			closed        boolean          NOT NULL DEFAULT false,
			close_reason  text,
			set_by        text             NOT NULL,
			set_at        timestamptz      NOT NULL,
			revised_by    text,
			revised_at    timestamptz,
			closed_by     text,
			closed_at     timestamptz,
			revision      bigint           NOT NULL,
			position      bigint           NOT NULL
		);
		CREATE INDEX goals_set_at_idx ON goals (set_at, goal_id);`)
	return err
}

// AppliedRevisions implements projections.Reconciler over goal streams.
func (Projector) AppliedRevisions(ctx context.Context, tx pgx.Tx, visit func(stream string, revision uint64) error) error {
	rows, err := tx.Query(ctx, `SELECT goal_id, revision FROM goals`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id  uuid.UUID
			rev int64
		)
		if err := rows.Scan(&id, &rev); err != nil {
			return err
		}
		if err := visit(domain.GoalStreamName(id), uint64(rev)); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Apply implements projections.Projector: one statement per event (goals
// change rarely; a batch holds few of them).
func (Projector) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	for i := range batch {
		d := &batch[i]
		id, ok := domain.GoalIDFromStream(d.Record.Stream)
		if !ok {
			return fmt.Errorf("goals: event %s is in %q, not a goal stream", d.Record.ID, d.Record.Stream)
		}
		rev, pos, actor := int64(d.Record.Revision), int64(d.Record.Position), d.Metadata.Actor
		var err error
		switch e := d.Event.(type) {
		case domain.GoalSet:
			_, err = tx.Exec(ctx, `INSERT INTO goals (goal_id, name, figure, comparator, target, period_from, period_to,
					scope_segment, scope_tier, scope_region, scope_owner, set_by, set_at, revision, position)
				VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, ''), nullif($9, ''), nullif($10, ''), nullif($11, ''), $12, $13, $14, $15)`,
				id, e.Name, e.Figure, string(e.Comparator), e.Target, e.From, e.To,
				e.Scope.Segment, e.Scope.Tier, e.Scope.Region, e.Scope.Owner, actor, e.OccurredAt, rev, pos)
		case domain.GoalRevised:
			var comparator, segment, tier, region, owner *string
			if e.Comparator != nil {
				c := string(*e.Comparator)
				comparator = &c
			}
			if e.Scope != nil {
				segment, tier, region, owner = &e.Scope.Segment, &e.Scope.Tier, &e.Scope.Region, &e.Scope.Owner
			}
			_, err = tx.Exec(ctx, `UPDATE goals SET
					name = coalesce($2, name), comparator = coalesce($3, comparator), target = coalesce($4, target),
					period_from = coalesce($5, period_from), period_to = coalesce($6, period_to),
					scope_segment = CASE WHEN $7 THEN nullif($8, '') ELSE scope_segment END,
					scope_tier = CASE WHEN $7 THEN nullif($9, '') ELSE scope_tier END,
					scope_region = CASE WHEN $7 THEN nullif($10, '') ELSE scope_region END,
					scope_owner = CASE WHEN $7 THEN nullif($11, '') ELSE scope_owner END,
					revised_by = $12, revised_at = $13, revision = $14, position = $15
				WHERE goal_id = $1`,
				id, e.Name, comparator, e.Target, e.From, e.To, e.Scope != nil, segment, tier, region, owner, actor, e.OccurredAt, rev, pos)
		case domain.GoalClosed:
			_, err = tx.Exec(ctx, `UPDATE goals SET closed = true, close_reason = nullif($2, ''), closed_by = $3, closed_at = $4,
					revision = $5, position = $6 WHERE goal_id = $1`, id, e.Reason, actor, e.OccurredAt, rev, pos)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("goals: apply %s to %s: %w", d.Record.Type, id, err)
		}
	}
	return nil
}
