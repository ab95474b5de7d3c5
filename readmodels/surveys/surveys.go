// Package surveys is the read model of satisfaction surveys: one row per
// survey (readmodels.surveys) with its scores, channel, answered_at and
// the complaint it followed. The comment is personal: NULL when none was
// given or once the customer's data is erased; the scores stay, so the
// figures do not change.
package surveys

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/projections"
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
			var comment, channel, complaint any
			if e.Comment != "" && !d.Erased {
				comment = e.Comment
			}
			if e.Channel != "" {
				channel = string(e.Channel)
			}
			if e.ComplaintID != nil {
				complaint = *e.ComplaintID
			}
			surveys = append(surveys, []any{id, e.SurveyID, score(e.CSAT), score(e.NPS), comment, channel, e.OccurredAt, complaint, d.Record.RecordedAt, rev, pos})
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

func score(v *int) any {
	if v == nil {
		return nil
	}
	return int16(*v)
}

// Survey is one survey as the API shows it. Comment is nil when none was
// given or once the customer's data was erased.
type Survey struct {
	ID          uuid.UUID
	CustomerID  uuid.UUID
	CSAT        *int
	NPS         *int
	Comment     *string
	Channel     *string
	AnsweredAt  time.Time
	ComplaintID *uuid.UUID
	RecordedAt  time.Time
	Revision    uint64
	Position    uint64
}

// Key is a position in a list: the answered_at and id of the last survey
// of a page.
type Key struct {
	At time.Time
	ID uuid.UUID
}

// ErrNotFound is returned for a survey the read model lacks.
var ErrNotFound = errors.New("surveys: survey not found")

// Queries reads surveys through the readmodels views.
type Queries struct{ pool *pgxpool.Pool }

// NewQueries returns the queries on pool.
func NewQueries(pool *pgxpool.Pool) *Queries { return &Queries{pool: pool} }

const columns = `survey_id, customer_id, csat, nps, comment, channel, answered_at, complaint_id, recorded_at, revision, position`

// Surveys returns up to limit surveys of the customer, latest answered_at
// first (ties by id), after the key of a previous page.
func (q *Queries) Surveys(ctx context.Context, customerID uuid.UUID, after *Key, limit int) ([]Survey, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if after == nil {
		rows, err = q.pool.Query(ctx, `SELECT `+columns+` FROM readmodels.surveys WHERE customer_id = $1
			ORDER BY answered_at DESC, survey_id DESC LIMIT $2`, customerID, limit)
	} else {
		rows, err = q.pool.Query(ctx, `SELECT `+columns+` FROM readmodels.surveys WHERE customer_id = $1
			AND (answered_at, survey_id) < ($2, $3) ORDER BY answered_at DESC, survey_id DESC LIMIT $4`, customerID, after.At, after.ID, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("surveys: list: %w", err)
	}
	return pgx.CollectRows(rows, scan)
}

// Survey returns one survey of the customer.
func (q *Queries) Survey(ctx context.Context, customerID, surveyID uuid.UUID) (Survey, error) {
	rows, err := q.pool.Query(ctx, `SELECT `+columns+` FROM readmodels.surveys WHERE customer_id = $1 AND survey_id = $2`, customerID, surveyID)
	if err != nil {
		return Survey{}, fmt.Errorf("surveys: get: %w", err)
	}
	s, err := pgx.CollectExactlyOneRow(rows, scan)
	if errors.Is(err, pgx.ErrNoRows) {
		return Survey{}, ErrNotFound
	}
	return s, err
}

func scan(row pgx.CollectableRow) (Survey, error) {
	var (
		s         Survey
		csat, nps *int16
		rev, pos  int64
	)
	err := row.Scan(&s.ID, &s.CustomerID, &csat, &nps, &s.Comment, &s.Channel, &s.AnsweredAt, &s.ComplaintID, &s.RecordedAt, &rev, &pos)
	s.CSAT, s.NPS = intPtr(csat), intPtr(nps)
	s.AnsweredAt, s.RecordedAt = s.AnsweredAt.UTC(), s.RecordedAt.UTC()
	s.Revision, s.Position = uint64(rev), uint64(pos)
	return s, err
}

func intPtr(v *int16) *int {
	if v == nil {
		return nil
	}
	i := int(*v)
	return &i
}
