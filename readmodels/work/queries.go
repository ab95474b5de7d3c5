package work

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

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/risk"
	"github.com/rapport-crm/rapport/readmodels/sla"
)

// Filter narrows every queue by the customer's classification and team.
// Empty fields do not filter.
type Filter struct {
	Segment string
	Tier    string
	Region  string
	// Owner is a team member of the customer in any role.
	Owner string
}

// Cursor kinds of the queues: a cursor of one queue is refused by the
// others and by every other list.
const (
	ComplaintsCursor readmodel.CursorKind = "wk"
	FollowUpsCursor  readmodel.CursorKind = "wf"
	ContactDueCursor readmodel.CursorKind = "wd"
	AtRiskCursor     readmodel.CursorKind = "wr"
)

// MaxLimit bounds a queue's page size; 0 asks for defaultLimit.
const (
	MaxLimit     = 500
	defaultLimit = 50
)

// ErrBadRequest wraps a request the queries refuse (a limit out of range,
// an unknown enum value); the HTTP layer checks parameters before.
var ErrBadRequest = errors.New("work: bad request")

// Queries reads the queues. It is safe for concurrent use.
type Queries struct {
	pool    *pgxpool.Pool
	now     func() time.Time
	targets sla.Targets
	slaJSON string
	weights []int32
	cadence Cadence
	// riskWeights are the weights weights is the array of.
	riskWeights risk.Weights
	// cache is the at-risk queue's cache of scores (riskcache.go);
	// cacheOff turns its background refresh off.
	cache    *riskCache
	cacheOff bool
}

// Option configures Queries.
type Option func(*Queries)

// WithSLA sets the complaint SLA targets (default sla.Defaults).
func WithSLA(t sla.Targets) Option { return func(q *Queries) { q.targets = t } }

// WithRiskWeights sets the churn-risk weights (default risk.DefaultWeights).
func WithRiskWeights(w risk.Weights) Option {
	return func(q *Queries) { q.riskWeights, q.weights = w, w.Array() }
}

// WithCadence sets the contact cadence (zero fields: the defaults).
func WithCadence(c Cadence) Option { return func(q *Queries) { q.cadence = c } }

// WithClock sets the clock every queue is judged at (default time.Now).
func WithClock(now func() time.Time) Option { return func(q *Queries) { q.now = now } }

// NewQueries returns the queues' queries on pool.
func NewQueries(pool *pgxpool.Pool, opts ...Option) *Queries {
	q := &Queries{pool: pool, now: time.Now, targets: sla.Defaults(), riskWeights: risk.DefaultWeights(), weights: risk.DefaultWeights().Array()}
	for _, o := range opts {
		o(q)
	}
	q.cadence.SetDefaults()
	// Every severity gets a target, the configured one or its default:
	// complaints.Target's rule, so the SQL and Judge agree.
	full := sla.Targets{}
	for _, s := range []domain.Severity{domain.SeverityCritical, domain.SeverityHigh, domain.SeverityMedium, domain.SeverityLow} {
		full[s] = complaints.Target(q.targets, string(s))
	}
	q.targets = full
	raw, _ := json.Marshal(full.Seconds()) // a map of arrays of integers
	q.slaJSON = string(raw)
	q.cache = &riskCache{key: riskKey(q.weights, q.slaJSON), usable: q.riskWeights.Bounded(), refresh: refreshSQL()}
	return q
}

// Reads names the projectors whose tables the queues read, so that
// min_position waits for exactly those.
func (q *Queries) Reads() []string {
	reads := []string{customers.Name, complaints.Name, contacts.Name}
	if q.riskWeights.UsesPurchases() {
		reads = append(reads, risk.PurchasesProjector) // the at-risk queue's purchase factors
	}
	return reads
}

// Cadence returns the contact cadence the queries judge by.
func (q *Queries) Cadence() Cadence { return q.cadence }

// CustomerRef is what a queue's row says about its customer.
type CustomerRef struct {
	ID      uuid.UUID
	Name    *string
	Segment string
	Tier    string
	Region  string
}

// builder collects a query's conditions and arguments.
type builder struct {
	where []string
	args  []any
}

// add appends a condition whose "?" is the next argument.
func (b *builder) add(cond string, v any) {
	b.args = append(b.args, v)
	b.where = append(b.where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(b.args))))
}

// arg appends an argument and returns its placeholder.
func (b *builder) arg(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

func (b *builder) customer(f Filter) {
	if f.Segment != "" {
		b.add("c.segment = ?", f.Segment)
	}
	if f.Tier != "" {
		b.add("c.tier = ?", f.Tier)
	}
	if f.Region != "" {
		b.add("c.region = ?", f.Region)
	}
	if f.Owner != "" {
		b.add("c.team_members @> ARRAY[?::text]", f.Owner)
	}
}

func (b *builder) sql(head, order string, limit int) string {
	s := head
	if len(b.where) > 0 {
		s += " WHERE " + strings.Join(b.where, " AND ")
	}
	return s + " ORDER BY " + order + " LIMIT " + b.arg(limit+1)
}

func checkLimit(limit int) (int, error) {
	if limit == 0 {
		return defaultLimit, nil
	}
	if limit < 1 || limit > MaxLimit {
		return 0, fmt.Errorf("%w: limit must be within 1..%d", ErrBadRequest, MaxLimit)
	}
	return limit, nil
}

func collect[T any](rows pgx.Rows, err error, scan func(pgx.CollectableRow) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scan)
}

// serialSQL keeps the statement after it in its batch (its implicit
// transaction) on one process. The complaint queue's branches read a
// page each, but the planner cannot know that its last branch (the rows
// the fold never writes) is empty and planned parallel workers for it:
// on a busy machine their start cost 46 ms of a 78 ms query (EXPLAIN
// ANALYZE at 100,000 customers, load average 16). is_local: the setting
// ends with the batch.
const serialSQL = `SELECT set_config('max_parallel_workers_per_gather', '0', true)`

// noJITSQL turns JIT compilation off for the statement after it in its
// batch. The at-risk queue's plans are cheap to run but their estimated
// cost (a score function per row of an estimate) passes jit_above_cost:
// at 100,000 customers, compiling took 65–930 ms of a query that runs in
// a few (EXPLAIN ANALYZE).
const noJITSQL = `SELECT set_config('jit', 'off', true)`

// serially runs sql with parallel workers off and collects its rows.
func serially[T any](ctx context.Context, pool *pgxpool.Pool, sql string, args []any, scan func(pgx.CollectableRow) (T, error)) ([]T, error) {
	return afterSetting(ctx, pool, serialSQL, sql, args, scan)
}

// afterSetting runs setting (a set_config local to the batch), then sql,
// and collects its rows.
func afterSetting[T any](ctx context.Context, pool *pgxpool.Pool, setting, sql string, args []any, scan func(pgx.CollectableRow) (T, error)) ([]T, error) {
	b := &pgx.Batch{}
	b.Queue(setting)
	b.Queue(sql, args...)
	res := pool.SendBatch(ctx, b)
	defer res.Close()
	if _, err := res.Exec(); err != nil {
		return nil, err
	}
	rows, err := res.Query()
	items, err := collect(rows, err, scan)
	if err != nil {
		return nil, err
	}
	return items, res.Close()
}
