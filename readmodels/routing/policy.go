package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/projections"
)

// Name is the policy's projector name; its tables are
// readmodels.routing_decisions and readmodels.routing_pool_turns.
const Name = "routing"

// Assignment is the assign command the policy issues.
type Assignment struct {
	CustomerID  uuid.UUID
	ComplaintID uuid.UUID
	Assignee    string
	// Actor is routing:v<version>:<rule>.
	Actor string
	// Cause is the ComplaintFiled event's id: the command's id and so its
	// events' causation.
	Cause         uuid.UUID
	CorrelationID string
	// FiledRevision is the ComplaintFiled event's revision: an earlier run
	// of the command can only lie after it.
	FiledRevision uint64
}

// Assigner issues the ordinary assign-complaint command through the command
// layer, at most once per Cause (infra/app adapts commands.Customers'
// HandleOnce). A refusal of the domain is a *domain.Error.
type Assigner interface {
	AssignOnce(ctx context.Context, a Assignment) (AssignResult, error)
}

// AssignResult says what the command did.
type AssignResult struct {
	// Replayed: an earlier run of the same command had done it; nothing
	// was appended now.
	Replayed bool
	// Appended: the assignment was recorded now. Neither means the
	// complaint already had an owner (this one, or one a person named
	// before the policy came to it, who keeps it).
	Appended bool
}

// Outcomes of a decision (routing_decisions.outcome).
const (
	OutcomeAssigned = "assigned"
	OutcomeReplayed = "replayed"
	// OutcomeUnchanged: the complaint already had an owner when the
	// policy came to it, and keeps it.
	OutcomeUnchanged = "unchanged"
	OutcomeUnmatched = "unmatched"
	OutcomeNoRules   = "no_rules"
	OutcomeRefused   = "refused"
)

// Policy is the routing policy, a projections.Projector.
type Policy struct {
	store    eventstore.Store
	codec    *eventcodec.Codec
	assigner Assigner
	logger   *slog.Logger
	// versions are the rules' versions read so far, oldest first; mu
	// guards them, since a rebuilding generation applies beside the
	// serving one.
	mu       sync.Mutex
	versions []Version
	next     uint64
}

var _ projections.Projector = (*Policy)(nil)

// NewPolicy returns the policy: it reads the rules from store with codec
// and assigns through assigner.
func NewPolicy(store eventstore.Store, codec *eventcodec.Codec, assigner Assigner, logger *slog.Logger) *Policy {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Policy{store: store, codec: codec, assigner: assigner, logger: logger}
}

// Name implements projections.Projector.
func (*Policy) Name() string { return Name }

// Version implements projections.Projector.
func (*Policy) Version() int { return 1 }

// Handles implements projections.Projector: the filings, and the events
// that classify a customer (what rules match besides the complaint).
func (*Policy) Handles() []string {
	return []string{domain.TypeCustomerRegistered, domain.TypeCustomerClassified, domain.TypeComplaintFiled}
}

// Setup implements projections.Projector.
func (*Policy) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE routing_customers (
			customer_id uuid PRIMARY KEY,
			segment     text NOT NULL,
			tier        text NOT NULL,
			region      text NOT NULL
		);
		CREATE TABLE routing_decisions (
			complaint_id   uuid        PRIMARY KEY,
			customer_id    uuid        NOT NULL,
			filed_event_id uuid        NOT NULL,
			filed_at       timestamptz NOT NULL,
			position       bigint      NOT NULL,
			rules_version  integer     NOT NULL,
			rule           text,
			assignee       text,
			outcome        text        NOT NULL,
			detail         text
		);
		CREATE TABLE routing_pool_turns (
			rules_version integer NOT NULL,
			rule          text    NOT NULL,
			turns         bigint  NOT NULL,
			PRIMARY KEY (rules_version, rule)
		);`)
	return err
}

type classification struct{ segment, tier, region string }

type turnKey struct {
	version int
	rule    string
}

// Apply implements projections.Projector. It folds the batch in order:
// classifications first become known, then each filing is routed with
// the classification its customer had then.
func (p *Policy) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	if err := p.refresh(ctx); err != nil {
		return err
	}
	var ids []uuid.UUID
	for _, d := range batch {
		if id, err := d.CustomerID(); err == nil {
			ids = append(ids, id)
		}
	}
	classes, err := loadClasses(ctx, tx, ids)
	if err != nil {
		return err
	}
	changed := map[uuid.UUID]bool{}
	turns := map[turnKey]int64{}
	var decisions []decision
	for _, d := range batch {
		id, err := d.CustomerID()
		if err != nil {
			return err
		}
		switch e := d.Event.(type) {
		case domain.CustomerRegistered:
			classes[id], changed[id] = classification{e.Segment, e.Tier, e.Region}, true
		case domain.CustomerClassified:
			c := classes[id]
			for _, f := range []struct {
				v   *string
				dst *string
			}{{e.Segment, &c.segment}, {e.Tier, &c.tier}, {e.Region, &c.region}} {
				if f.v != nil {
					*f.dst = *f.v
				}
			}
			classes[id], changed[id] = c, true
		case domain.ComplaintFiled:
			dec, err := p.route(ctx, tx, d, id, e, classes[id], turns)
			if err != nil {
				return err
			}
			decisions = append(decisions, dec)
		}
	}
	return write(ctx, tx, classes, changed, turns, decisions)
}

type decision struct {
	complaint, customer, event uuid.UUID
	filedAt                    time.Time
	position                   int64
	version                    int
	rule, assignee, detail     *string
	outcome                    string
}

// route decides one filing and, when a rule matches, assigns it.
func (p *Policy) route(ctx context.Context, tx pgx.Tx, d eventcodec.Decoded, customer uuid.UUID, e domain.ComplaintFiled,
	c classification, turns map[turnKey]int64) (decision, error) {
	dec := decision{complaint: e.ComplaintID, customer: customer, event: d.Record.ID, filedAt: e.OccurredAt, position: int64(d.Record.Position)}
	v, ok := p.inForce(d.Record.Position)
	if !ok {
		dec.outcome = OutcomeNoRules
		return dec, nil
	}
	dec.version = v.Version
	rule, _, ok := v.Routing().Route(domain.RoutingFacts{Severity: e.Severity, Category: e.Category, Segment: c.segment, Tier: c.tier, Region: c.region})
	if !ok {
		dec.outcome = OutcomeUnmatched
		return dec, nil
	}
	dec.rule = &rule.Name
	assignee := rule.Assignee
	if len(rule.Pool) > 0 {
		k := turnKey{v.Version, rule.Name}
		n, seen := turns[k]
		if !seen {
			if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT turns FROM routing_pool_turns WHERE rules_version = $1 AND rule = $2), 0)`,
				v.Version, rule.Name).Scan(&n); err != nil {
				return dec, fmt.Errorf("routing: pool turns: %w", err)
			}
		}
		assignee = rule.Pool[n%int64(len(rule.Pool))]
		turns[k] = n + 1
	}
	dec.assignee = &assignee
	res, err := p.assigner.AssignOnce(ctx, Assignment{
		CustomerID: customer, ComplaintID: e.ComplaintID, Assignee: assignee,
		Actor: fmt.Sprintf("routing:v%d:%s", v.Version, rule.Name), Cause: d.Record.ID,
		CorrelationID: d.Metadata.CorrelationID, FiledRevision: d.Record.Revision,
	})
	var refused *domain.Error
	switch {
	case errors.As(err, &refused):
		// Erased (410) or otherwise refused: nothing to assign, and never
		// will be. Recorded, not retried.
		msg := refused.Error()
		dec.outcome, dec.detail = OutcomeRefused, &msg
	case err != nil:
		return dec, fmt.Errorf("routing: assign complaint %s: %w", e.ComplaintID, err)
	case res.Replayed:
		dec.outcome = OutcomeReplayed
	case res.Appended:
		dec.outcome = OutcomeAssigned
	default:
		dec.outcome = OutcomeUnchanged
	}
	p.logger.DebugContext(ctx, "routing: complaint routed", "complaint_id", e.ComplaintID, "rule", rule.Name, "version", v.Version, "assignee", assignee, "outcome", dec.outcome)
	return dec, nil
}

