package complaints

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/sla"
)

// Complaint is one complaint as the API shows it: its state, the timings
// of its last opening, its timeline and its SLA state at query time.
// Personal text is nil once the customer's data was erased.
type Complaint struct {
	ID             uuid.UUID
	CustomerID     uuid.UUID
	Category       string
	Severity       string
	Description    *string
	Channel        *string
	Status         string
	Assignee       *string
	FiledAt        time.Time
	OpenedAt       time.Time
	AcknowledgedAt *time.Time
	ResolvedAt     *time.Time
	Openings       int
	Escalations    int
	EscalatedTo    *string
	// Resolution is the text of the current resolution: nil while open.
	Resolution *string
	Revision   uint64
	Position   uint64
	Timeline   []Event
	SLA        SLAState
}

// Open reports whether the complaint awaits a resolution.
func (c Complaint) Open() bool { return c.Status != string(domain.ComplaintStatusResolved) }

// Event is one step of a complaint's timeline.
type Event struct {
	// Kind is filed, assigned, acknowledged, escalated, resolved or
	// reopened.
	Kind string
	At   time.Time
	// By is the staff member who acknowledged or resolved.
	By *string
	// Target is whom the complaint was assigned or escalated to.
	Target *string
	// Note is the acknowledgement note, escalation reason, resolution or
	// reopening reason (personal: nil once erased).
	Note *string
	// Actor is who issued the command (the API key's name).
	Actor    string
	Revision uint64
}

// SLAState judges the last opening of a complaint against its severity's
// targets at an instant (PRODUCT.md: a complaint breaches when the target
// passes without the step).
type SLAState struct {
	FirstResponseDueAt time.Time
	ResolutionDueAt    time.Time
	// FirstResponseBreached: acknowledged after its target, or not
	// acknowledged while the target is past. A resolution without an
	// acknowledgement answers the customer too, so it stops the
	// first-response clock.
	FirstResponseBreached bool
	// ResolutionBreached: resolved after its target, or still open while
	// the target is past.
	ResolutionBreached bool
}

// Breached reports whether either target was breached.
func (s SLAState) Breached() bool { return s.FirstResponseBreached || s.ResolutionBreached }

// Judge returns the SLA state of the last opening at now.
func Judge(targets sla.Targets, severity string, openedAt time.Time, acknowledgedAt, resolvedAt *time.Time, now time.Time) SLAState {
	t := Target(targets, severity)
	s := SLAState{FirstResponseDueAt: openedAt.Add(t.FirstResponse).UTC(), ResolutionDueAt: openedAt.Add(t.Resolution).UTC()}
	firstResponse := now
	switch {
	case acknowledgedAt != nil:
		firstResponse = *acknowledgedAt
	case resolvedAt != nil:
		firstResponse = *resolvedAt
	}
	resolution := now
	if resolvedAt != nil {
		resolution = *resolvedAt
	}
	s.FirstResponseBreached = firstResponse.After(s.FirstResponseDueAt)
	s.ResolutionBreached = resolution.After(s.ResolutionDueAt)
	return s
}

// Target is the target of a severity: the configured one, or PRODUCT.md's
// default when the configuration lacks it.
func Target(targets sla.Targets, severity string) sla.Target {
	if t, ok := targets[domain.Severity(severity)]; ok {
		return t
	}
	return sla.Defaults()[domain.Severity(severity)]
}

// Cursor is the kind of the complaint list's cursors, which continue
// after the filing time and id of a page's last complaint.
const Cursor readmodel.CursorKind = "k"

// ErrNotFound is returned for a complaint the read model lacks.
var ErrNotFound = errors.New("complaints: complaint not found")

// Queries reads complaints through the readmodels views and judges them
// against the SLA targets.
type Queries struct {
	pool    *pgxpool.Pool
	targets sla.Targets
	now     func() time.Time
}

// NewQueries returns the queries; targets are the SLA targets (nil: the
// defaults).
func NewQueries(pool *pgxpool.Pool, targets sla.Targets) *Queries {
	if targets == nil {
		targets = sla.Defaults()
	}
	return &Queries{pool: pool, targets: targets, now: time.Now}
}

// Reads names the projectors whose tables the queries read: this one's.
func (*Queries) Reads() []string { return []string{Name} }

// WithClock returns queries that judge SLAs at now() instead of the
// clock's time (tests).
func (q *Queries) WithClock(now func() time.Time) *Queries {
	c := *q
	c.now = now
	return &c
}

