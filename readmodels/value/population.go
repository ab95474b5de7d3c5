package value

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// The quintile scores rank a customer among the whole population, whose
// frequency and monetary value move with the 365-day window and whose
// recency moves with the clock: readmodels.customer_values (the
// definition) aggregates every purchase of the window and ranks every
// customer on each call, seconds at 100,000 customers. The API answers
// the same figures from a population snapshot instead:
//
//   - A snapshot holds, judged at an instant T0 and read in one
//     transaction with the position P0 of the last event it reflects,
//     every member of the population then (active, with a counted
//     purchase in the window) with its last counted purchase, frequency,
//     monetary value and currency, and the three distributions sorted.
//   - A query at now reads live the customers whose figures may differ
//     between T0 and now: those with an event after P0 (a purchase, a
//     refund, a churn, a reactivation), and those with a purchase that
//     the window's move from T0 to now lets in or out (occurred between
//     T0 − 365 days and now − 365 days, or after T0). Every other
//     customer has at now the frequency, monetary value, last purchase
//     and status it had at T0, so it is where the snapshot put it; only
//     its recency moves, and recency is a function of the last purchase
//     and now, which the snapshot keeps sorted.
//   - The population at now is the snapshot's less the changed
//     customers' old figures plus their live ones; a customer's scores
//     are its counts of worse and equal customers in it, found by binary
//     search: exact, whatever the age of the snapshot.
//
// The snapshot's age only costs time (more changed customers to read), so
// it is rebuilt in the background when the changes grow past
// RefreshChanges or the instant judged moves more than RefreshAge from
// T0, and synchronously only when there is none or the projector's
// active generation changed (a rebuild).

// dayMicros is a day of 24 h in microseconds, PostgreSQL's resolution.
const dayMicros = int64(24 * time.Hour / time.Microsecond)

// micros is t in microseconds since the Unix epoch, as PostgreSQL holds
// it (pgx truncates to the microsecond).
func micros(t time.Time) int64 { return t.Truncate(time.Microsecond).UnixMicro() }

// score is readmodels.value_score: the quintile of the mid-rank
// percentile, ⌈5 × (2·worse + ties) ÷ (2·n)⌉.
func score(worse, ties, n int) int { return (5*(2*worse+ties) + 2*n - 1) / (2 * n) }

// facts are a customer's figures judged at one instant.
type facts struct {
	id       uuid.UUID
	currency string
	decimals int16
	active   bool
	// lastAt is the last counted purchase at or before the instant, in
	// microseconds; hasLast says there is one.
	lastAt    int64
	hasLast   bool
	frequency int64
	monetary  int64
}

// scored says the customer is in the population.
func (f facts) scored() bool { return f.active && f.frequency > 0 }

// member is a customer of a snapshot's population.
type member struct {
	lastAt, frequency, monetary int64
	currency                    string
}

// snapshot is the population judged at asOf, reflecting every event up to
// position of the generation in schema.
type snapshot struct {
	schema   string
	asOf     time.Time
	position int64
	ids      []uuid.UUID
	members  []member
	index    map[uuid.UUID]int
	// lastAt, frequency and monetary (by currency) are the members'
	// figures, sorted.
	lastAt, frequency []int64
	monetary          map[string][]int64
}

// dist is a sorted multiset, base less removed plus added (both sorted),
// counted without building it.
type dist struct{ base, removed, added []int64 }

// lowerBound is how many values of s are below x.
func lowerBound(s []int64, x int64) int {
	i, _ := slices.BinarySearch(s, x)
	return i
}

// upperBound is how many values of s are at most x.
func upperBound(s []int64, x int64) int {
	if x == math.MaxInt64 {
		return len(s)
	}
	return lowerBound(s, x+1)
}

func (d dist) n() int { return len(d.base) - len(d.removed) + len(d.added) }

func (d dist) below(x int64) int {
	return lowerBound(d.base, x) - lowerBound(d.removed, x) + lowerBound(d.added, x)
}

func (d dist) atMost(x int64) int {
	return upperBound(d.base, x) - upperBound(d.removed, x) + upperBound(d.added, x)
}

