package complaints

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

// Name is the projector's name; its tables are readmodels.complaints,
// readmodels.complaint_events and readmodels.complaint_erasures.
const Name = "complaints"

// version of the tables and of the fold; bumping it rebuilds.
const version = 1

// Projector builds the complaints read model. It implements
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
	return []string{domain.TypeComplaintFiled, domain.TypeComplaintAssigned, domain.TypeComplaintAcknowledged,
		domain.TypeComplaintEscalated, domain.TypeComplaintResolved, domain.TypeComplaintReopened, domain.TypeCustomerDataErased}
}

// Setup implements projections.Projector.
func (Projector) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE complaints (
			customer_id     uuid        NOT NULL,
			complaint_id    uuid        NOT NULL,
			category        text        NOT NULL,
			severity        text        NOT NULL,
			description     text,
			channel         text,
			status          text        NOT NULL,
			assignee        text,
			filed_at        timestamptz NOT NULL,
			opened_at       timestamptz NOT NULL,
			acknowledged_at timestamptz,
			resolved_at     timestamptz,
			openings        integer     NOT NULL,
			escalations     integer     NOT NULL,
			escalated_to    text,
			resolution      text,
			last_revision   bigint      NOT NULL,
			last_position   bigint      NOT NULL,
			updated_at      timestamptz NOT NULL,
			PRIMARY KEY (customer_id, complaint_id)
		) WITH (fillfactor = 80);
		CREATE TABLE complaint_events (
			customer_id  uuid        NOT NULL,
			revision     bigint      NOT NULL,
			complaint_id uuid        NOT NULL,
			position     bigint      NOT NULL,
			kind         text        NOT NULL,
			occurred_at  timestamptz NOT NULL,
			recorded_at  timestamptz NOT NULL,
			by           text,
			target       text,
			note         text,
			actor        text        NOT NULL,
			PRIMARY KEY (customer_id, revision)
		);
		CREATE TABLE complaint_erasures (
			customer_id uuid        PRIMARY KEY,
			erased_at   timestamptz NOT NULL,
			revision    bigint      NOT NULL,
			position    bigint      NOT NULL
		);`)
	return err
}

// CreateIndexes implements projections.Indexer: a customer's complaints
// by filing (the list), complaints by filing time (the figures), a
// complaint's timeline; and statistics for the planner after a rebuild.
func (Projector) CreateIndexes(ctx context.Context, tx pgx.Tx) error {
	for _, s := range []string{
		`CREATE INDEX IF NOT EXISTS complaints_customer_filed_idx ON complaints (customer_id, filed_at, complaint_id)`,
		`CREATE INDEX IF NOT EXISTS complaints_filed_idx ON complaints (filed_at)`,
		// The open complaints (the work queue, readmodels/work): a partial
		// index, so the queue reads none of the resolved ones. A
		// generation made before it gets it at its next rebuild; the
		// queue is right without it, only slower.
		`CREATE INDEX IF NOT EXISTS complaints_open_idx ON complaints (opened_at, complaint_id) WHERE status <> 'resolved'`,
		// The work queue's branches (readmodels/work, complaintsSQL): the
		// open complaints by severity and opening, apart by whether they
		// had their first response, so that each walks its severity's
		// targets in due order; and the rows no branch holds.
		`CREATE INDEX IF NOT EXISTS complaints_queue_first_idx ON complaints (severity, opened_at, complaint_id)
			WHERE status <> 'resolved' AND resolved_at IS NULL AND acknowledged_at IS NULL`,
		`CREATE INDEX IF NOT EXISTS complaints_queue_next_idx ON complaints (severity, opened_at, complaint_id)
			WHERE status <> 'resolved' AND resolved_at IS NULL AND acknowledged_at IS NOT NULL`,
		`CREATE INDEX IF NOT EXISTS complaints_queue_first_assignee_idx ON complaints (assignee, severity, opened_at, complaint_id)
			WHERE status <> 'resolved' AND resolved_at IS NULL AND acknowledged_at IS NULL`,
		`CREATE INDEX IF NOT EXISTS complaints_queue_next_assignee_idx ON complaints (assignee, severity, opened_at, complaint_id)
			WHERE status <> 'resolved' AND resolved_at IS NULL AND acknowledged_at IS NOT NULL`,
		`CREATE INDEX IF NOT EXISTS complaints_queue_odd_idx ON complaints (opened_at)
			WHERE status <> 'resolved' AND (resolved_at IS NOT NULL OR severity NOT IN ('critical', 'high', 'medium', 'low'))`,
		`CREATE INDEX IF NOT EXISTS complaint_events_complaint_idx ON complaint_events (customer_id, complaint_id, revision)`,
		`ANALYZE complaints`,
		`ANALYZE complaint_events`,
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// AppliedRevisions implements projections.Reconciler: every handled event
// leaves a timeline row or an erasure row with its revision.
func (Projector) AppliedRevisions(ctx context.Context, tx pgx.Tx, visit func(stream string, revision uint64) error) error {
	return projections.VisitAppliedRevisions(ctx, tx, `
		SELECT customer_id, max(revision) FROM (
			SELECT customer_id, revision FROM complaint_events
			UNION ALL SELECT customer_id, revision FROM complaint_erasures) r
		GROUP BY customer_id`, visit)
}

type key struct{ customer, complaint uuid.UUID }

// row is one complaint: its state as domain.Evolve folds it, and what the
// domain state does not keep.
type row struct {
	customer    uuid.UUID
	c           domain.Complaint
	escalatedTo string
	// resolution is the text of the current resolution; empty while open.
	resolution   string
	lastRevision int64
	lastPosition int64
	updatedAt    time.Time
	dirty        bool
}

// Apply implements projections.Projector: load the complaints the batch
// touches (except those it files) with one query, fold the batch in
// memory with domain.Evolve, write the changed complaints with one
// statement and the timeline with one COPY.
func (Projector) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	filed := map[key]bool{}
	var need []key
	needed := map[key]bool{}
	for i := range batch {
		cid, ok := ComplaintOf(batch[i].Event)
		if !ok {
			continue
		}
		id, err := batch[i].CustomerID()
		if err != nil {
			return err
		}
		k := key{id, cid}
		if _, isFiling := batch[i].Event.(domain.ComplaintFiled); isFiling {
			filed[k] = true
		} else if !filed[k] && !needed[k] {
			needed[k] = true
			need = append(need, k)
		}
	}
	rows, err := load(ctx, tx, need)
	if err != nil {
		return err
	}
	var (
		order    []key
		timeline [][]any
		erasures [][]any
		erased   []uuid.UUID
	)
	for i := range batch {
		d := &batch[i]
		id, err := d.CustomerID()
		if err != nil {
			return err
		}
		rev, pos := int64(d.Record.Revision), int64(d.Record.Position)
		if e, ok := d.Event.(domain.CustomerDataErased); ok {
			erasures = append(erasures, []any{id, e.OccurredAt, rev, pos})
			erased = append(erased, id)
			continue
		}
		cid, ok := ComplaintOf(d.Event)
		if !ok {
			continue
		}
		k := key{id, cid}
		r := rows[k]
		var kind string
		var by, target, note any
		switch e := d.Event.(type) {
		case domain.ComplaintFiled:
			if r != nil {
				continue // a complaint is filed once (Decide refuses a second filing)
			}
			c, _ := Fold(nil, e)
			r = &row{customer: id, c: c}
			rows[k] = r
			if d.Erased {
				r.c.Description = ""
			}
			kind = "filed"
		case domain.ComplaintAssigned:
			kind, target = "assigned", e.Assignee
		case domain.ComplaintAcknowledged:
			kind, by, note = "acknowledged", e.By, readmodel.Personal(d, e.Note)
		case domain.ComplaintEscalated:
			kind, target, note = "escalated", e.To, readmodel.Personal(d, e.Reason)
			if r != nil {
				r.escalatedTo = e.To
			}
		case domain.ComplaintResolved:
			kind, by, note = "resolved", e.By, readmodel.Personal(d, e.Resolution)
			if r != nil {
				r.resolution = e.Resolution
				if d.Erased {
					r.resolution = ""
				}
			}
		case domain.ComplaintReopened:
			kind, note = "reopened", readmodel.Personal(d, e.Reason)
			if r != nil {
				r.resolution = ""
			}
		}
		if r == nil {
			continue // an event about a complaint never filed: Decide refuses those
		}
		if kind != "filed" {
			r.c, _ = Fold(&r.c, d.Event)
		}
		if !r.dirty {
			r.dirty = true
			order = append(order, k)
		}
		r.lastRevision, r.lastPosition, r.updatedAt = rev, pos, d.Record.RecordedAt
		timeline = append(timeline, []any{id, rev, cid, pos, kind, d.Event.BusinessTime(), d.Record.RecordedAt, by, target, note, d.Metadata.Actor})
	}
	if err := write(ctx, tx, order, rows); err != nil {
		return err
	}
	if len(timeline) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"complaint_events"},
			[]string{"customer_id", "revision", "complaint_id", "position", "kind", "occurred_at", "recorded_at", "by", "target", "note", "actor"},
			pgx.CopyFromRows(timeline)); err != nil {
			return fmt.Errorf("complaints: write %d timeline rows: %w", len(timeline), err)
		}
	}
	if len(erased) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE complaints SET description = NULL, resolution = NULL
			WHERE customer_id = ANY($1) AND (description IS NOT NULL OR resolution IS NOT NULL)`, erased); err != nil {
			return fmt.Errorf("complaints: erase: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE complaint_events SET note = NULL WHERE customer_id = ANY($1) AND note IS NOT NULL`, erased); err != nil {
			return fmt.Errorf("complaints: erase: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"complaint_erasures"}, []string{"customer_id", "erased_at", "revision", "position"},
			pgx.CopyFromRows(erasures)); err != nil {
			return fmt.Errorf("complaints: erase: %w", err)
		}
	}
	return nil
}

