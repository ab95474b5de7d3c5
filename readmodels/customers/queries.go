package customers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/readmodels/cadence"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/risk"
	"github.com/rapport-crm/rapport/readmodels/sla"
)

// Customer is a customer as the directory shows it (GET /v1/customers/{id}).
// Personal fields are nil once the customer's data was erased.
type Customer struct {
	ID       uuid.UUID
	Name     *string
	Email    *string
	Phone    *string
	Company  *string
	Tags     []string
	Segment  string
	Tier     string
	Region   string
	Industry string
	// Team maps each filled role to its member.
	Team           map[string]string
	Status         string
	RegisteredAt   time.Time
	LastContactAt  *time.Time
	OpenComplaints int
	LastCSAT       *int
	LastNPS        *int
	// Revision and Position are those of the last event applied: the
	// customer is shown as of that event.
	Revision uint64
	Position uint64
	// Risk holds what the churn-risk score is computed from at query time.
	Risk RiskInputs
	// ChurnRisk is the churn-risk score evaluated when the customer was
	// read (readmodels.customer_risk); nil unless the customer is active.
	ChurnRisk *risk.Risk
	// Contact cadence (PRODUCT.md), judged when the customer was read:
	// ContactDueAt is when its last contact (or registration) becomes
	// older than its tier's cadence, DueForContact whether it is active
	// and that instant has come, OverContacted whether it had more than
	// the maximum of outbound contacts in the 7 days up to then. A
	// customer not active has no ContactDueAt and is never due.
	ContactDueAt  *time.Time
	DueForContact bool
	OverContacted bool
}

// RiskInputs are the facts the churn-risk factors read (PRODUCT.md, Churn
// risk). The score is computed at query time from them, so it is never
// stale; new factors add fields here and columns in the table.
type RiskInputs struct {
	RegisteredAt      time.Time
	LastContactAt     *time.Time
	Complaints        []ComplaintInput
	LastCSAT          *int
	LastCSATAt        *time.Time
	PrevCSAT          *int
	LastNPS           *int
	FollowUpsPending  []FollowUpInput
	NextFollowUpDueAt *time.Time
}

// ComplaintInput is one complaint's state.
type ComplaintInput struct {
	ID             uuid.UUID  `json:"id"`
	Category       string     `json:"category"`
	Severity       string     `json:"severity"`
	Channel        string     `json:"channel,omitempty"`
	Status         string     `json:"status"`
	Assignee       string     `json:"assignee,omitempty"`
	FiledAt        time.Time  `json:"filed_at"`
	OpenedAt       time.Time  `json:"opened_at"`
	AcknowledgedAt *time.Time `json:"acknowledged_at,omitempty"`
	ResolvedAt     *time.Time `json:"resolved_at,omitempty"`
	Openings       int        `json:"openings"`
	Escalations    int        `json:"escalations"`
}

// Open reports whether the complaint awaits a resolution.
func (c ComplaintInput) Open() bool { return c.Status != "resolved" }

// FollowUpInput is a follow-up no contact has completed yet.
type FollowUpInput struct {
	ID          uuid.UUID `json:"id"`
	DueAt       time.Time `json:"due_at"`
	By          string    `json:"by"`
	ScheduledAt time.Time `json:"scheduled_at"`
}

// Filter narrows List. Empty fields do not filter.
type Filter struct {
	Segment string
	Tier    string
	Region  string
	// Owner is a team member in any role.
	Owner  string
	Status string
	// Q searches name, email and company (case-insensitive substring).
	Q string
	// Risk keeps the active customers at this churn-risk level (low,
	// medium or high), evaluated at the time of the query.
	Risk string
	// NoContactDays, when positive, keeps the customers without a contact
	// for at least that many whole days (24 h): since their last contact,
	// or since their registration when there was none (the reference of
	// the days_since_contact factor).
	NoContactDays int
	// IDs, when not nil, keeps only these customers (an empty list keeps
	// none): how another read model's judgement, such as an RFM segment,
	// narrows the list. A pointer keeps Filter comparable.
	IDs *[]uuid.UUID
	// DueForContact, when set, keeps the customers that are (true) or are
	// not (false) due for a contact by their tier's cadence at the time
	// of the query; due customers are active.
	DueForContact *bool
}

