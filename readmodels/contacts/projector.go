package contacts

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// Name is the projector's name; its tables are readmodels.contacts,
// readmodels.follow_ups and readmodels.contact_erasures.
const Name = "contacts"

// version of the tables and of the fold; bumping it rebuilds.
const version = 1

// Projector builds the contacts and follow-ups read model. It implements
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
	return []string{domain.TypeContactLogged, domain.TypeFollowUpScheduled, domain.TypeCustomerDataErased}
}

// Setup implements projections.Projector. The primary keys lead with the
// customer: the fold loads a customer's pending follow-ups and erasure
// nulls a customer's rows through them, also while a rebuild defers the
// other indexes.
func (Projector) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE contacts (
			customer_id uuid        NOT NULL,
			contact_id  uuid        NOT NULL,
			channel     text        NOT NULL,
			direction   text        NOT NULL,
			summary     text,
			by          text        NOT NULL,
			occurred_at timestamptz NOT NULL,
			logged_at   timestamptz NOT NULL,
			revision    bigint      NOT NULL,
			position    bigint      NOT NULL,
			PRIMARY KEY (customer_id, contact_id)
		);
		CREATE TABLE follow_ups (
			customer_id        uuid        NOT NULL,
			follow_up_id       uuid        NOT NULL,
			due_at             timestamptz NOT NULL,
			by                 text        NOT NULL,
			note               text,
			scheduled_at       timestamptz NOT NULL,
			done_at            timestamptz,
			done_by_contact_id uuid,
			revision           bigint      NOT NULL,
			position           bigint      NOT NULL,
			PRIMARY KEY (customer_id, follow_up_id)
		) WITH (fillfactor = 90);
		CREATE TABLE contact_erasures (
			customer_id uuid        PRIMARY KEY,
			erased_at   timestamptz NOT NULL,
			revision    bigint      NOT NULL,
			position    bigint      NOT NULL
		);`)
	return err
}

// CreateIndexes implements projections.Indexer: a customer's contacts by
// recency (the list, and contact coverage), follow-ups by due date; and
// statistics, so that the figures' queries are planned well right after a
// rebuild.
func (Projector) CreateIndexes(ctx context.Context, tx pgx.Tx) error {
	for _, s := range []string{
		`CREATE INDEX IF NOT EXISTS contacts_recency_idx ON contacts (customer_id, occurred_at, contact_id)`,
		`CREATE INDEX IF NOT EXISTS contacts_occurred_idx ON contacts (occurred_at)`,
		`CREATE INDEX IF NOT EXISTS follow_ups_due_idx ON follow_ups (customer_id, due_at, follow_up_id)`,
		`CREATE INDEX IF NOT EXISTS follow_ups_overdue_idx ON follow_ups (due_at) INCLUDE (done_at)`,
		// The pending follow-ups in the work queue's order (readmodels/work).
		// A generation made before it gets it at its next rebuild; the
		// queue is right without it, only slower.
		`CREATE INDEX IF NOT EXISTS follow_ups_pending_idx ON follow_ups (due_at, follow_up_id) WHERE done_at IS NULL`,
		`ANALYZE contacts`,
		`ANALYZE follow_ups`,
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// AppliedRevisions implements projections.Reconciler: every handled event
// leaves a row carrying its revision (a contact, a follow-up, an erasure).
func (Projector) AppliedRevisions(ctx context.Context, tx pgx.Tx, visit func(stream string, revision uint64) error) error {
	return projections.VisitAppliedRevisions(ctx, tx, `
		SELECT customer_id, max(revision) FROM (
			SELECT customer_id, revision FROM contacts
			UNION ALL SELECT customer_id, revision FROM follow_ups
			UNION ALL SELECT customer_id, revision FROM contact_erasures) r
		GROUP BY customer_id`, visit)
}

// followUp is a follow-up the fold may complete.
type followUp struct {
	customer    uuid.UUID
	id          uuid.UUID
	scheduledAt time.Time
	doneAt      time.Time
	doneBy      uuid.UUID
	// row is the whole row of a follow-up scheduled in this batch (nil
	// for one loaded from the table, of which only completion changes).
	row   []any
	dirty bool
}

// Apply implements projections.Projector.
func (Projector) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	// The customers whose pending follow-ups a contact of this batch may
	// complete.
	var withContacts []uuid.UUID
	seen := map[uuid.UUID]bool{}
	for i := range batch {
		if _, ok := batch[i].Event.(domain.ContactLogged); ok {
			id, err := batch[i].CustomerID()
			if err != nil {
				return err
			}
			if !seen[id] {
				seen[id] = true
				withContacts = append(withContacts, id)
			}
		}
	}
	pending, err := loadPending(ctx, tx, withContacts)
	if err != nil {
		return err
	}
	var (
		contactRows [][]any
		newFollowUp []*followUp
		erasures    [][]any
		erased      []uuid.UUID
	)
	for i := range batch {
		d := &batch[i]
		id, err := d.CustomerID()
		if err != nil {
			return err
		}
		rev, pos := int64(d.Record.Revision), int64(d.Record.Position)
		switch e := d.Event.(type) {
		case domain.ContactLogged:
			contactRows = append(contactRows, []any{id, e.ContactID, string(e.Channel), string(e.Direction), readmodel.Personal(d, e.Summary), e.By,
				e.OccurredAt, d.Record.RecordedAt, rev, pos})
			for _, f := range pending[id] {
				if f.doneAt.IsZero() && !e.OccurredAt.Before(f.scheduledAt) {
					f.doneAt, f.doneBy, f.dirty = e.OccurredAt, e.ContactID, true
				}
			}
		case domain.FollowUpScheduled:
			f := &followUp{customer: id, id: e.FollowUpID, scheduledAt: e.OccurredAt,
				row: []any{id, e.FollowUpID, e.DueAt, e.By, readmodel.Personal(d, e.Note), e.OccurredAt, nil, nil, rev, pos}}
			pending[id] = append(pending[id], f)
			newFollowUp = append(newFollowUp, f)
		case domain.CustomerDataErased:
			erasures = append(erasures, []any{id, e.OccurredAt, rev, pos})
			erased = append(erased, id)
		}
	}
	if len(contactRows) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"contacts"},
			[]string{"customer_id", "contact_id", "channel", "direction", "summary", "by", "occurred_at", "logged_at", "revision", "position"},
			pgx.CopyFromRows(contactRows)); err != nil {
			return fmt.Errorf("contacts: write %d contacts: %w", len(contactRows), err)
		}
	}
	if len(newFollowUp) > 0 {
		rows := make([][]any, len(newFollowUp))
		for i, f := range newFollowUp {
			if !f.doneAt.IsZero() {
				f.row[6], f.row[7] = f.doneAt, f.doneBy
			}
			rows[i] = f.row
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"follow_ups"},
			[]string{"customer_id", "follow_up_id", "due_at", "by", "note", "scheduled_at", "done_at", "done_by_contact_id", "revision", "position"},
			pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("contacts: write %d follow-ups: %w", len(rows), err)
		}
	}
	if err := writeCompletions(ctx, tx, pending); err != nil {
		return err
	}
	if len(erased) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE contacts SET summary = NULL WHERE customer_id = ANY($1) AND summary IS NOT NULL`, erased); err != nil {
			return fmt.Errorf("contacts: erase: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE follow_ups SET note = NULL WHERE customer_id = ANY($1) AND note IS NOT NULL`, erased); err != nil {
			return fmt.Errorf("contacts: erase: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"contact_erasures"}, []string{"customer_id", "erased_at", "revision", "position"},
			pgx.CopyFromRows(erasures)); err != nil {
			return fmt.Errorf("contacts: erase: %w", err)
		}
	}
	return nil
}

