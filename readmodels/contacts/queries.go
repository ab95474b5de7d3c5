package contacts

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

// Contact is one contact as the API shows it. Summary is nil once the
// customer's data was erased.
type Contact struct {
	ID         uuid.UUID
	CustomerID uuid.UUID
	Channel    string
	Direction  string
	Summary    *string
	By         string
	OccurredAt time.Time
	LoggedAt   time.Time
	Revision   uint64
	Position   uint64
}

// FollowUp is one follow-up. Note is nil when none was given or once the
// customer's data was erased; DoneAt is the occurred_at of the contact
// that completed it.
type FollowUp struct {
	ID              uuid.UUID
	CustomerID      uuid.UUID
	DueAt           time.Time
	By              string
	Note            *string
	ScheduledAt     time.Time
	DoneAt          *time.Time
	DoneByContactID *uuid.UUID
	Revision        uint64
	Position        uint64
}

// Overdue reports whether the follow-up is past due at now without a
// contact since it was scheduled.
func (f FollowUp) Overdue(now time.Time) bool { return f.DoneAt == nil && now.After(f.DueAt) }

// The kinds of the lists' cursors: a contact list's cursor is refused by
// the follow-up list and every other list.
const (
	ContactsCursor  readmodel.CursorKind = "c"
	FollowUpsCursor readmodel.CursorKind = "f"
)

// ErrNotFound is returned for a contact or follow-up the read model lacks.
var ErrNotFound = errors.New("contacts: not found")

// Queries reads contacts and follow-ups through the readmodels views.
type Queries struct{ pool *pgxpool.Pool }

// NewQueries returns the queries on pool.
func NewQueries(pool *pgxpool.Pool) *Queries { return &Queries{pool: pool} }

// Reads names the projectors whose tables the queries read: this one's.
func (*Queries) Reads() []string { return []string{Name} }

const contactColumns = `contact_id, customer_id, channel, direction, summary, by, occurred_at, logged_at, revision, position`

// Contacts returns a page of up to limit contacts of the customer, latest
// occurred_at first (ties by id), after cursor ("" for the first page, or
// a previous page's NextCursor; readmodel.ErrBadCursor for another).
func (q *Queries) Contacts(ctx context.Context, customerID uuid.UUID, cursor string, limit int) (readmodel.Page[Contact], error) {
	after, err := ContactsCursor.Continue(cursor, limit)
	if err != nil {
		return readmodel.Page[Contact]{}, fmt.Errorf("contacts: list: %w", err)
	}
	var rows pgx.Rows
	if after == nil {
		rows, err = q.pool.Query(ctx, `SELECT `+contactColumns+` FROM readmodels.contacts WHERE customer_id = $1
			ORDER BY occurred_at DESC, contact_id DESC LIMIT $2`, customerID, limit+1)
	} else {
		rows, err = q.pool.Query(ctx, `SELECT `+contactColumns+` FROM readmodels.contacts WHERE customer_id = $1
			AND (occurred_at, contact_id) < ($2, $3) ORDER BY occurred_at DESC, contact_id DESC LIMIT $4`, customerID, after.At, after.ID, limit+1)
	}
	var items []Contact
	if err == nil {
		items, err = pgx.CollectRows(rows, scanContact)
	}
	if err != nil {
		return readmodel.Page[Contact]{}, readmodel.Fail("contacts: list", err)
	}
	return readmodel.PageOf(items, limit, ContactsCursor, func(c Contact) readmodel.Key { return readmodel.Key{At: c.OccurredAt, ID: c.ID} }), nil
}

// Contact returns one contact of the customer.
func (q *Queries) Contact(ctx context.Context, customerID, contactID uuid.UUID) (Contact, error) {
	rows, err := q.pool.Query(ctx, `SELECT `+contactColumns+` FROM readmodels.contacts WHERE customer_id = $1 AND contact_id = $2`, customerID, contactID)
	var c Contact
	if err == nil {
		c, err = pgx.CollectExactlyOneRow(rows, scanContact)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return Contact{}, ErrNotFound
	}
	return c, readmodel.Fail("contacts: get", err)
}

func scanContact(row pgx.CollectableRow) (Contact, error) {
	var (
		c        Contact
		rev, pos int64
	)
	err := row.Scan(&c.ID, &c.CustomerID, &c.Channel, &c.Direction, &c.Summary, &c.By, &c.OccurredAt, &c.LoggedAt, &rev, &pos)
	c.Revision, c.Position = uint64(rev), uint64(pos)
	c.OccurredAt, c.LoggedAt = c.OccurredAt.UTC(), c.LoggedAt.UTC()
	return c, err
}

const followUpColumns = `follow_up_id, customer_id, due_at, by, note, scheduled_at, done_at, done_by_contact_id, revision, position`

// FollowUps returns a page of up to limit follow-ups of the customer,
// soonest due first (ties by id), after cursor ("" for the first page, or
// a previous page's NextCursor; readmodel.ErrBadCursor for another).
func (q *Queries) FollowUps(ctx context.Context, customerID uuid.UUID, cursor string, limit int) (readmodel.Page[FollowUp], error) {
	after, err := FollowUpsCursor.Continue(cursor, limit)
	if err != nil {
		return readmodel.Page[FollowUp]{}, fmt.Errorf("contacts: list follow-ups: %w", err)
	}
	var rows pgx.Rows
	if after == nil {
		rows, err = q.pool.Query(ctx, `SELECT `+followUpColumns+` FROM readmodels.follow_ups WHERE customer_id = $1
			ORDER BY due_at, follow_up_id LIMIT $2`, customerID, limit+1)
	} else {
		rows, err = q.pool.Query(ctx, `SELECT `+followUpColumns+` FROM readmodels.follow_ups WHERE customer_id = $1
			AND (due_at, follow_up_id) > ($2, $3) ORDER BY due_at, follow_up_id LIMIT $4`, customerID, after.At, after.ID, limit+1)
	}
	var items []FollowUp
	if err == nil {
		items, err = pgx.CollectRows(rows, scanFollowUp)
	}
	if err != nil {
		return readmodel.Page[FollowUp]{}, readmodel.Fail("contacts: list follow-ups", err)
	}
	return readmodel.PageOf(items, limit, FollowUpsCursor, func(f FollowUp) readmodel.Key { return readmodel.Key{At: f.DueAt, ID: f.ID} }), nil
}

// FollowUp returns one follow-up of the customer.
func (q *Queries) FollowUp(ctx context.Context, customerID, followUpID uuid.UUID) (FollowUp, error) {
	rows, err := q.pool.Query(ctx, `SELECT `+followUpColumns+` FROM readmodels.follow_ups WHERE customer_id = $1 AND follow_up_id = $2`, customerID, followUpID)
	var f FollowUp
	if err == nil {
		f, err = pgx.CollectExactlyOneRow(rows, scanFollowUp)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return FollowUp{}, ErrNotFound
	}
	return f, readmodel.Fail("contacts: get follow-up", err)
}

func scanFollowUp(row pgx.CollectableRow) (FollowUp, error) {
	var (
		f        FollowUp
		rev, pos int64
	)
	err := row.Scan(&f.ID, &f.CustomerID, &f.DueAt, &f.By, &f.Note, &f.ScheduledAt, &f.DoneAt, &f.DoneByContactID, &rev, &pos)
	f.Revision, f.Position = uint64(rev), uint64(pos)
	f.DueAt, f.ScheduledAt, f.DoneAt = f.DueAt.UTC(), f.ScheduledAt.UTC(), readmodel.UTC(f.DoneAt)
	return f, err
}
