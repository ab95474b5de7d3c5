package surveys

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// Name is the projector's name; its tables are readmodels.surveys and
// readmodels.survey_erasures.
const Name = "surveys"

// version of the tables and of the fold; bumping it rebuilds.
const version = 1

// Projector builds the surveys read model. It implements
// projections.Projector, Reconciler and Indexer.
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
	return []string{domain.TypeSurveyRecorded, domain.TypeCustomerDataErased}
}

// Setup implements projections.Projector.
func (Projector) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE surveys (
			customer_id  uuid        NOT NULL,
			survey_id    uuid        NOT NULL,
			csat         smallint,
			nps          smallint,
			comment      text,
			channel      text,
			answered_at  timestamptz NOT NULL,
			complaint_id uuid,
			recorded_at  timestamptz NOT NULL,
			revision     bigint      NOT NULL,
			position     bigint      NOT NULL,
			PRIMARY KEY (customer_id, survey_id)
		);
		CREATE TABLE survey_erasures (
			customer_id uuid        PRIMARY KEY,
			erased_at   timestamptz NOT NULL,
			revision    bigint      NOT NULL,
			position    bigint      NOT NULL
		);`)
	return err
}

// CreateIndexes implements projections.Indexer: a customer's surveys by
// recency (the list), surveys by answered_at (the figures); and
// statistics for the planner after a rebuild.
func (Projector) CreateIndexes(ctx context.Context, tx pgx.Tx) error {
	for _, s := range []string{
		`CREATE INDEX IF NOT EXISTS surveys_customer_answered_idx ON surveys (customer_id, answered_at, survey_id)`,
		`CREATE INDEX IF NOT EXISTS surveys_answered_idx ON surveys (answered_at) INCLUDE (customer_id, csat, nps)`,
		`ANALYZE surveys`,
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// AppliedRevisions implements projections.Reconciler.
func (Projector) AppliedRevisions(ctx context.Context, tx pgx.Tx, visit func(stream string, revision uint64) error) error {
	return projections.VisitAppliedRevisions(ctx, tx, `
		SELECT customer_id, max(revision) FROM (
			SELECT customer_id, revision FROM surveys
			UNION ALL SELECT customer_id, revision FROM survey_erasures) r
		GROUP BY customer_id`, visit)
}

// Apply implements projections.Projector: the batch's surveys with one
// COPY, its erasures with one UPDATE.
func (Projector) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	var surveys, erasures [][]any
	var erased []uuid.UUID
	for i := range batch {
		d := &batch[i]
		id, err := d.CustomerID()
		if err != nil {
			return err
		}
		rev, pos := int64(d.Record.Revision), int64(d.Record.Position)
		switch e := d.Event.(type) {
		case domain.SurveyRecorded:
			var channel, complaint any
			comment := readmodel.Personal(d, e.Comment)
			if e.Channel != "" {
				channel = string(e.Channel)
			}
			if e.ComplaintID != nil {
				complaint = *e.ComplaintID
			}
			surveys = append(surveys, []any{id, e.SurveyID, readmodel.SmallInt(e.CSAT), readmodel.SmallInt(e.NPS), comment, channel, e.OccurredAt, complaint, d.Record.RecordedAt, rev, pos})
		case domain.CustomerDataErased:
			erasures = append(erasures, []any{id, e.OccurredAt, rev, pos})
			erased = append(erased, id)
		}
	}
	if len(surveys) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"surveys"},
			[]string{"customer_id", "survey_id", "csat", "nps", "comment", "channel", "answered_at", "complaint_id", "recorded_at", "revision", "position"},
			pgx.CopyFromRows(surveys)); err != nil {
			return fmt.Errorf("surveys: write %d surveys: %w", len(surveys), err)
		}
	}
	if len(erased) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE surveys SET comment = NULL WHERE customer_id = ANY($1) AND comment IS NOT NULL`, erased); err != nil {
			return fmt.Errorf("surveys: erase: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"survey_erasures"}, []string{"customer_id", "erased_at", "revision", "position"},
			pgx.CopyFromRows(erasures)); err != nil {
			return fmt.Errorf("surveys: erase: %w", err)
		}
	}
	return nil
}