// loadPending reads the follow-ups of customers that no contact has
// completed yet.
func loadPending(ctx context.Context, tx pgx.Tx, customers []uuid.UUID) (map[uuid.UUID][]*followUp, error) {
	out := map[uuid.UUID][]*followUp{}
	if len(customers) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT customer_id, follow_up_id, scheduled_at FROM follow_ups WHERE customer_id = ANY($1) AND done_at IS NULL`, customers)
	if err != nil {
		return nil, fmt.Errorf("contacts: load follow-ups: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		f := &followUp{}
		if err := rows.Scan(&f.customer, &f.id, &f.scheduledAt); err != nil {
			return nil, fmt.Errorf("contacts: load follow-ups: %w", err)
		}
		out[f.customer] = append(out[f.customer], f)
	}
	return out, rows.Err()
}

// writeCompletions records the completion of follow-ups loaded from the
// table (those scheduled in the batch were written complete).
func writeCompletions(ctx context.Context, tx pgx.Tx, pending map[uuid.UUID][]*followUp) error {
	var (
		customers, ids, by []uuid.UUID
		at                 []time.Time
	)
	for _, fs := range pending {
		for _, f := range fs {
			if f.dirty && f.row == nil {
				customers, ids, at, by = append(customers, f.customer), append(ids, f.id), append(at, f.doneAt), append(by, f.doneBy)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `
		UPDATE follow_ups f SET done_at = t.done_at, done_by_contact_id = t.done_by
		FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::uuid[]) AS t(customer_id, follow_up_id, done_at, done_by)
		WHERE f.customer_id = t.customer_id AND f.follow_up_id = t.follow_up_id`, customers, ids, at, by)
	if err != nil {
		return fmt.Errorf("contacts: complete %d follow-ups: %w", len(ids), err)
	}
	return nil
}
