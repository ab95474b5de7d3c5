package surveys

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

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

// Cursor is the kind of the survey list's cursors, which continue after
// the answered_at and id of a page's last survey.
const Cursor readmodel.CursorKind = "s"

// ErrNotFound is returned for a survey the read model lacks.
var ErrNotFound = errors.New("surveys: survey not found")

// Queries reads surveys through the readmodels views.
type Queries struct{ pool *pgxpool.Pool }

// NewQueries returns the queries on pool.
func NewQueries(pool *pgxpool.Pool) *Queries { return &Queries{pool: pool} }

// Reads names the projectors whose tables the queries read: this one's.
func (*Queries) Reads() []string { return []string{Name} }

const columns = `survey_id, customer_id, csat, nps, comment, channel, answered_at, complaint_id, recorded_at, revision, position`

// Surveys returns a page of up to limit surveys of the customer, latest
// answered_at first (ties by id), after cursor ("" for the first page, or
// a previous page's NextCursor; readmodel.ErrBadCursor for another).
func (q *Queries) Surveys(ctx context.Context, customerID uuid.UUID, cursor string, limit int) (readmodel.Page[Survey], error) {
	after, err := Cursor.Continue(cursor, limit)
	if err != nil {
		return readmodel.Page[Survey]{}, fmt.Errorf("surveys: list: %w", err)
	}
	var rows pgx.Rows
	if after == nil {
		rows, err = q.pool.Query(ctx, `SELECT `+columns+` FROM readmodels.surveys WHERE customer_id = $1
			ORDER BY answered_at DESC, survey_id DESC LIMIT $2`, customerID, limit+1)
	} else {
		rows, err = q.pool.Query(ctx, `SELECT `+columns+` FROM readmodels.surveys WHERE customer_id = $1
			AND (answered_at, survey_id) < ($2, $3) ORDER BY answered_at DESC, survey_id DESC LIMIT $4`, customerID, after.At, after.ID, limit+1)
	}
	var items []Survey
	if err == nil {
		items, err = pgx.CollectRows(rows, scan)
	}
	if err != nil {
		return readmodel.Page[Survey]{}, readmodel.Fail("surveys: list", err)
	}
	return readmodel.PageOf(items, limit, Cursor, func(s Survey) readmodel.Key { return readmodel.Key{At: s.AnsweredAt, ID: s.ID} }), nil
}

// Survey returns one survey of the customer.
func (q *Queries) Survey(ctx context.Context, customerID, surveyID uuid.UUID) (Survey, error) {
	rows, err := q.pool.Query(ctx, `SELECT `+columns+` FROM readmodels.surveys WHERE customer_id = $1 AND survey_id = $2`, customerID, surveyID)
	var s Survey
	if err == nil {
		s, err = pgx.CollectExactlyOneRow(rows, scan)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return Survey{}, ErrNotFound
	}
	return s, readmodel.Fail("surveys: get", err)
}

func scan(row pgx.CollectableRow) (Survey, error) {
	var (
		s         Survey
		csat, nps *int16
		rev, pos  int64
	)
	err := row.Scan(&s.ID, &s.CustomerID, &csat, &nps, &s.Comment, &s.Channel, &s.AnsweredAt, &s.ComplaintID, &s.RecordedAt, &rev, &pos)
	s.CSAT, s.NPS = readmodel.Int(csat), readmodel.Int(nps)
	s.AnsweredAt, s.RecordedAt = s.AnsweredAt.UTC(), s.RecordedAt.UTC()
	s.Revision, s.Position = uint64(rev), uint64(pos)
	return s, err
}
