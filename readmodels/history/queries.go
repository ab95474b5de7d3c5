package history

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// Entry is one line of a customer's audit history.
type Entry struct {
	Revision      uint64    `json:"revision"`
	Position      uint64    `json:"position"`
	EventID       uuid.UUID `json:"event_id"`
	EventType     string    `json:"type"`
	RecordedAt    time.Time `json:"recorded_at"`
	OccurredAt    time.Time `json:"occurred_at"`
	Actor         string    `json:"actor"`
	CorrelationID string    `json:"correlation_id"`
	CausationID   uuid.UUID `json:"causation_id"`
	Summary       string    `json:"summary"`
	// Details are the event's non-personal fields; Personal its personal
	// fields, null once the customer's data was erased.
	Details  map[string]any `json:"details"`
	Personal map[string]any `json:"personal"`
	// Changes maps each changed field to {before, after}: classification
	// changes in Changes, profile (personal) changes in PersonalChanges.
	Changes         map[string]any `json:"changes"`
	PersonalChanges map[string]any `json:"personal_changes"`
}

// Filter narrows a history.
type Filter struct {
	// Types keeps only these event types (full names).
	Types []string
	// From and To bound recorded_at (inclusive, exclusive); zero: open.
	From, To time.Time
}

// Page is a page of history, oldest first.
type Page = readmodel.Page[Entry]

// A cursor of a history is the revision after which the next page starts,
// in decimal.
func decodeCursor(cursor string) (int64, error) {
	rev, err := strconv.ParseUint(cursor, 10, 63)
	if err != nil {
		return 0, readmodel.ErrBadCursor
	}
	return int64(rev), nil
}

// ValidCursor reports whether cursor is one History made.
func ValidCursor(cursor string) bool {
	_, err := decodeCursor(cursor)
	return err == nil
}

// Queries reads the audit history.
type Queries struct{ pool *pgxpool.Pool }

// NewQueries returns the history queries.
func NewQueries(pool *pgxpool.Pool) *Queries { return &Queries{pool: pool} }

// Reads names the projectors whose tables the queries read: this one's.
func (*Queries) Reads() []string { return []string{Name} }

// History returns a page of up to limit entries of the customer's history
// in revision order, after cursor ("" for the first page, or a previous
// page's NextCursor; readmodel.ErrBadCursor for another); an empty page
// when the customer has none (or none matching).
func (q *Queries) History(ctx context.Context, customerID uuid.UUID, f Filter, cursor string, limit int) (Page, error) {
	if limit < 1 {
		return Page{}, fmt.Errorf("history: limit %d is not positive", limit)
	}
	after := int64(-1)
	if cursor != "" {
		rev, err := decodeCursor(cursor)
		if err != nil {
			return Page{}, fmt.Errorf("history: %w", err)
		}
		after = rev
	}
	var from, to *time.Time
	if !f.From.IsZero() {
		from = &f.From
	}
	if !f.To.IsZero() {
		to = &f.To
	}
	var types []string
	if len(f.Types) > 0 {
		types = f.Types
	}
	rows, err := q.pool.Query(ctx, `
		SELECT revision, position, event_id, event_type, recorded_at, occurred_at, actor, correlation_id, causation_id,
		       summary, details, personal, changes, personal_changes
		FROM readmodels.history
		WHERE customer_id = $1 AND revision > $2
		  AND ($3::text[] IS NULL OR event_type = ANY($3))
		  AND ($4::timestamptz IS NULL OR recorded_at >= $4)
		  AND ($5::timestamptz IS NULL OR recorded_at < $5)
		ORDER BY revision
		LIMIT $6`,
		customerID, after, types, from, to, limit+1)
	if err != nil {
		return Page{}, readmodel.Fail("history: query", err)
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Entry, error) {
		var (
			e                                    Entry
			rev, pos                             int64
			details, personal, changes, pChanges []byte
		)
		if err := row.Scan(&rev, &pos, &e.EventID, &e.EventType, &e.RecordedAt, &e.OccurredAt, &e.Actor, &e.CorrelationID, &e.CausationID,
			&e.Summary, &details, &personal, &changes, &pChanges); err != nil {
			return e, err
		}
		e.Revision, e.Position = uint64(rev), uint64(pos)
		e.RecordedAt, e.OccurredAt = e.RecordedAt.UTC(), e.OccurredAt.UTC()
		for _, f := range []struct {
			raw []byte
			dst *map[string]any
		}{{details, &e.Details}, {personal, &e.Personal}, {changes, &e.Changes}, {pChanges, &e.PersonalChanges}} {
			if f.raw != nil {
				if err := json.Unmarshal(f.raw, f.dst); err != nil {
					return e, err
				}
			}
		}
		return e, nil
	})
	if err != nil {
		return Page{}, readmodel.Fail("history: query", err)
	}
	page := Page{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.NextCursor = strconv.FormatUint(page.Items[limit-1].Revision, 10)
	}
	return page, nil
}