const selectComplaint = `
	SELECT k.complaint_id, k.customer_id, k.category, k.severity, k.description, k.channel, k.status, k.assignee,
		k.filed_at, k.opened_at, k.acknowledged_at, k.resolved_at, k.openings, k.escalations, k.escalated_to, k.resolution,
		k.last_revision, k.last_position, coalesce(t.timeline, '[]'::jsonb)
	FROM readmodels.complaints k
	LEFT JOIN LATERAL (
		SELECT jsonb_agg(jsonb_build_object('kind', e.kind, 'at', to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
			'by', e.by, 'target', e.target, 'note', e.note, 'actor', e.actor, 'revision', e.revision) ORDER BY e.revision) AS timeline
		FROM readmodels.complaint_events e
		WHERE e.customer_id = k.customer_id AND e.complaint_id = k.complaint_id
	) t ON true`

// Complaints returns a page of up to limit complaints of the customer,
// latest filed first (ties by id), after cursor ("" for the first page,
// or a previous page's NextCursor; readmodel.ErrBadCursor for another).
func (q *Queries) Complaints(ctx context.Context, customerID uuid.UUID, cursor string, limit int) (readmodel.Page[Complaint], error) {
	after, err := Cursor.Continue(cursor, limit)
	if err != nil {
		return readmodel.Page[Complaint]{}, fmt.Errorf("complaints: list: %w", err)
	}
	var rows pgx.Rows
	if after == nil {
		rows, err = q.pool.Query(ctx, selectComplaint+` WHERE k.customer_id = $1 ORDER BY k.filed_at DESC, k.complaint_id DESC LIMIT $2`, customerID, limit+1)
	} else {
		rows, err = q.pool.Query(ctx, selectComplaint+` WHERE k.customer_id = $1 AND (k.filed_at, k.complaint_id) < ($2, $3)
			ORDER BY k.filed_at DESC, k.complaint_id DESC LIMIT $4`, customerID, after.At, after.ID, limit+1)
	}
	var items []Complaint
	if err == nil {
		now := q.now()
		items, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Complaint, error) { return q.scan(row, now) })
	}
	if err != nil {
		return readmodel.Page[Complaint]{}, readmodel.Fail("complaints: list", err)
	}
	return readmodel.PageOf(items, limit, Cursor, func(c Complaint) readmodel.Key { return readmodel.Key{At: c.FiledAt, ID: c.ID} }), nil
}

// Complaint returns one complaint of the customer.
func (q *Queries) Complaint(ctx context.Context, customerID, complaintID uuid.UUID) (Complaint, error) {
	rows, err := q.pool.Query(ctx, selectComplaint+` WHERE k.customer_id = $1 AND k.complaint_id = $2`, customerID, complaintID)
	var c Complaint
	if err == nil {
		now := q.now()
		c, err = pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (Complaint, error) { return q.scan(row, now) })
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return Complaint{}, ErrNotFound
	}
	return c, readmodel.Fail("complaints: get", err)
}

type timelineJSON struct {
	Kind     string  `json:"kind"`
	At       string  `json:"at"`
	By       *string `json:"by"`
	Target   *string `json:"target"`
	Note     *string `json:"note"`
	Actor    string  `json:"actor"`
	Revision uint64  `json:"revision"`
}

func (q *Queries) scan(row pgx.CollectableRow, now time.Time) (Complaint, error) {
	var (
		c                     Complaint
		openings, escalations int32
		rev, pos              int64
		timeline              []byte
	)
	if err := row.Scan(&c.ID, &c.CustomerID, &c.Category, &c.Severity, &c.Description, &c.Channel, &c.Status, &c.Assignee,
		&c.FiledAt, &c.OpenedAt, &c.AcknowledgedAt, &c.ResolvedAt, &openings, &escalations, &c.EscalatedTo, &c.Resolution,
		&rev, &pos, &timeline); err != nil {
		return c, fmt.Errorf("complaints: read: %w", err)
	}
	c.Openings, c.Escalations, c.Revision, c.Position = int(openings), int(escalations), uint64(rev), uint64(pos)
	c.FiledAt, c.OpenedAt = c.FiledAt.UTC(), c.OpenedAt.UTC()
	c.AcknowledgedAt, c.ResolvedAt = readmodel.UTC(c.AcknowledgedAt), readmodel.UTC(c.ResolvedAt)
	var events []timelineJSON
	if err := json.Unmarshal(timeline, &events); err != nil {
		return c, fmt.Errorf("complaints: timeline of %s: %w", c.ID, err)
	}
	c.Timeline = make([]Event, len(events))
	for i, e := range events {
		at, err := time.Parse(time.RFC3339Nano, e.At)
		if err != nil {
			return c, fmt.Errorf("complaints: timeline of %s: %w", c.ID, err)
		}
		c.Timeline[i] = Event{Kind: e.Kind, At: at, By: e.By, Target: e.Target, Note: e.Note, Actor: e.Actor, Revision: e.Revision}
	}
	c.SLA = Judge(q.targets, c.Severity, c.OpenedAt, c.AcknowledgedAt, c.ResolvedAt, now)
	return c, nil
}
