package routing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// Version is one version of the routing rules, as its event recorded it.
type Version struct {
	Version int
	Rules   []domain.RoutingRule
	// SetBy is the actor who set it, SetAt when (the recorded time).
	SetBy    string
	SetAt    time.Time
	EventID  uuid.UUID
	Revision uint64
	Position eventstore.Position
}

// Routing is the version as domain state.
func (v Version) Routing() domain.Routing { return domain.Routing{Version: v.Version, Rules: v.Rules} }

// readVersions reads the routing stream from revision from on.
func readVersions(ctx context.Context, store eventstore.Store, codec *eventcodec.Codec, from uint64) ([]Version, error) {
	var out []Version
	for {
		events, err := store.ReadStream(ctx, domain.RoutingStream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: from, Limit: 500})
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("routing: read the rules: %w", err)
		}
		for _, rec := range events {
			d, err := codec.Decode(ctx, rec)
			if err != nil {
				return nil, fmt.Errorf("routing: read the rules: %w", err)
			}
			set, ok := d.Event.(domain.ComplaintRoutingSet)
			if !ok {
				return nil, fmt.Errorf("routing: %s@%d is a %s", rec.Stream, rec.Revision, rec.Type)
			}
			out = append(out, Version{Version: set.Version, Rules: set.Rules, SetBy: d.Metadata.Actor, SetAt: d.Metadata.RecordedTime(rec.RecordedAt),
				EventID: rec.ID, Revision: rec.Revision, Position: rec.Position})
		}
		if len(events) < 500 {
			return out, nil
		}
		from = events[len(events)-1].Revision + 1
	}
}

// Queries answers the routing rules (from their stream: the event log is
// their read model, like the audit's) and the policy's decisions.
type Queries struct {
	pool  *pgxpool.Pool
	store eventstore.Store
	codec *eventcodec.Codec
}

// NewQueries returns the queries.
func NewQueries(pool *pgxpool.Pool, store eventstore.Store, codec *eventcodec.Codec) *Queries {
	return &Queries{pool: pool, store: store, codec: codec}
}

// Reads names the projectors the decisions read (the rules read none).
func (*Queries) Reads() []string { return []string{Name} }

// Versions returns every version of the rules, oldest first (none before
// the first is set).
func (q *Queries) Versions(ctx context.Context) ([]Version, error) {
	return readVersions(ctx, q.store, q.codec, 0)
}

// Decision is how the policy routed one complaint.
type Decision struct {
	ComplaintID  uuid.UUID
	CustomerID   uuid.UUID
	FiledEventID uuid.UUID
	FiledAt      time.Time
	RulesVersion int
	Rule         *string
	Assignee     *string
	Outcome      string
	Detail       *string
}

// Decision returns the policy's decision on a complaint; ok is false
// while it has none (not yet routed, or never filed).
func (q *Queries) Decision(ctx context.Context, complaint uuid.UUID) (d Decision, ok bool, err error) {
	rows, err := q.pool.Query(ctx, `SELECT complaint_id, customer_id, filed_event_id, filed_at, rules_version, rule, assignee, outcome, detail
		FROM readmodels.routing_decisions WHERE complaint_id = $1`, complaint)
	if err != nil {
		return d, false, readmodel.Fail("routing: decision", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return d, false, readmodel.Fail("routing: decision", rows.Err())
	}
	if err := rows.Scan(&d.ComplaintID, &d.CustomerID, &d.FiledEventID, &d.FiledAt, &d.RulesVersion, &d.Rule, &d.Assignee, &d.Outcome, &d.Detail); err != nil {
		return d, false, readmodel.Fail("routing: decision", err)
	}
	d.FiledAt = d.FiledAt.UTC()
	return d, true, nil
}