// inForce is the latest version appended before position.
func (p *Policy) inForce(position eventstore.Position) (Version, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.versions) - 1; i >= 0; i-- {
		if p.versions[i].Position < position {
			return p.versions[i], true
		}
	}
	return Version{}, false
}

// refresh reads the versions appended since the last read. A version
// appended before a filing's position is committed by the time the
// engine delivers the filing (the log is read below its horizon), so it
// is always known when the filing is routed.
func (p *Policy) refresh(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	vs, err := readVersions(ctx, p.store, p.codec, p.next)
	if err != nil {
		return err
	}
	p.versions = append(p.versions, vs...)
	p.next += uint64(len(vs))
	return nil
}

func loadClasses(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]classification, error) {
	out := map[uuid.UUID]classification{}
	rows, err := tx.Query(ctx, `SELECT customer_id, segment, tier, region FROM routing_customers WHERE customer_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("routing: load customers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id uuid.UUID
			c  classification
		)
		if err := rows.Scan(&id, &c.segment, &c.tier, &c.region); err != nil {
			return nil, fmt.Errorf("routing: load customers: %w", err)
		}
		out[id] = c
	}
	return out, rows.Err()
}

func write(ctx context.Context, tx pgx.Tx, classes map[uuid.UUID]classification, changed map[uuid.UUID]bool, turns map[turnKey]int64, decisions []decision) error {
	if len(changed) > 0 {
		var ids []uuid.UUID
		var seg, tier, reg []string
		for id := range changed {
			c := classes[id]
			ids, seg, tier, reg = append(ids, id), append(seg, c.segment), append(tier, c.tier), append(reg, c.region)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO routing_customers (customer_id, segment, tier, region)
			SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
			ON CONFLICT (customer_id) DO UPDATE SET segment = excluded.segment, tier = excluded.tier, region = excluded.region`,
			ids, seg, tier, reg); err != nil {
			return fmt.Errorf("routing: write customers: %w", err)
		}
	}
	for k, n := range turns {
		if _, err := tx.Exec(ctx, `INSERT INTO routing_pool_turns (rules_version, rule, turns) VALUES ($1, $2, $3)
			ON CONFLICT (rules_version, rule) DO UPDATE SET turns = excluded.turns`, k.version, k.rule, n); err != nil {
			return fmt.Errorf("routing: write pool turns: %w", err)
		}
	}
	for _, d := range decisions {
		// A complaint id is filed once (the domain refuses it again), so a
		// conflict is only a replay of the same filing.
		if _, err := tx.Exec(ctx, `INSERT INTO routing_decisions
			(complaint_id, customer_id, filed_event_id, filed_at, position, rules_version, rule, assignee, outcome, detail)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (complaint_id) DO NOTHING`,
			d.complaint, d.customer, d.event, d.filedAt, d.position, d.version, d.rule, d.assignee, d.outcome, d.detail); err != nil {
			return fmt.Errorf("routing: write decisions: %w", err)
		}
	}
	return nil
}
