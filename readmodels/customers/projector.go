package customers

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/risk"
)

// Name is the projector's name; its table is readmodels.customers.
const Name = "customers"

// version of the table, of the fold and of the SQL functions Setup
// creates beside the table (readmodels.customer_risk). Bump it whenever
// one changes: the engine then rebuilds the read model without downtime.
// 2: the churn-risk inputs, readmodels.customer_risk and
// readmodels.customer_risk_weights, and ANALYZE before serving.
// 3: the at-risk queue's cache of scores (risk_key, risk_score,
// risk_scored_at, risk_valid_until, their indexes) and
// readmodels.customer_risk_valid_until.
const version = 3

// Config tunes the projector.
type Config struct {
	// CacheSize is how many customers' rows the projector keeps in memory
	// per generation, so that a batch need not read back the rows the
	// previous ones wrote. Default 100,000 (about 100 MB); -1 disables it.
	CacheSize int
}

func (c *Config) setDefaults() {
	if c.CacheSize == 0 {
		c.CacheSize = 100_000
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.CacheSize < -1 {
		return fmt.Errorf("customers: CacheSize must be -1 (off) or positive")
	}
	return nil
}

// Projector folds customer events into the customer directory. It
// implements projections.Projector, Reconciler, Indexer and Cache.
type Projector struct {
	cfg Config

	// The committed rows of each generation; it implements
	// projections.Cache for the projector.
	*projections.GenerationCache[row]
}

var (
	_ projections.Projector  = (*Projector)(nil)
	_ projections.Reconciler = (*Projector)(nil)
	_ projections.Indexer    = (*Projector)(nil)
	_ projections.Cache      = (*Projector)(nil)
)

// NewProjector returns the customer directory's projector.
func NewProjector(cfg Config) (*Projector, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Projector{cfg: cfg, GenerationCache: projections.NewGenerationCache[row](cfg.CacheSize)}, nil
}

// Name implements projections.Projector.
func (*Projector) Name() string { return Name }

// Version implements projections.Projector.
func (*Projector) Version() int { return version }

// Handles implements projections.Projector: every customer event, since
// last_revision must follow the stream.
func (*Projector) Handles() []string { return domain.NewRegistry().Types() }

// Setup implements projections.Projector. Secondary indexes come later
// (CreateIndexes): a rebuild fills the table faster without them. It also
// creates (or replaces) the churn-risk functions in the readmodels schema
// (risk.FunctionSQL): they take the table's columns as arguments, so every
// generation shares them, and the queries and analysts call them.
func (*Projector) Setup(ctx context.Context, tx pgx.Tx) error {
	for _, stmt := range append(risk.FunctionSQL(), risk.ValidUntilFunctionSQL()) {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("customers: churn-risk functions: %w", err)
		}
	}
	_, err := tx.Exec(ctx, `
		CREATE TABLE customers (
			id                    uuid        PRIMARY KEY,
			name                  text,
			email                 text,
			phone                 text,
			company               text,
			tags                  text[],
			segment               text        NOT NULL DEFAULT '',
			tier                  text        NOT NULL DEFAULT '',
			region                text        NOT NULL DEFAULT '',
			industry              text        NOT NULL DEFAULT '',
			account_manager       text,
			support               text,
			sales                 text,
			team_members          text[]      NOT NULL DEFAULT '{}',
			status                text        NOT NULL,
			personal_data_erased  boolean     NOT NULL DEFAULT false,
			registered_at         timestamptz,
			last_contact_at       timestamptz,
			churned_at            timestamptz,
			erased_at             timestamptz,
			open_complaints       integer     NOT NULL DEFAULT 0,
			complaints_total      integer     NOT NULL DEFAULT 0,
			surveys               integer     NOT NULL DEFAULT 0,
			last_csat             smallint,
			last_csat_at          timestamptz,
			prev_csat             smallint,
			prev_csat_at          timestamptz,
			last_nps              smallint,
			last_nps_at           timestamptz,
			follow_ups_pending    integer     NOT NULL DEFAULT 0,
			next_follow_up_due_at timestamptz,
			complaints            jsonb       NOT NULL DEFAULT '[]',
			follow_ups            jsonb       NOT NULL DEFAULT '[]',
			last_revision         bigint      NOT NULL,
			last_position         bigint      NOT NULL,
			updated_at            timestamptz NOT NULL,
			risk_key              bigint,
			risk_score            integer,
			risk_scored_at        timestamptz,
			risk_valid_until      timestamptz,
			-- A score is cached whole or not at all: the at-risk queue's
			-- test of a stale row relies on it (package work).
			CHECK (risk_key IS NULL OR (risk_score IS NOT NULL AND risk_scored_at IS NOT NULL AND risk_valid_until IS NOT NULL))
		) WITH (fillfactor = 80)`)
	return err
}