// Page is one page of List.
type Page = readmodel.Page[Customer]

// Cursor is the kind of List's cursors, which continue after the
// registration time and id of a page's last customer. It is "": the
// directory's cursors predate kinds, and clients may hold them.
const Cursor readmodel.CursorKind = ""

// ErrNotFound is returned by Get for a customer the read model lacks.
var ErrNotFound = errors.New("customers: customer not found")

// ErrBadCursor is returned by List for a cursor it did not make.
var ErrBadCursor = readmodel.ErrBadCursor

// Queries reads the directory through the readmodels.customers view, so
// it always sees the active generation, and scores churn risk with
// readmodels.customer_risk at the time of each query.
type Queries struct {
	pool    *pgxpool.Pool
	now     func() time.Time
	weights []int32
	sla     string
	cadence []int32
	maxOut  int32
	// overContact: judge over-contact, reading readmodels.contacts too
	// (WithCadence; the service always sets it).
	overContact bool
	// purchases: a purchase factor has points (risk/purchases.go): the
	// score reads the value read model too.
	purchases bool
}

// Option configures Queries.
type Option func(*Queries)

// WithRisk sets the churn-risk weights and the SLA targets (defaults:
// risk.DefaultWeights, sla.Defaults).
func WithRisk(w risk.Weights, targets sla.Targets) Option {
	return func(q *Queries) {
		q.weights = w.Array()
		q.purchases = w.UsesPurchases()
		if targets != nil {
			raw, _ := json.Marshal(targets.Seconds()) // a map of arrays of integers
			q.sla = string(raw)
		}
	}
}

// WithClock sets the clock the churn risk is evaluated with (default
// time.Now).
func WithClock(now func() time.Time) Option { return func(q *Queries) { q.now = now } }

// WithCadence sets the contact cadence (zero fields: the defaults) and
// the most outbound contacts in 7 days that are not over-contact (0: the
// default, 3), and makes the queries judge over-contact, which reads the
// contacts' table (readmodels.contacts) too. Without it, due_for_contact
// is judged by the default cadence and OverContacted is always false:
// the queries then read only this projector's table.
func WithCadence(c cadence.Cadence, maxOutboundPerWeek int) Option {
	return func(q *Queries) {
		setCadence(q, c, maxOutboundPerWeek)
		q.overContact = true
	}
}

func setCadence(q *Queries, c cadence.Cadence, maxOutboundPerWeek int) {
	c.SetDefaults()
	if maxOutboundPerWeek <= 0 {
		maxOutboundPerWeek = cadence.DefaultMaxOutboundPerWeek
	}
	q.cadence, q.maxOut = c.Array(), int32(maxOutboundPerWeek)
}

// NewQueries returns queries on pool.
func NewQueries(pool *pgxpool.Pool, opts ...Option) *Queries {
	q := &Queries{pool: pool, now: time.Now}
	WithRisk(risk.DefaultWeights(), sla.Defaults())(q)
	setCadence(q, cadence.Cadence{}, 0)
	for _, o := range opts {
		o(q)
	}
	return q
}

// Reads names the projectors whose tables the queries read: this one's
// (the churn-risk functions it calls are its too) and, when they judge
// over-contact (WithCadence), the contacts'.
func (q *Queries) Reads() []string {
	reads := []string{Name}
	if q.overContact {
		reads = append(reads, contacts.Name)
	}
	if q.purchases {
		reads = append(reads, risk.PurchasesProjector)
	}
	return reads
}

// At returns the same queries evaluating churn risk at now: what they
// would answer at that time, with the directory as it is.
func (q *Queries) At(now time.Time) *Queries {
	c := *q
	c.now = func() time.Time { return now }
	return &c
}