// materialize returns the multiset as one sorted slice.
func (d dist) materialize() []int64 {
	if len(d.removed) == 0 && len(d.added) == 0 {
		return d.base
	}
	out := make([]int64, 0, d.n())
	i, j, k := 0, 0, 0
	for i < len(d.base) || k < len(d.added) {
		if i < len(d.base) && j < len(d.removed) && d.base[i] == d.removed[j] {
			i, j = i+1, j+1
			continue
		}
		if k < len(d.added) && (i == len(d.base) || d.added[k] <= d.base[i]) {
			out = append(out, d.added[k])
			k++
			continue
		}
		out = append(out, d.base[i])
		i++
	}
	return out
}

// population is the population at now: a snapshot and the live figures of
// the customers that may have changed since.
type population struct {
	snap    *snapshot
	now     int64
	changed map[uuid.UUID]facts
	lastAt  dist
	freq    dist
	money   map[string]*dist
}

func newPopulation(snap *snapshot, now time.Time, changed []facts) *population {
	p := &population{snap: snap, now: micros(now), changed: make(map[uuid.UUID]facts, len(changed)),
		lastAt: dist{base: snap.lastAt}, freq: dist{base: snap.frequency}, money: map[string]*dist{}}
	money := func(currency string) *dist {
		d, ok := p.money[currency]
		if !ok {
			d = &dist{base: snap.monetary[currency]}
			p.money[currency] = d
		}
		return d
	}
	for _, f := range changed {
		p.changed[f.id] = f
		if i, ok := snap.index[f.id]; ok {
			old := snap.members[i]
			p.lastAt.removed = append(p.lastAt.removed, old.lastAt)
			p.freq.removed = append(p.freq.removed, old.frequency)
			m := money(old.currency)
			m.removed = append(m.removed, old.monetary)
		}
		if f.scored() {
			p.lastAt.added = append(p.lastAt.added, f.lastAt)
			p.freq.added = append(p.freq.added, f.frequency)
			m := money(f.currency)
			m.added = append(m.added, f.monetary)
		}
	}
	for _, d := range append([]*dist{&p.lastAt, &p.freq}, mapValues(p.money)...) {
		slices.Sort(d.removed)
		slices.Sort(d.added)
	}
	return p
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// scores are a member's r, f and m at now.
func (p *population) scores(lastAt, frequency, monetary int64, currency string) (r, f, m int) {
	return p.scoresIn(p.lastAt.atMost, p.freq.below, p.freq.atMost, p.lastAt.n(), lastAt, frequency, monetary, p.money[currency])
}

func (p *population) scoresIn(lastAtMost, freqBelow, freqAtMost func(int64) int, n int, lastAt, frequency, monetary int64, money *dist) (r, f, m int) {
	// recency_days > d ⟺ lastAt ≤ now − (d+1) days; = d ⟺ between.
	d := (p.now - lastAt) / dayMicros
	worse := lastAtMost(p.now - (d+1)*dayMicros)
	r = score(worse, lastAtMost(p.now-d*dayMicros)-worse, n)
	worse = freqBelow(frequency)
	f = score(worse, freqAtMost(frequency)-worse, n)
	if money == nil { // not reached: a member's currency has its distribution
		money = &dist{}
	}
	worse = money.below(monetary)
	m = score(worse, money.atMost(monetary)-worse, money.n())
	return r, f, m
}

// value completes own, a customer's live figures, with its scores.
func (p *population) value(own facts) CustomerValue {
	v := CustomerValue{Currency: own.currency, Decimals: int(own.decimals), Frequency: int(own.frequency), MonetaryMinor: own.monetary}
	if own.currency == "" {
		v.Decimals = 2
	}
	if own.hasLast {
		days := int((p.now - own.lastAt) / dayMicros)
		v.RecencyDays = &days
	}
	if !own.scored() {
		return v
	}
	r, f, m := p.scores(own.lastAt, own.frequency, own.monetary, own.currency)
	segment := SegmentOf(r, f, m)
	v.R, v.F, v.M, v.Segment = &r, &f, &m, &segment
	return v
}

// thresholds scores the values of a sorted population: since a score
// grows with the value (2·worse + ties counts the values below and those
// at most it), at[k] is the least value scoring k+2 or more, found in one
// walk.
type thresholds struct{ at [4]int64 }

func newThresholds(sorted []int64) thresholds {
	t := thresholds{at: [4]int64{math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64}}
	n := len(sorted)
	for i := 0; i < n; {
		j := upperBound(sorted, sorted[i])
		for s := score(i, j-i, n); s >= 2; s-- {
			if t.at[s-2] == math.MaxInt64 {
				t.at[s-2] = sorted[i]
			}
		}
		i = j
	}
	return t
}

func (t thresholds) score(v int64) int {
	s := 1
	for _, at := range t.at {
		if v >= at {
			s++
		}
	}
	return s
}

// members lists the population's customers in segment: the population
// materialized once, its scores by threshold, each customer compared.
func (p *population) members(segment string, limit int) []uuid.UUID {
	lastAt := dist{base: p.lastAt.materialize()}
	n := lastAt.n()
	freq := newThresholds(p.freq.materialize())
	money := map[string]thresholds{}
	for c, s := range p.snap.monetary {
		money[c] = newThresholds(s)
	}
	for c, d := range p.money {
		money[c] = newThresholds(d.materialize())
	}
	// r by whole days of recency (at most 365 in the population).
	rByDays := map[int64]int{}
	var out []uuid.UUID
	visit := func(id uuid.UUID, at, frequency, monetary int64, currency string) {
		d := (p.now - at) / dayMicros
		r, ok := rByDays[d]
		if !ok {
			worse := lastAt.atMost(p.now - (d+1)*dayMicros)
			r = score(worse, lastAt.atMost(p.now-d*dayMicros)-worse, n)
			rByDays[d] = r
		}
		if len(out) < limit && SegmentOf(r, freq.score(frequency), money[currency].score(monetary)) == segment {
			out = append(out, id)
		}
	}
	for i, id := range p.snap.ids {
		if _, ok := p.changed[id]; ok {
			continue
		}
		mb := &p.snap.members[i]
		visit(id, mb.lastAt, mb.frequency, mb.monetary, mb.currency)
	}
	for _, f := range p.changed {
		if f.scored() {
			visit(f.id, f.lastAt, f.frequency, f.monetary, f.currency)
		}
	}
	return out
}

// CacheConfig tunes the population snapshot the queries score with (the
// figures are exact whatever it is; it only trades a rebuild for the live
// reads of the customers changed since).
type CacheConfig struct {
	// RefreshChanges: when more customers than this may have changed since
	// the snapshot, it is rebuilt in the background (default 2,000).
	RefreshChanges int
	// RefreshAge: when the instant judged is further than this from the
	// snapshot's, it is rebuilt in the background (default 1 h).
	RefreshAge time.Duration
	// Background false rebuilds only when there is no usable snapshot
	// (tests that judge many instants against one snapshot).
	Background bool
}

func (c *CacheConfig) setDefaults() {
	if c.RefreshChanges <= 0 {
		c.RefreshChanges = 2000
	}
	if c.RefreshAge <= 0 {
		c.RefreshAge = time.Hour
	}
}

// DefaultCacheConfig is the service's: background rebuilds on.
func DefaultCacheConfig() CacheConfig {
	c := CacheConfig{Background: true}
	c.setDefaults()
	return c
}

// popCache holds the current snapshot, shared by the queries made from
// one NewQueries (At copies share it).
type popCache struct {
	cfg  CacheConfig
	pool *pgxpool.Pool
	snap atomic.Pointer[snapshot]
	// build serialises rebuilds; a background rebuild only starts when
	// none runs.
	build sync.Mutex
	// failedAt is when a background rebuild last failed (unix nanos): none
	// is tried again within a minute.
	failedAt atomic.Int64
	// builds counts the snapshots built (tests).
	builds atomic.Int64
}

func newPopCache(pool *pgxpool.Pool, cfg CacheConfig) *popCache {
	cfg.setDefaults()
	return &popCache{cfg: cfg, pool: pool}
}

// activeSchemaSQL names the value projector's active generation.
const activeSchemaSQL = `SELECT schema_name FROM projections.generations WHERE projector = '` + Name + `' AND state = 'active'`

// rebuild makes a snapshot judged at asOf unless one of the active
// generation newer than stale was made meanwhile.
func (c *popCache) rebuild(ctx context.Context, asOf time.Time, stale *snapshot) (*snapshot, error) {
	c.build.Lock()
	defer c.build.Unlock()
	if cur := c.snap.Load(); cur != nil && cur != stale {
		return cur, nil
	}
	s, err := c.load(ctx, asOf)
	if err != nil {
		return nil, err
	}
	c.snap.Store(s)
	c.builds.Add(1)
	return s, nil
}

// refreshInBackground rebuilds at asOf without holding the query up.
func (c *popCache) refreshInBackground(asOf time.Time) {
	if !c.cfg.Background || time.Since(time.Unix(0, c.failedAt.Load())) < time.Minute || !c.build.TryLock() {
		return
	}
	go func() {
		defer c.build.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		s, err := c.load(ctx, asOf)
		if err != nil {
			c.failedAt.Store(time.Now().UnixNano())
			return
		}
		c.snap.Store(s)
		c.builds.Add(1)
	}()
}

// load reads the population at asOf in one repeatable-read transaction,
// from the tables of the active generation (not the views, which a
// switch-over repoints between two statements).
func (c *popCache) load(ctx context.Context, asOf time.Time) (*snapshot, error) {
	tx, err := c.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, readmodel.Fail("value: population", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	s := &snapshot{asOf: asOf, index: map[uuid.UUID]int{}, monetary: map[string][]int64{}}
	if err := tx.QueryRow(ctx, activeSchemaSQL).Scan(&s.schema); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("value: population: %w", readmodel.ErrNotReady)
		}
		return nil, readmodel.Fail("value: population", err)
	}
	vc, vp := tables(s.schema)
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(last_position), 0) FROM `+vc).Scan(&s.position); err != nil {
		return nil, readmodel.Fail("value: population", err)
	}
	rows, err := tx.Query(ctx, `SELECT v.customer_id, v.currency, w.last_at, w.frequency, w.monetary
		FROM `+vc+` v JOIN (
			SELECT customer_id, max(occurred_at) FILTER (WHERE amount_minor > refunded_minor) AS last_at,
				count(*) FILTER (WHERE amount_minor > refunded_minor) AS frequency, sum(amount_minor - refunded_minor)::bigint AS monetary
			FROM `+vp+` WHERE occurred_at > $1::timestamptz - interval '365 days' AND occurred_at <= $1::timestamptz
			GROUP BY customer_id) w USING (customer_id)
		WHERE NOT v.churned AND w.frequency > 0`, asOf)
	if err != nil {
		return nil, readmodel.Fail("value: population", err)
	}
	for rows.Next() {
		var (
			id  uuid.UUID
			m   member
			at  time.Time
			cur *string
		)
		if err := rows.Scan(&id, &cur, &at, &m.frequency, &m.monetary); err != nil {
			rows.Close()
			return nil, readmodel.Fail("value: population", err)
		}
		m.lastAt, m.currency = micros(at), readmodel.Deref(cur)
		s.index[id] = len(s.ids)
		s.ids, s.members = append(s.ids, id), append(s.members, m)
		s.lastAt, s.frequency = append(s.lastAt, m.lastAt), append(s.frequency, m.frequency)
		s.monetary[m.currency] = append(s.monetary[m.currency], m.monetary)
	}
	if err := rows.Err(); err != nil {
		return nil, readmodel.Fail("value: population", err)
	}
	slices.Sort(s.lastAt)
	slices.Sort(s.frequency)
	for _, m := range s.monetary {
		slices.Sort(m)
	}
	return s, nil
}

func tables(schema string) (valueCustomers, purchases string) {
	return pgx.Identifier{schema, "value_customers"}.Sanitize(), pgx.Identifier{schema, "purchases"}.Sanitize()
}

// changedSQL reads, from the snapshot's generation ({vc}, {vp}), the live
// figures at $1 of the customers that may differ from the snapshot's
// (position $2, judged at $3; $4 is the later of $1 and $3) and of the
// customers $5, with the name of the active generation (one row with
// NULLs when nothing changed).
const changedSQL = `
	WITH d AS (
		SELECT customer_id FROM {vc} WHERE last_position > $2
		UNION SELECT customer_id FROM {vp}
			WHERE occurred_at > least($1::timestamptz, $3::timestamptz) - interval '365 days' AND occurred_at <= $4::timestamptz - interval '365 days'
		UNION SELECT customer_id FROM {vp} WHERE occurred_at > least($1::timestamptz, $3::timestamptz)
		UNION SELECT unnest($5::uuid[]))
	SELECT g.schema_name, x.customer_id, x.currency, x.decimals, x.active, x.last_at, x.frequency, x.monetary
	FROM (` + activeSchemaSQL + `) g LEFT JOIN LATERAL (
		SELECT v.customer_id, v.currency, v.decimals, NOT v.churned AS active,
			(SELECT max(p.occurred_at) FROM {vp} p
				WHERE p.customer_id = v.customer_id AND p.amount_minor > p.refunded_minor AND p.occurred_at <= $1::timestamptz) AS last_at,
			w.frequency, w.monetary
		FROM d JOIN {vc} v USING (customer_id) CROSS JOIN LATERAL (
			SELECT count(*) FILTER (WHERE p.amount_minor > p.refunded_minor) AS frequency,
				coalesce(sum(p.amount_minor - p.refunded_minor), 0)::bigint AS monetary
			FROM {vp} p
			WHERE p.customer_id = v.customer_id AND p.occurred_at > $1::timestamptz - interval '365 days' AND p.occurred_at <= $1::timestamptz) w
	) x ON true`

// errGenerationChanged says the snapshot is of a generation that no
// longer serves.
var errGenerationChanged = errors.New("value: the active generation changed")

// changed reads the live figures at now of the customers changed since
// snap, and of ids.
func (c *popCache) changed(ctx context.Context, snap *snapshot, now time.Time, ids []uuid.UUID) ([]facts, error) {
	vc, vp := tables(snap.schema)
	sql := strings.NewReplacer("{vc}", vc, "{vp}", vp).Replace(changedSQL)
	later := snap.asOf
	if now.After(later) {
		later = now
	}
	if ids == nil {
		ids = []uuid.UUID{}
	}
	rows, err := c.pool.Query(ctx, sql, now, snap.position, snap.asOf, later, ids)
	if err != nil {
		return nil, changedErr(err)
	}
	defer rows.Close()
	var out []facts
	seen := false
	for rows.Next() {
		var (
			schema   string
			id       *uuid.UUID
			currency *string
			decimals *int16
			active   *bool
			lastAt   *time.Time
			freq     *int64
			monetary *int64
		)
		if err := rows.Scan(&schema, &id, &currency, &decimals, &active, &lastAt, &freq, &monetary); err != nil {
			return nil, changedErr(err)
		}
		seen = true
		if schema != snap.schema {
			return nil, errGenerationChanged
		}
		if id == nil {
			continue
		}
		f := facts{id: *id, currency: readmodel.Deref(currency), active: *active, frequency: *freq, monetary: *monetary}
		if decimals != nil {
			f.decimals = *decimals
		}
		if lastAt != nil {
			f.lastAt, f.hasLast = micros(*lastAt), true
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, changedErr(err)
	}
	if !seen {
		return nil, fmt.Errorf("value: population: %w", readmodel.ErrNotReady)
	}
	return out, nil
}

// changedErr: a retired generation's tables are dropped, which says the
// generation changed.
func changedErr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return errGenerationChanged
	}
	return readmodel.Fail("value: population", err)
}

// at returns the population at now with the live figures of ids among
// the changed customers: the current snapshot, or a new one when there is
// none or its generation no longer serves.
func (c *popCache) at(ctx context.Context, now time.Time, ids []uuid.UUID) (*population, error) {
	snap := c.snap.Load()
	for attempt := 0; ; attempt++ {
		if snap == nil {
			var err error
			if snap, err = c.rebuild(ctx, now, nil); err != nil {
				return nil, err
			}
		}
		changed, err := c.changed(ctx, snap, now, ids)
		if errors.Is(err, errGenerationChanged) && attempt == 0 {
			if snap, err = c.rebuild(ctx, now, snap); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(changed) > c.cfg.RefreshChanges || now.Sub(snap.asOf).Abs() > c.cfg.RefreshAge {
			c.refreshInBackground(now)
		}
		return newPopulation(snap, now, changed), nil
	}
}
