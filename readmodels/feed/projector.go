package feed

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/integration"
	"github.com/rapport-crm/rapport/projections"
)

// Name is the projector's name; its table is readmodels.feed.
const Name = "feed"

// version of the table and of the mapping; bumping it rebuilds the feed
// (without downtime, at the same positions).
const version = 1

// Projector writes the integration event of every domain event.
type Projector struct{ mapper *integration.Mapper }

var (
	_ projections.Projector  = Projector{}
	_ projections.Indexer    = Projector{}
	_ projections.Reconciler = Projector{}
)

// NewProjector returns the feed's projector.
func NewProjector() Projector { return Projector{mapper: integration.NewMapper()} }

// Name implements projections.Projector.
func (Projector) Name() string { return Name }

// Version implements projections.Projector.
func (Projector) Version() int { return version }

// Handles implements projections.Projector: every mapped domain event
// (TestEveryDomainEventIsMapped keeps that every domain event), the
// reminders' included (their streams are projected: projections.Config).
func (p Projector) Handles() []string { return p.mapper.DomainTypes() }

// Setup implements projections.Projector.
func (Projector) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE feed (
			position    bigint      PRIMARY KEY,
			event_id    uuid        NOT NULL,
			type        text        NOT NULL,
			customer_id uuid        NOT NULL,
			revision    bigint      NOT NULL,
			occurred_at timestamptz NOT NULL,
			recorded_at timestamptz NOT NULL,
			data        jsonb       NOT NULL
		)`)
	return err
}

// CreateIndexes implements projections.Indexer: a type filter reads only
// its types; reconciliation reads per customer.
func (Projector) CreateIndexes(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE INDEX IF NOT EXISTS feed_type_idx ON feed (type, position);
		CREATE INDEX IF NOT EXISTS feed_customer_idx ON feed (customer_id, revision)`)
	return err
}

// AppliedRevisions implements projections.Reconciler: every event of a
// customer is in the feed, so its last row's revision is the last applied.
// A reminder is the only event of its own stream (revision 0), named by
// its event id (domain.ReminderStreamName); its row's revision is the
// customer's it was judged on, so reminders are left out of the
// customers' maximum.
func (Projector) AppliedRevisions(ctx context.Context, tx pgx.Tx, visit func(stream string, revision uint64) error) error {
	reminders := integration.ReminderTypes()
	if err := projections.VisitAppliedRevisions(ctx, tx, `SELECT customer_id, max(revision) FROM feed WHERE type <> ALL(ARRAY['`+strings.Join(reminders, "','")+`']) GROUP BY customer_id`, visit); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT event_id FROM feed WHERE type = ANY($1)`, reminders)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := visit(domain.ReminderStreamName(id), 0); err != nil {
			return err
		}
	}
	return nil
}

// Apply implements projections.Projector: one COPY per batch.
func (p Projector) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	rows := make([][]any, 0, len(batch))
	for i := range batch {
		d := &batch[i]
		id, err := d.CustomerID()
		if err != nil {
			return fmt.Errorf("feed: %w", err)
		}
		e, err := p.mapper.Map(integration.Source{
			EventID:    d.Record.ID,
			CustomerID: id,
			Revision:   d.Record.Revision,
			Position:   uint64(d.Record.Position),
			RecordedAt: d.Metadata.RecordedTime(d.Record.RecordedAt),
			Event:      d.Event,
		})
		if err != nil {
			return fmt.Errorf("feed: %w", err)
		}
		rows = append(rows, []any{int64(e.Position), e.ID, e.Type, e.CustomerID, int64(e.Revision), e.OccurredAt, e.RecordedAt, string(e.Data)})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"feed"},
		[]string{"position", "event_id", "type", "customer_id", "revision", "occurred_at", "recorded_at", "data"},
		pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("feed: write rows: %w", err)
	}
	return nil
}