const selectColumns = `c.id, c.name, c.email, c.phone, c.company, c.tags, c.segment, c.tier, c.region, c.industry,
	c.account_manager, c.support, c.sales, c.status, c.registered_at, c.last_contact_at, c.open_complaints,
	c.last_csat, c.last_csat_at, c.prev_csat, c.last_nps, c.next_follow_up_due_at, c.complaints, c.follow_ups, c.last_revision, c.last_position,
	r.score, r.level, r.factors, k.due_at, coalesce(k.due_at <= $1::timestamptz, false), k.over_contacted`

// fromRisk reads the directory with each customer's churn risk and
// contact cadence: $1 is the time to evaluate at, $2 the weights, $3 the
// SLA targets, $4 the cadence in days (cadence.Array), $5 the most
// outbound contacts in 7 days. The risk function is inlined into the
// query, so a filter on r.level costs a few comparisons per customer;
// k.due_at is NULL unless the customer is active.
func (q *Queries) fromRisk() string {
	over := "(false AND $5::integer > 0)" // every parameter has a type
	if q.overContact {
		over = cadence.OverContactedSQL("c.id", "$1::timestamptz", "$5::integer")
	}
	score := ` r`
	if q.purchases { // the purchase factors' points added (risk/purchases.go)
		score = ` r0
	CROSS JOIN LATERAL ` + risk.PurchaseRiskSQL("r0", "c.id", "$1::timestamptz", "$2::integer[]") + ` r`
	}
	return ` FROM readmodels.customers c
	CROSS JOIN LATERAL readmodels.customer_risk(c.status, c.registered_at, c.last_contact_at, c.open_complaints, c.complaints_total,
		c.complaints, c.last_csat, c.prev_csat, c.last_nps, c.next_follow_up_due_at, $1::timestamptz, $2::integer[], $3::jsonb)` + score + `
	CROSS JOIN LATERAL (SELECT CASE WHEN c.status = 'active' THEN ` +
		cadence.DueAtSQL("c.tier", "coalesce(c.last_contact_at, c.registered_at)", "$4::integer[]") + ` END AS due_at,
		` + over + ` AS over_contacted) k`
}

func (q *Queries) riskArgs() []any { return []any{q.now(), q.weights, q.sla, q.cadence, q.maxOut} }

// Get returns one customer.
func (q *Queries) Get(ctx context.Context, id uuid.UUID) (Customer, error) {
	rows, err := q.pool.Query(ctx, `SELECT `+selectColumns+q.fromRisk()+` WHERE c.id = $6`, append(q.riskArgs(), id)...)
	var items []Customer
	if err == nil {
		items, err = collect(rows)
	}
	if err != nil {
		return Customer{}, readmodel.Fail("customers: get", err)
	}
	if len(items) == 0 {
		return Customer{}, ErrNotFound
	}
	return items[0], nil
}

// MaxLimit bounds List's page size.
const MaxLimit = 500

