package customers

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"
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
//
// 3: readmodels.customer_risk and readmodels.customer_risk_weights, and
// ANALYZE before serving. (Not 2: the engine's tests run this projector
// as version 2 to stand for a changed version.)
const version = 2

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

	mu sync.Mutex
	// cache holds the committed rows of each generation (by schema);
	// pending what the last Apply to it wrote, until its transaction ends.
	cache   map[string]*lru.Cache[uuid.UUID, row]
	pending map[string][]row
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
	return &Projector{cfg: cfg, cache: map[string]*lru.Cache[uuid.UUID, row]{}, pending: map[string][]row{}}, nil
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
	for _, stmt := range risk.FunctionSQL() {
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
			updated_at            timestamptz NOT NULL
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
	if c := p.generationCache(schema); c != nil {
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

// generationCache is the cache of a generation, or nil when caching is
// off or the generation is unknown.
func (p *Projector) generationCache(schema string) *lru.Cache[uuid.UUID, row] {
	if p.cfg.CacheSize < 0 || schema == "" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.cache[schema]
	if c == nil {
		c, _ = lru.New[uuid.UUID, row](p.cfg.CacheSize) // size is positive
		p.cache[schema] = c
	}
	return c
}

// remember keeps the rows an Apply wrote until its transaction ends.
func (p *Projector) remember(ctx context.Context, ids []uuid.UUID, rows map[uuid.UUID]*row) {
	schema := projections.GenerationSchema(ctx)
	if p.cfg.CacheSize < 0 || schema == "" {
		return
	}
	written := make([]row, 0, len(ids))
	for _, id := range ids {
		if r := rows[id]; r.dirty {
			written = append(written, *r)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending[schema] = written
}

// AfterApply implements projections.Cache.
func (p *Projector) AfterApply(schema string, committed bool) {
	p.mu.Lock()
	written := p.pending[schema]
	delete(p.pending, schema)
	c := p.cache[schema]
	p.mu.Unlock()
	if c == nil {
		return
	}
	if !committed {
		c.Purge()
		return
	}
	for _, r := range written {
		c.Add(r.state.ID, r)
	}
}

// Forget implements projections.Cache.
func (p *Projector) Forget(schema string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s := range p.cache {
		if schema == "" || s == schema {
			delete(p.cache, s)
			delete(p.pending, s)
		}
	}
}

// complaintJSON is one complaint in the complaints column: what the
// figures and the churn-risk factors need, without the (personal)
// description.
type complaintJSON struct {
	ID             uuid.UUID              `json:"id"`
	Category       string                 `json:"category"`
	Severity       domain.Severity        `json:"severity"`
	Channel        domain.Channel         `json:"channel,omitempty"`
	Status         domain.ComplaintStatus `json:"status"`
	Assignee       string                 `json:"assignee,omitempty"`
	FiledAt        time.Time              `json:"filed_at"`
	OpenedAt       time.Time              `json:"opened_at"`
	AcknowledgedAt *time.Time             `json:"acknowledged_at,omitempty"`
	ResolvedAt     *time.Time             `json:"resolved_at,omitempty"`
	Openings       int                    `json:"openings"`
	Escalations    int                    `json:"escalations"`
}

// followUpJSON is one pending follow-up in the follow_ups column. Done
// follow-ups are dropped: nothing changes them any more.
type followUpJSON struct {
	ID          uuid.UUID `json:"id"`
	DueAt       time.Time `json:"due_at"`
	By          string    `json:"by"`
	ScheduledAt time.Time `json:"scheduled_at"`
}

const columns = `id, name, email, phone, company, tags, segment, tier, region, industry,
	account_manager, support, sales, status, personal_data_erased, registered_at, last_contact_at, churned_at, erased_at,
	surveys, last_csat, last_csat_at, prev_csat, prev_csat_at, last_nps, last_nps_at,
	complaints, follow_ups, last_revision, last_position, updated_at`

func load(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]*row, error) {
	out := make(map[uuid.UUID]*row, len(ids))
	keys := make([][16]byte, len(ids))
	for i, id := range ids {
		keys[i] = id
	}
	rows, err := tx.Query(ctx, `SELECT `+columns+` FROM customers WHERE id = ANY($1)`, keys)
	if err != nil {
		return nil, fmt.Errorf("customers: load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r                                    row
			c                                    = &r.state
			name, email, phone, company          *string
			am, support, sales                   *string
			status                               string
			registeredAt, lastContact, churnedAt *time.Time
			erasedAt                             *time.Time
			lastCSAT, prevCSAT, lastNPS          *int16
			lastCSATAt, prevCSATAt, lastNPSAt    *time.Time
			complaints, followUps                []byte
		)
		if err := rows.Scan(&c.ID, &name, &email, &phone, &company, &c.Tags, &c.Segment, &c.Tier, &c.Region, &c.Industry,
			&am, &support, &sales, &status, &r.erased, &registeredAt, &lastContact, &churnedAt, &erasedAt,
			&c.Surveys.Count, &lastCSAT, &lastCSATAt, &prevCSAT, &prevCSATAt, &lastNPS, &lastNPSAt,
			&complaints, &followUps, &r.lastRevision, &r.lastPosition, &r.updatedAt); err != nil {
			return nil, fmt.Errorf("customers: load: %w", err)
		}
		c.Registered = true
		c.Status = domain.CustomerStatus(status)
		c.Name, c.Email, c.Phone, c.Company = deref(name), deref(email), deref(phone), deref(company)
		if len(c.Tags) == 0 {
			c.Tags = nil
		}
		for role, m := range map[domain.Role]*string{domain.RoleAccountManager: am, domain.RoleSupport: support, domain.RoleSales: sales} {
			if m != nil {
				if c.Team == nil {
					c.Team = map[domain.Role]string{}
				}
				c.Team[role] = *m
			}
		}
		c.RegisteredAt, c.LastContactAt, c.ChurnedAt, c.ErasedAt = derefTime(registeredAt), derefTime(lastContact), derefTime(churnedAt), derefTime(erasedAt)
		c.Surveys.LastCSAT, c.Surveys.LastCSATAt = intPtr(lastCSAT), derefTime(lastCSATAt)
		c.Surveys.PrevCSAT, c.Surveys.PrevCSATAt = intPtr(prevCSAT), derefTime(prevCSATAt)
		c.Surveys.LastNPS, c.Surveys.LastNPSAt = intPtr(lastNPS), derefTime(lastNPSAt)
		var cs []complaintJSON
		if err := json.Unmarshal(complaints, &cs); err != nil {
			return nil, fmt.Errorf("customers: complaints of %s: %w", c.ID, err)
		}
		for _, j := range cs {
			c.Complaints = append(c.Complaints, domain.Complaint{
				ID: j.ID, Category: j.Category, Severity: j.Severity, Channel: j.Channel, Status: j.Status, Assignee: j.Assignee,
				FiledAt: j.FiledAt, OpenedAt: j.OpenedAt, Acknowledged: j.AcknowledgedAt != nil, AcknowledgedAt: derefTime(j.AcknowledgedAt),
				ResolvedAt: derefTime(j.ResolvedAt), Openings: j.Openings, Escalations: j.Escalations,
			})
		}
		var fs []followUpJSON
		if err := json.Unmarshal(followUps, &fs); err != nil {
			return nil, fmt.Errorf("customers: follow-ups of %s: %w", c.ID, err)
		}
		for _, j := range fs {
			c.FollowUps = append(c.FollowUps, domain.FollowUp{ID: j.ID, DueAt: j.DueAt, By: j.By, ScheduledAt: j.ScheduledAt})
		}
		out[c.ID] = &r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("customers: load: %w", err)
	}
	return out, nil
}

// copyThreshold is the number of changed rows from which write goes
// through COPY: a few statements more, but cheaper per row for Postgres.
const copyThreshold = 256

// write upserts the changed rows: small batches (live traffic) with one
// statement of unnest arrays, large ones (catch-up, rebuilds) with COPY
// into a staging table and one INSERT from it.
func (p *Projector) write(ctx context.Context, tx pgx.Tx, ids []uuid.UUID, rows map[uuid.UUID]*row) error {
	n := 0
	for _, id := range ids {
		if rows[id].dirty {
			n++
		}
	}
	if n >= copyThreshold && projections.GenerationSchema(ctx) != "" {
		return p.writeCopy(ctx, tx, ids, rows)
	}
	return writeUnnest(ctx, tx, ids, rows)
}

// writeUnnest upserts the changed rows with one statement of unnest
// arrays. Every array is of a type pgx encodes without reflection; NULLs
// travel as sentinels (empty member, zero time, -1 score) that the
// statement turns back into NULL.
func writeUnnest(ctx context.Context, tx pgx.Tx, ids []uuid.UUID, rows map[uuid.UUID]*row) error {
	n := 0
	for _, id := range ids {
		if rows[id].dirty {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	var (
		cid                                                 = make([][16]byte, 0, n)
		name, email, phone, company, tags                   = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		segment, tier, region, industry                     = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		am, support, sales                                  = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		members, status                                     = make([]string, 0, n), make([]string, 0, n)
		erased                                              = make([]bool, 0, n)
		registeredAt, lastContact, churnedAt, erasedAt      = make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n)
		openComplaints, complaintsTotal, surveys, followUps = make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n)
		lastCSAT, prevCSAT, lastNPS                         = make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n)
		lastCSATAt, prevCSATAt, lastNPSAt, nextDue          = make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n)
		complaintsJSON, followUpsJSON                       = make([]string, 0, n), make([]string, 0, n)
		lastRevision, lastPosition                          = make([]int64, 0, n), make([]int64, 0, n)
		updatedAt                                           = make([]time.Time, 0, n)
	)
	var buf strings.Builder
	var jsonBuf []byte
	for _, id := range ids {
		r := rows[id]
		if !r.dirty {
			continue
		}
		c := &r.state
		cid = append(cid, id)
		if r.erased {
			name, email, phone, company, tags = append(name, ""), append(email, ""), append(phone, ""), append(company, ""), append(tags, "{}")
		} else {
			name, email, phone, company = append(name, c.Name), append(email, c.Email), append(phone, c.Phone), append(company, c.Company)
			tags = append(tags, textArray(&buf, c.Tags))
		}
		segment, tier, region, industry = append(segment, c.Segment), append(tier, c.Tier), append(region, c.Region), append(industry, c.Industry)
		var team []string
		teamOf := func(role domain.Role) string {
			m := c.Team[role]
			if m != "" {
				team = append(team, m)
			}
			return m
		}
		am, support, sales = append(am, teamOf(domain.RoleAccountManager)), append(support, teamOf(domain.RoleSupport)), append(sales, teamOf(domain.RoleSales))
		members = append(members, textArray(&buf, team))
		status = append(status, string(c.Status))
		erased = append(erased, r.erased)
		registeredAt, lastContact = append(registeredAt, c.RegisteredAt), append(lastContact, c.LastContactAt)
		churnedAt, erasedAt = append(churnedAt, c.ChurnedAt), append(erasedAt, c.ErasedAt)
		openComplaints = append(openComplaints, int32(c.OpenComplaints()))
		complaintsTotal = append(complaintsTotal, int32(len(c.Complaints)))
		surveys = append(surveys, int32(c.Surveys.Count))
		lastCSAT, lastCSATAt = append(lastCSAT, score(c.Surveys.LastCSAT)), append(lastCSATAt, c.Surveys.LastCSATAt)
		prevCSAT, prevCSATAt = append(prevCSAT, score(c.Surveys.PrevCSAT)), append(prevCSATAt, c.Surveys.PrevCSATAt)
		lastNPS, lastNPSAt = append(lastNPS, score(c.Surveys.LastNPS)), append(lastNPSAt, c.Surveys.LastNPSAt)
		cj, pending, due, jb := encodeRiskInputs(c, jsonBuf)
		jsonBuf = jb
		complaintsJSON, followUpsJSON = append(complaintsJSON, cj), append(followUpsJSON, pending)
		followUps, nextDue = append(followUps, int32(countPending(c))), append(nextDue, due)
		lastRevision, lastPosition, updatedAt = append(lastRevision, r.lastRevision), append(lastPosition, r.lastPosition), append(updatedAt, r.updatedAt)
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO customers (id, name, email, phone, company, tags, segment, tier, region, industry,
			account_manager, support, sales, team_members, status, personal_data_erased,
			registered_at, last_contact_at, churned_at, erased_at,
			open_complaints, complaints_total, surveys, last_csat, last_csat_at, prev_csat, prev_csat_at, last_nps, last_nps_at,
			follow_ups_pending, next_follow_up_due_at, complaints, follow_ups, last_revision, last_position, updated_at)
		SELECT id,
			CASE WHEN erased THEN NULL ELSE name END, CASE WHEN erased THEN NULL ELSE email END,
			CASE WHEN erased THEN NULL ELSE phone END, CASE WHEN erased THEN NULL ELSE company END,
			CASE WHEN erased THEN NULL ELSE tags::text[] END, segment, tier, region, industry,
			nullif(am, ''), nullif(support, ''), nullif(sales, ''), members::text[], status, erased,
			nullif(registered_at, '0001-01-01 00:00:00+00'), nullif(last_contact_at, '0001-01-01 00:00:00+00'), nullif(churned_at, '0001-01-01 00:00:00+00'), nullif(erased_at, '0001-01-01 00:00:00+00'),
			open_complaints, complaints_total, surveys,
			nullif(last_csat, -1), nullif(last_csat_at, '0001-01-01 00:00:00+00'), nullif(prev_csat, -1), nullif(prev_csat_at, '0001-01-01 00:00:00+00'),
			nullif(last_nps, -1), nullif(last_nps_at, '0001-01-01 00:00:00+00'),
			follow_ups_pending, nullif(next_due, '0001-01-01 00:00:00+00'), complaints::jsonb, follow_ups::jsonb, last_revision, last_position, updated_at
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
			$11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::boolean[],
			$17::timestamptz[], $18::timestamptz[], $19::timestamptz[], $20::timestamptz[],
			$21::int[], $22::int[], $23::int[], $24::int[], $25::timestamptz[], $26::int[], $27::timestamptz[], $28::int[], $29::timestamptz[],
			$30::int[], $31::timestamptz[], $32::text[], $33::text[], $34::bigint[], $35::bigint[], $36::timestamptz[])
			AS t(id, name, email, phone, company, tags, segment, tier, region, industry,
			am, support, sales, members, status, erased,
			registered_at, last_contact_at, churned_at, erased_at,
			open_complaints, complaints_total, surveys, last_csat, last_csat_at, prev_csat, prev_csat_at, last_nps, last_nps_at,
			follow_ups_pending, next_due, complaints, follow_ups, last_revision, last_position, updated_at)
		ON CONFLICT (id) DO UPDATE SET
			name = EXCLUDED.name, email = EXCLUDED.email, phone = EXCLUDED.phone, company = EXCLUDED.company, tags = EXCLUDED.tags,
			segment = EXCLUDED.segment, tier = EXCLUDED.tier, region = EXCLUDED.region, industry = EXCLUDED.industry,
			account_manager = EXCLUDED.account_manager, support = EXCLUDED.support, sales = EXCLUDED.sales,
			team_members = EXCLUDED.team_members, status = EXCLUDED.status, personal_data_erased = EXCLUDED.personal_data_erased,
			registered_at = EXCLUDED.registered_at, last_contact_at = EXCLUDED.last_contact_at,
			churned_at = EXCLUDED.churned_at, erased_at = EXCLUDED.erased_at,
			open_complaints = EXCLUDED.open_complaints, complaints_total = EXCLUDED.complaints_total, surveys = EXCLUDED.surveys,
			last_csat = EXCLUDED.last_csat, last_csat_at = EXCLUDED.last_csat_at, prev_csat = EXCLUDED.prev_csat,
			prev_csat_at = EXCLUDED.prev_csat_at, last_nps = EXCLUDED.last_nps, last_nps_at = EXCLUDED.last_nps_at,
			follow_ups_pending = EXCLUDED.follow_ups_pending, next_follow_up_due_at = EXCLUDED.next_follow_up_due_at,
			complaints = EXCLUDED.complaints, follow_ups = EXCLUDED.follow_ups,
			last_revision = EXCLUDED.last_revision, last_position = EXCLUDED.last_position, updated_at = EXCLUDED.updated_at`,
		cid, name, email, phone, company, tags, segment, tier, region, industry,
		am, support, sales, members, status, erased,
		registeredAt, lastContact, churnedAt, erasedAt,
		openComplaints, complaintsTotal, surveys, lastCSAT, lastCSATAt, prevCSAT, prevCSATAt, lastNPS, lastNPSAt,
		followUps, nextDue, complaintsJSON, followUpsJSON, lastRevision, lastPosition, updatedAt)
	if err != nil {
		return fmt.Errorf("customers: write %d rows: %w", n, err)
	}
	return nil
}

// score is a survey score for write, -1 for none.
func score(v *int) int32 {
	if v == nil {
		return -1
	}
	return int32(*v)
}

// encodeRiskInputs renders the complaints and the pending follow-ups as
// the JSON of complaintJSON and followUpJSON (by hand: this runs for every
// row written), and returns the earliest pending due date.
func encodeRiskInputs(c *domain.Customer, buf []byte) (complaints, followUps string, nextDue time.Time, _ []byte) {
	b := append(buf[:0], '[')
	for i, x := range c.Complaints {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = append(b, x.ID.String()...)
		b = append(b, `","category":`...)
		b = appendJSONString(b, x.Category)
		b = append(b, `,"severity":`...)
		b = appendJSONString(b, string(x.Severity))
		if x.Channel != "" {
			b = append(b, `,"channel":`...)
			b = appendJSONString(b, string(x.Channel))
		}
		b = append(b, `,"status":`...)
		b = appendJSONString(b, string(x.Status))
		if x.Assignee != "" {
			b = append(b, `,"assignee":`...)
			b = appendJSONString(b, x.Assignee)
		}
		b = append(b, `,"filed_at":`...)
		b = appendJSONTime(b, x.FiledAt)
		b = append(b, `,"opened_at":`...)
		b = appendJSONTime(b, x.OpenedAt)
		if x.Acknowledged && !x.AcknowledgedAt.IsZero() {
			b = append(b, `,"acknowledged_at":`...)
			b = appendJSONTime(b, x.AcknowledgedAt)
		}
		if !x.ResolvedAt.IsZero() {
			b = append(b, `,"resolved_at":`...)
			b = appendJSONTime(b, x.ResolvedAt)
		}
		b = append(b, `,"openings":`...)
		b = strconv.AppendInt(b, int64(x.Openings), 10)
		b = append(b, `,"escalations":`...)
		b = strconv.AppendInt(b, int64(x.Escalations), 10)
		b = append(b, '}')
	}
	b = append(b, ']')
	complaints = string(b)
	b = append(b[:0], '[')
	n := 0
	for _, f := range c.FollowUps {
		if f.Done {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, `{"id":"`...)
		b = append(b, f.ID.String()...)
		b = append(b, `","due_at":`...)
		b = appendJSONTime(b, f.DueAt)
		b = append(b, `,"by":`...)
		b = appendJSONString(b, f.By)
		b = append(b, `,"scheduled_at":`...)
		b = appendJSONTime(b, f.ScheduledAt)
		b = append(b, '}')
		if nextDue.IsZero() || f.DueAt.Before(nextDue) {
			nextDue = f.DueAt
		}
	}
	b = append(b, ']')
	return complaints, string(b), nextDue, b
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func countPending(c *domain.Customer) int {
	n := 0
	for _, f := range c.FollowUps {
		if !f.Done {
			n++
		}
	}
	return n
}

// textArray renders a Postgres text[] literal: unnest cannot take ragged
// arrays, so each row's list travels as one literal.
func textArray(buf *strings.Builder, items []string) string {
	buf.Reset()
	buf.WriteByte('{')
	for i, s := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('"')
		for _, r := range s {
			if r == '"' || r == '\\' {
				buf.WriteByte('\\')
			}
			buf.WriteRune(r)
		}
		buf.WriteByte('"')
	}
	buf.WriteByte('}')
	return buf.String()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func intPtr(v *int16) *int {
	if v == nil {
		return nil
	}
	i := int(*v)
	return &i
}

// copyColumns are the table's columns in the order writeCopy sends them.
var copyColumns = []string{"id", "name", "email", "phone", "company", "tags", "segment", "tier", "region", "industry",
	"account_manager", "support", "sales", "team_members", "status", "personal_data_erased",
	"registered_at", "last_contact_at", "churned_at", "erased_at",
	"open_complaints", "complaints_total", "surveys", "last_csat", "last_csat_at", "prev_csat", "prev_csat_at", "last_nps", "last_nps_at",
	"follow_ups_pending", "next_follow_up_due_at", "complaints", "follow_ups", "last_revision", "last_position", "updated_at"}

// rowSource feeds the changed rows to COPY, one reused slice per row.
type rowSource struct {
	rows    []*row
	i       int
	vals    []any
	jsonBuf []byte
}

func (s *rowSource) Next() bool { s.i++; return s.i <= len(s.rows) }
func (s *rowSource) Err() error { return nil }

func (s *rowSource) Values() ([]any, error) {
	r := s.rows[s.i-1]
	c := &r.state
	v := s.vals[:0]
	v = append(v, [16]byte(c.ID))
	if r.erased {
		v = append(v, nil, nil, nil, nil, nil)
	} else {
		v = append(v, c.Name, c.Email, c.Phone, c.Company, tagsValue(c.Tags))
	}
	v = append(v, c.Segment, c.Tier, c.Region, c.Industry)
	team := make([]string, 0, 3)
	for _, role := range []domain.Role{domain.RoleAccountManager, domain.RoleSupport, domain.RoleSales} {
		if m := c.Team[role]; m != "" {
			v = append(v, m)
			team = append(team, m)
		} else {
			v = append(v, nil)
		}
	}
	v = append(v, team, string(c.Status), r.erased,
		nullTime(c.RegisteredAt), nullTime(c.LastContactAt), nullTime(c.ChurnedAt), nullTime(c.ErasedAt),
		int32(c.OpenComplaints()), int32(len(c.Complaints)), int32(c.Surveys.Count),
		nullScore(c.Surveys.LastCSAT), nullTime(c.Surveys.LastCSATAt), nullScore(c.Surveys.PrevCSAT), nullTime(c.Surveys.PrevCSATAt),
		nullScore(c.Surveys.LastNPS), nullTime(c.Surveys.LastNPSAt))
	cj, fj, due, jb := encodeRiskInputs(c, s.jsonBuf)
	s.jsonBuf = jb
	v = append(v, int32(countPending(c)), nullTime(due), cj, fj, r.lastRevision, r.lastPosition, r.updatedAt)
	s.vals = v
	return v, nil
}

func tagsValue(tags []string) []string {
	if tags == nil {
		return []string{}
	}
	return tags
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func nullScore(v *int) any {
	if v == nil {
		return nil
	}
	return int16(*v)
}

// writeCopy writes the changed rows through a temporary staging table of
// the locked connection (one per generation, emptied at each commit):
// COPY into it, then one INSERT … ON CONFLICT from it.
func (p *Projector) writeCopy(ctx context.Context, tx pgx.Tx, ids []uuid.UUID, rows map[uuid.UUID]*row) error {
	var dirty []*row
	for _, id := range ids {
		if r := rows[id]; r.dirty {
			r.state.ID = id
			dirty = append(dirty, r)
		}
	}
	if len(dirty) == 0 {
		return nil
	}
	stage := "stage_" + projections.GenerationSchema(ctx)
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS `+pgx.Identifier{stage}.Sanitize()+` (LIKE customers) ON COMMIT DELETE ROWS`); err != nil {
		return err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{stage}, copyColumns, &rowSource{rows: dirty}); err != nil {
		return fmt.Errorf("customers: copy %d rows: %w", len(dirty), err)
	}
	set := make([]string, 0, len(copyColumns)-1)
	for _, c := range copyColumns[1:] {
		set = append(set, c+" = EXCLUDED."+c)
	}
	_, err := tx.Exec(ctx, `INSERT INTO customers (`+strings.Join(copyColumns, ", ")+`) SELECT `+strings.Join(copyColumns, ", ")+` FROM `+
		pgx.Identifier{stage}.Sanitize()+` ON CONFLICT (id) DO UPDATE SET `+strings.Join(set, ", "))
	if err != nil {
		return fmt.Errorf("customers: write %d rows: %w", len(dirty), err)
	}
	return nil
}