// CreateIndexes implements projections.Indexer.
func (*Projector) CreateIndexes(ctx context.Context, tx pgx.Tx) error {
	stmts := []string{
		`CREATE INDEX IF NOT EXISTS customers_registered_idx ON customers (registered_at, id)`,
		`CREATE INDEX IF NOT EXISTS customers_segment_idx ON customers (segment, registered_at, id)`,
		`CREATE INDEX IF NOT EXISTS customers_tier_idx ON customers (tier, registered_at, id)`,
		`CREATE INDEX IF NOT EXISTS customers_region_idx ON customers (region, registered_at, id)`,
		`CREATE INDEX IF NOT EXISTS customers_status_idx ON customers (status, registered_at, id)`,
		`CREATE INDEX IF NOT EXISTS customers_team_idx ON customers USING gin (team_members)`,
	}
	// The contact-due queue walks one of these per cadence, in the order
	// of its due dates (work.Queries.ContactDue).
	for _, t := range [][2]string{{"a", `tier = 'A'`}, {"b", `tier = 'B'`}, {"c", `tier = 'C'`}, {"other", `tier NOT IN ('A', 'B', 'C')`}} {
		stmts = append(stmts, `CREATE INDEX IF NOT EXISTS customers_contact_due_`+t[0]+`_idx ON customers ((coalesce(last_contact_at, registered_at)), id)
			WHERE status = 'active' AND `+t[1])
	}
	// The at-risk queue's cache of scores (package work, riskcache.go):
	// the scores of one key by score, and the rows it must score again.
	stmts = append(stmts,
		`CREATE INDEX IF NOT EXISTS customers_risk_idx ON customers (risk_key, (-risk_score), id) WHERE status = 'active'`,
		`CREATE INDEX IF NOT EXISTS customers_risk_until_idx ON customers (risk_valid_until) WHERE status = 'active'`,
		`CREATE INDEX IF NOT EXISTS customers_risk_scored_idx ON customers (risk_scored_at) WHERE status = 'active'`)
	// Substring search on name, email and company uses trigrams when the
	// pg_trgm extension is installed (migration 00003 installs it where
	// the server has it); without it, q scans.
	var trgmSchema *string
	if err := tx.QueryRow(ctx, `SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'`).Scan(&trgmSchema); err != nil && err != pgx.ErrNoRows {
		return err
	}
	if trgmSchema != nil {
		stmts = append(stmts, `CREATE INDEX IF NOT EXISTS customers_search_idx ON customers USING gin (`+searchExpr+` `+
			pgx.Identifier{*trgmSchema, "gin_trgm_ops"}.Sanitize()+`)`)
	}
	// Statistics before the generation serves: the list's plans depend on
	// them, and a rebuilt table has none yet.
	stmts = append(stmts, `ANALYZE customers`)
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// searchExpr is what q searches: lower-cased name, email and company.
const searchExpr = `(lower(coalesce(name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(company, '')))`

// AppliedRevisions implements projections.Reconciler.
func (*Projector) AppliedRevisions(ctx context.Context, tx pgx.Tx, visit func(stream string, revision uint64) error) error {
	return projections.VisitAppliedRevisions(ctx, tx, `SELECT id, last_revision FROM customers`, visit)
}

// row is one customer: its state as domain.Evolve folds it, and the read
// model's own bookkeeping. A row is a value: domain.Evolve never writes
// into the memory of the state it is given, so cached rows can be copied
// and evolved without being disturbed.
type row struct {
	state  domain.Customer
	erased bool // personal data unreadable: erased, or its key destroyed
	// lastRevision is the revision through which every event of the stream
	// was applied (-1 for none). An event past a gap is applied but does
	// not move it, so that Verify reports the gap.
	lastRevision int64
	lastPosition int64
	updatedAt    time.Time
	dirty        bool
}

// Apply implements projections.Projector: load the batch's customers in
// one query, fold the batch in memory with domain.Evolve, write the
// changed rows back in one statement.
func (p *Projector) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	ids := make([]uuid.UUID, 0, len(batch))
	seen := make(map[uuid.UUID]struct{}, len(batch))
	for i := range batch {
		id, err := batch[i].CustomerID()
		if err != nil {
			return err
		}
		if _, ok := seen[id]; !ok {
			seen[id] = struct{}{}
			ids = append(ids, id)
		}
	}
	rows, err := p.rows(ctx, tx, ids)
	if err != nil {
		return err
	}
	for i := range batch {
		d := &batch[i]
		id, _ := d.CustomerID()
		r := rows[id]
		if r == nil {
			r = &row{lastRevision: -1}
			rows[id] = r
		}
		rev := int64(d.Record.Revision)
		if rev <= r.lastRevision {
			continue // applied already: applying is idempotent
		}
		r.state = domain.Evolve(r.state, d.Event)
		if d.Erased || r.state.Status == domain.StatusErased {
			r.erased = true
		}
		if rev == r.lastRevision+1 {
			r.lastRevision = rev
		}
		r.lastPosition = int64(d.Record.Position)
		r.updatedAt = d.Record.RecordedAt
		r.dirty = true
	}
	if err := p.write(ctx, tx, ids, rows); err != nil {
		return err
	}
	p.remember(ctx, ids, rows)
	return nil
}

// rows returns the current rows of ids: from the cache, the rest from
// the table.
func (p *Projector) rows(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]*row, error) {
	schema := projections.GenerationSchema(ctx)
	out := make(map[uuid.UUID]*row, len(ids))
	missing := ids
	if c := p.For(schema); c != nil {
		missing = make([]uuid.UUID, 0, len(ids))
		for _, id := range ids {
			if r, ok := c.Get(id); ok {
				r.dirty = false
				out[id] = &r
			} else {
				missing = append(missing, id)
			}
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	loaded, err := load(ctx, tx, missing)
	if err != nil {
		return nil, err
	}
	for id, r := range loaded {
		out[id] = r
	}
	return out, nil
}

// remember keeps the rows an Apply wrote until its transaction ends.
func (p *Projector) remember(ctx context.Context, ids []uuid.UUID, rows map[uuid.UUID]*row) {
	written := make(map[uuid.UUID]row, len(ids))
	for _, id := range ids {
		if r := rows[id]; r.dirty {
			written[id] = *r
		}
	}
	p.Stage(projections.GenerationSchema(ctx), written)
}