// List returns customers matching f, oldest registration first, limit at
// a time (1..MaxLimit; 0 means 50). cursor is "" or a previous page's
// NextCursor: pagination is by key (registered_at, id), so pages stay
// consistent while customers are added. It is one query: the filters
// other than Risk and NoContactDays use the indexes; those two are
// evaluated on the customers read in key order until the page is full.
// With more than manyIDs ids, the keys are walked in order first and the
// page's rows read after, in one snapshot.
func (q *Queries) List(ctx context.Context, f Filter, limit int, cursor string) (Page, error) {
	if limit == 0 {
		limit = 50
	}
	if limit < 1 || limit > MaxLimit {
		return Page{}, fmt.Errorf("customers: limit must be within 1..%d", MaxLimit)
	}
	if f.Risk != "" && !risk.ValidLevel(f.Risk) {
		return Page{}, fmt.Errorf("customers: unknown risk level %q", f.Risk)
	}
	if f.NoContactDays < 0 {
		return Page{}, fmt.Errorf("customers: NoContactDays must not be negative")
	}
	if f.IDs == nil || len(*f.IDs) <= manyIDs {
		return q.list(ctx, q.pool, f, limit, cursor)
	}
	// Many ids (an RFM segment of thousands): passing them to the query
	// costs a plan that estimates each one. Walk the directory's order
	// instead, ids only, keep the members, and read the page's rows: the
	// same page, in one repeatable-read snapshot.
	tx, err := q.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return Page{}, readmodel.Fail("customers: list", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	members := make(map[uuid.UUID]struct{}, len(*f.IDs))
	for _, id := range *f.IDs {
		members[id] = struct{}{}
	}
	walk := f
	walk.IDs = nil
	page := []uuid.UUID{}
	// The first chunk holds a page when a quarter of the customers are
	// members; each next one is twice the last.
	chunk := 4 * (limit + 1)
	for after := cursor; len(page) <= limit; chunk = min(2*chunk, maxWalkChunk) {
		sql, args, err := q.listSQL(walk, after, "c.id, c.registered_at", chunk)
		if err != nil {
			return Page{}, err
		}
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return Page{}, readmodel.Fail("customers: list", err)
		}
		keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (readmodel.Key, error) {
			var k readmodel.Key
			err := row.Scan(&k.ID, &k.At)
			return k, err
		})
		if err != nil {
			return Page{}, readmodel.Fail("customers: list", err)
		}
		for _, k := range keys {
			if _, ok := members[k.ID]; ok && len(page) <= limit {
				page = append(page, k.ID)
			}
		}
		if len(keys) < chunk {
			break
		}
		after = Cursor.Encode(keys[len(keys)-1])
	}
	f.IDs = &page
	return q.list(ctx, tx, f, limit, "")
}

// manyIDs is the most ids List passes to its query; maxWalkChunk the most
// keys a walk reads at a time. Past manyIDs members a page walks about
// (limit+1) × customers ÷ members keys, rounded up to a chunk.
const (
	manyIDs      = 2000
	maxWalkChunk = 4000
)

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// list runs one page's query.
func (q *Queries) list(ctx context.Context, db querier, f Filter, limit int, cursor string) (Page, error) {
	sql, args, err := q.listSQL(f, cursor, selectColumns, limit+1)
	if err != nil {
		return Page{}, err
	}
	rows, err := db.Query(ctx, sql, args...)
	var items []Customer
	if err == nil {
		items, err = collect(rows)
	}
	if err != nil {
		return Page{}, readmodel.Fail("customers: list", err)
	}
	return readmodel.PageOf(items, limit, Cursor, func(c Customer) readmodel.Key { return readmodel.Key{At: c.RegisteredAt, ID: c.ID} }), nil
}

// listSQL is the query of the customers matching f after cursor in key
// order, columns of each, at most n.
func (q *Queries) listSQL(f Filter, cursor, columns string, n int) (string, []any, error) {
	var (
		where []string
		args  = q.riskArgs()
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Segment != "" {
		add("c.segment = ?", f.Segment)
	}
	if f.Tier != "" {
		add("c.tier = ?", f.Tier)
	}
	if f.Region != "" {
		add("c.region = ?", f.Region)
	}
	if f.Status != "" {
		add("c.status = ?", f.Status)
	}
	if f.Owner != "" {
		add("c.team_members @> ARRAY[?::text]", f.Owner)
	}
	if f.Q != "" {
		add(searchExpr+" LIKE ?", "%"+likeEscape(strings.ToLower(f.Q))+"%")
	}
	if f.Risk != "" {
		// Only active customers have a score: the status index narrows
		// the scan to them.
		where = append(where, "c.status = 'active'")
		add("r.level = ?", f.Risk)
	}
	if f.NoContactDays > 0 {
		add("coalesce(c.last_contact_at, c.registered_at) <= $1::timestamptz - ? * interval '24 hours'", int32(min(f.NoContactDays, 1_000_000)))
	}
	if f.IDs != nil {
		add("c.id = ANY(?::uuid[])", *f.IDs)
	}
	if f.DueForContact != nil {
		if *f.DueForContact {
			where = append(where, "c.status = 'active'", "k.due_at <= $1::timestamptz")
		} else {
			where = append(where, "(k.due_at IS NULL OR k.due_at > $1::timestamptz)")
		}
	}
	if cursor != "" {
		key, err := Cursor.Decode(cursor)
		if err != nil {
			return "", nil, fmt.Errorf("customers: list: %w", err)
		}
		args = append(args, key.At, key.ID)
		// The first condition gives the planner the range's selectivity;
		// the row comparison is the key.
		where = append(where, fmt.Sprintf("c.registered_at >= $%d AND (c.registered_at, c.id) > ($%d, $%d)", len(args)-1, len(args)-1, len(args)))
	}
	sql := `SELECT ` + columns + q.fromRisk()
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, n)
	sql += fmt.Sprintf(` ORDER BY c.registered_at, c.id LIMIT $%d`, len(args))
	if f.IDs != nil {
		// Planned with the list's ids each time (an unnamed statement): a
		// cached generic plan cannot see how many there are, and looks
		// each one up and sorts them all.
		args = append([]any{pgx.QueryExecModeDescribeExec}, args...)
	}
	return sql, args, nil
}