func load(ctx context.Context, tx pgx.Tx, keys []key) (map[key]*row, error) {
	out := make(map[key]*row, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	customers, ids := make([]uuid.UUID, len(keys)), make([]uuid.UUID, len(keys))
	for i, k := range keys {
		customers[i], ids[i] = k.customer, k.complaint
	}
	rows, err := tx.Query(ctx, `
		SELECT c.customer_id, c.complaint_id, category, severity, description, channel, status, assignee, filed_at, opened_at,
			acknowledged_at, resolved_at, openings, escalations, escalated_to, resolution, last_revision, last_position, updated_at
		FROM complaints c JOIN unnest($1::uuid[], $2::uuid[]) AS t(customer_id, complaint_id)
			ON c.customer_id = t.customer_id AND c.complaint_id = t.complaint_id`, customers, ids)
	if err != nil {
		return nil, fmt.Errorf("complaints: load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r                                                     row
			description, channel, assignee, escalated, resolution *string
			severity, status                                      string
			acknowledged, resolved                                *time.Time
			openings, escalations                                 int32
		)
		if err := rows.Scan(&r.customer, &r.c.ID, &r.c.Category, &severity, &description, &channel, &status, &assignee, &r.c.FiledAt, &r.c.OpenedAt,
			&acknowledged, &resolved, &openings, &escalations, &escalated, &resolution, &r.lastRevision, &r.lastPosition, &r.updatedAt); err != nil {
			return nil, fmt.Errorf("complaints: load: %w", err)
		}
		r.c.Severity, r.c.Status = domain.Severity(severity), domain.ComplaintStatus(status)
		r.c.Description, r.c.Channel, r.c.Assignee = readmodel.Deref(description), domain.Channel(readmodel.Deref(channel)), readmodel.Deref(assignee)
		if acknowledged != nil {
			r.c.Acknowledged, r.c.AcknowledgedAt = true, *acknowledged
		}
		if resolved != nil {
			r.c.ResolvedAt = *resolved
		}
		r.c.Openings, r.c.Escalations = int(openings), int(escalations)
		r.escalatedTo, r.resolution = readmodel.Deref(escalated), readmodel.Deref(resolution)
		out[key{r.customer, r.c.ID}] = &r
	}
	return out, rows.Err()
}

// write upserts the changed complaints in one statement.
func write(ctx context.Context, tx pgx.Tx, order []key, rows map[key]*row) error {
	if len(order) == 0 {
		return nil
	}
	n := len(order)
	var (
		customers, ids                                        = make([]uuid.UUID, 0, n), make([]uuid.UUID, 0, n)
		category, severity, description, channel, status      = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		assignee, escalatedTo, resolution                     = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		filedAt, openedAt, acknowledgedAt, resolvedAt, update = make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n)
		openings, escalations                                 = make([]int32, 0, n), make([]int32, 0, n)
		revisions, positions                                  = make([]int64, 0, n), make([]int64, 0, n)
	)
	for _, k := range order {
		r := rows[k]
		c := &r.c
		customers, ids = append(customers, r.customer), append(ids, c.ID)
		category, severity, description = append(category, c.Category), append(severity, string(c.Severity)), append(description, c.Description)
		channel, status, assignee = append(channel, string(c.Channel)), append(status, string(c.Status)), append(assignee, c.Assignee)
		escalatedTo, resolution = append(escalatedTo, r.escalatedTo), append(resolution, r.resolution)
		var ack time.Time
		if c.Acknowledged {
			ack = c.AcknowledgedAt
		}
		filedAt, openedAt, acknowledgedAt, resolvedAt = append(filedAt, c.FiledAt), append(openedAt, c.OpenedAt), append(acknowledgedAt, ack), append(resolvedAt, c.ResolvedAt)
		openings, escalations = append(openings, int32(c.Openings)), append(escalations, int32(c.Escalations))
		revisions, positions, update = append(revisions, r.lastRevision), append(positions, r.lastPosition), append(update, r.updatedAt)
	}
	const zero = `'0001-01-01 00:00:00+00'`
	_, err := tx.Exec(ctx, `
		INSERT INTO complaints (customer_id, complaint_id, category, severity, description, channel, status, assignee,
			filed_at, opened_at, acknowledged_at, resolved_at, openings, escalations, escalated_to, resolution,
			last_revision, last_position, updated_at)
		SELECT customer_id, complaint_id, category, severity, nullif(description, ''), nullif(channel, ''), status, nullif(assignee, ''),
			filed_at, opened_at, nullif(acknowledged_at, `+zero+`), nullif(resolved_at, `+zero+`), openings, escalations,
			nullif(escalated_to, ''), nullif(resolution, ''), last_revision, last_position, updated_at
		FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
			$9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[], $13::int[], $14::int[], $15::text[], $16::text[],
			$17::bigint[], $18::bigint[], $19::timestamptz[])
			AS t(customer_id, complaint_id, category, severity, description, channel, status, assignee,
			filed_at, opened_at, acknowledged_at, resolved_at, openings, escalations, escalated_to, resolution,
			last_revision, last_position, updated_at)
		ON CONFLICT (customer_id, complaint_id) DO UPDATE SET
			description = EXCLUDED.description, channel = EXCLUDED.channel, status = EXCLUDED.status, assignee = EXCLUDED.assignee,
			opened_at = EXCLUDED.opened_at, acknowledged_at = EXCLUDED.acknowledged_at, resolved_at = EXCLUDED.resolved_at,
			openings = EXCLUDED.openings, escalations = EXCLUDED.escalations, escalated_to = EXCLUDED.escalated_to,
			resolution = EXCLUDED.resolution, last_revision = EXCLUDED.last_revision, last_position = EXCLUDED.last_position,
			updated_at = EXCLUDED.updated_at`,
		customers, ids, category, severity, description, channel, status, assignee,
		filedAt, openedAt, acknowledgedAt, resolvedAt, openings, escalations, escalatedTo, resolution,
		revisions, positions, update)
	if err != nil {
		return fmt.Errorf("complaints: write %d complaints: %w", n, err)
	}
	return nil
}