// ValidCursor reports whether c is a cursor List made.
func ValidCursor(c string) bool { return Cursor.Valid(c) }

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func collect(rows pgx.Rows) ([]Customer, error) {
	defer rows.Close()
	var out []Customer
	for rows.Next() {
		var (
			c                     Customer
			am, support, sales    *string
			registeredAt          *time.Time
			lastCSAT, prevCSAT    *int16
			lastNPS               *int16
			complaints, followUps []byte
			rev, pos              int64
			lastCSATAt, nextDueAt *time.Time
			lastContact           *time.Time
			openComplaints        int32
			score                 *int32
			level                 *string
			factors               []byte
			dueAt                 *time.Time
		)
		if err := rows.Scan(&c.ID, &c.Name, &c.Email, &c.Phone, &c.Company, &c.Tags, &c.Segment, &c.Tier, &c.Region, &c.Industry,
			&am, &support, &sales, &c.Status, &registeredAt, &lastContact, &openComplaints,
			&lastCSAT, &lastCSATAt, &prevCSAT, &lastNPS, &nextDueAt, &complaints, &followUps, &rev, &pos,
			&score, &level, &factors, &dueAt, &c.DueForContact, &c.OverContacted); err != nil {
			return nil, fmt.Errorf("customers: read: %w", err)
		}
		c.Team = map[string]string{}
		for role, m := range map[string]*string{"account_manager": am, "support": support, "sales": sales} {
			if m != nil {
				c.Team[role] = *m
			}
		}
		if registeredAt != nil {
			c.RegisteredAt = *registeredAt
		}
		c.LastContactAt, c.OpenComplaints = lastContact, int(openComplaints)
		c.LastCSAT, c.LastNPS = readmodel.Int(lastCSAT), readmodel.Int(lastNPS)
		c.Revision, c.Position = uint64(rev), uint64(pos)
		c.Risk = RiskInputs{RegisteredAt: c.RegisteredAt, LastContactAt: lastContact, LastCSAT: c.LastCSAT, LastCSATAt: lastCSATAt,
			PrevCSAT: readmodel.Int(prevCSAT), LastNPS: c.LastNPS, NextFollowUpDueAt: nextDueAt}
		if err := json.Unmarshal(complaints, &c.Risk.Complaints); err != nil {
			return nil, fmt.Errorf("customers: complaints of %s: %w", c.ID, err)
		}
		if err := json.Unmarshal(followUps, &c.Risk.FollowUpsPending); err != nil {
			return nil, fmt.Errorf("customers: follow-ups of %s: %w", c.ID, err)
		}
		if score != nil && level != nil {
			c.ChurnRisk = &risk.Risk{Score: int(*score), Level: *level, Factors: []risk.Factor{}}
			if err := json.Unmarshal(factors, &c.ChurnRisk.Factors); err != nil {
				return nil, fmt.Errorf("customers: risk factors of %s: %w", c.ID, err)
			}
		}
		c.ContactDueAt = readmodel.UTC(dueAt)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("customers: read: %w", err)
	}
	return out, nil
}
