package work

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/risk"
)

// The at-risk queue's cache of scores.
//
// Between two events of a customer, its churn-risk score is a step
// function of the time whose steps fall at instants known from its facts
// (readmodels.customer_risk_valid_until). So the directory's rows keep,
// beside the facts, a score computed at risk_scored_at and the instant
// risk_valid_until before which it holds, under risk_key, a hash of the
// weights and SLA targets it was computed with. A row's cached score is
// *fresh* at now when risk_key is the queries' key and risk_scored_at <=
// now < risk_valid_until: it is then exactly readmodels.customer_risk at
// now. Every other active row is *stale* and the query scores it at now,
// as the definition does. The page is the first rows of both, merged by
// score; its rows are scored again at now for their factors. So the
// answer is the full scoring's at every instant, however old the cache;
// the cache only decides how many rows are scored per request.
//
// The projector voids a row's cached score whenever it writes the row
// (risk_key = NULL; package customers). Refresh scores the stale rows
// and stores them; the at-risk queue starts one in the background after
// its requests (at most one at a time, at most one a second; with no
// stale row it is a few index probes). Between events, a customer's score changes a few times in 90
// days, so after a refresh the stale rows are those written or expired
// since: a handful, not the population.
//
// The cache is not used — every active customer is scored, as before —
// when the weights give points to a factor the validity function does not
// know (risk.Weights.Bounded), when more than maxStale rows are stale (a
// rebuilt directory or other weights, until the refresh has caught up),
// or when the directory's generation predates the cache's columns (until
// its rebuild).

// refreshBatch is how many rows one refresh statement scores: its row
// locks hold up the projector's writes of those customers until it
// commits.
const refreshBatch = 1000

// riskCache is the state of the cache shared by the queries of one
// NewQueries.
type riskCache struct {
	// key identifies the weights and SLA targets (riskKey).
	key int64
	// usable: the weights are bounded by customer_risk_valid_until.
	usable bool
	// background: a request that met stale rows starts a refresh.
	background bool
	running    sync.Mutex
	// lastStart is when a background refresh last started (unix nanos).
	lastStart atomic.Int64
	// refresh is the statement that scores stale rows (refreshSQL; tests
	// break it on purpose).
	refresh string
}

// riskKey hashes what a score depends on besides the facts and the time:
// the weights and the SLA targets (as the SQL receives them). 64 bits of
// SHA-256: two configurations share a key with probability 2⁻⁶⁴.
func riskKey(weights []int32, slaJSON string) int64 {
	h := sha256.New()
	for _, w := range weights {
		h.Write(strconv.AppendInt(nil, int64(w), 10))
		h.Write([]byte{','})
	}
	h.Write([]byte(";"))
	h.Write([]byte(slaJSON))
	return int64(binary.BigEndian.Uint64(h.Sum(nil)))
}

// WithRiskRefresh turns the background refresh of the at-risk queue's
// cache on (the default) or off; Refresh still works when it is off.
func WithRiskRefresh(on bool) Option { return func(q *Queries) { q.cacheOff = !on } }

// staleIDsSQL selects the active rows whose cached score does not hold
// at now ($now, key $key): the exact complement of freshSQL, as one
// probe of an index per way of being stale, so that the plan does not
// depend on the planner's estimate of an OR of conditions. (A row with a
// key has the other three columns: the table's CHECK.)
func staleIDsSQL(key, now string) string { return staleUnion(key, now, "UNION") }

// staleUnion is staleIDsSQL's union, with UNION or UNION ALL.
func staleUnion(key, now, union string) string {
	conds := []string{`risk_key IS NULL`, `risk_key < ` + key, `risk_key > ` + key,
		`risk_valid_until <= ` + now, `risk_scored_at > ` + now}
	parts := make([]string, len(conds))
	for i, c := range conds {
		parts[i] = `SELECT id FROM readmodels.customers WHERE status = 'active' AND ` + c
	}
	return strings.Join(parts, "\n\t\t"+union+" ")
}

// maxStale is how many stale rows the cached query scores at most: with
// more (a rebuilt directory, other weights, before the refresh has
// caught up), scoring every active customer in one scan is cheaper than
// reading each stale row by primary key, and the plan of the cached query
// was made for a few.
const maxStale = 1000

// manyStale reports whether more than maxStale active rows are stale at
// now (counting a row once per way it is stale: an upper bound).
func (q *Queries) manyStale(ctx context.Context) (bool, error) {
	var n int
	err := q.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM (`+staleUnion("$1::bigint", "$2::timestamptz", "UNION ALL")+`) x LIMIT $3) y`,
		q.cache.key, q.now(), maxStale+1).Scan(&n)
	return n > maxStale, err
}

// freshSQL is the condition of a row whose cached score holds at now.
func freshSQL(c, key, now string) string {
	return c + `.risk_key = ` + key + ` AND ` + c + `.risk_valid_until > ` + now + ` AND ` + c + `.risk_scored_at <= ` + now
}

// riskArgsSQL are the arguments of readmodels.customer_risk for the row c
// at $1 with the weights $2 and the SLA targets $3.
func riskArgsSQL(c string) string {
	return c + `.status, ` + c + `.registered_at, ` + c + `.last_contact_at, ` + c + `.open_complaints, ` +
		c + `.complaints_total, ` + c + `.complaints, ` + c + `.last_csat, ` + c + `.prev_csat, ` + c + `.last_nps, ` + c + `.next_follow_up_due_at, ` +
		`$1::timestamptz, $2::integer[], $3::jsonb`
}

// refreshSQL scores at $1 up to $5 stale active rows, under key $4,
// skipping the rows a projector is writing. The stale rows are read one
// by one by primary key (LATERAL): a few rows, which an estimate of the
// rows without a key (the churned and erased customers have none) would
// otherwise make a scan of the table. Each row is scored from its
// own columns in the statement that stores the score, so a concurrent
// write of the row is either before (and scored) or after (and voids it).
func refreshSQL() string {
	return `UPDATE readmodels.customers c
	SET (risk_key, risk_scored_at, risk_score, risk_valid_until) = (
		SELECT $4::bigint, $1::timestamptz, r.score,
			readmodels.customer_risk_valid_until(c.status, c.registered_at, c.last_contact_at, c.open_complaints,
				c.complaints_total, c.complaints, c.next_follow_up_due_at, $1::timestamptz, $3::jsonb)
		FROM readmodels.customer_risk(` + riskArgsSQL("c") + `) r)
	FROM (
		SELECT l.id FROM (` + staleIDsSQL("$4::bigint", "$1::timestamptz") + `) x
		CROSS JOIN LATERAL (SELECT s.id FROM readmodels.customers s WHERE s.id = x.id AND s.status = 'active' FOR UPDATE SKIP LOCKED) l
		LIMIT $5) pick
	WHERE c.id = pick.id`
}

// analyzeAfter is how many rows a refresh scores before it analyzes the
// table: the plans of the queue depend on how many rows are stale, and a
// rebuilt generation was analyzed while none had a score.
const analyzeAfter = 10_000

// Refresh scores, at the queries' clock, the active customers whose
// cached churn-risk score does not hold now, until none is left (or only
// rows a projector holds), and returns how many it scored. It does
// nothing when the cache is not used (risk.Weights.Bounded).
func (q *Queries) Refresh(ctx context.Context) (int, error) {
	if !q.cache.usable {
		return 0, nil
	}
	q.cache.running.Lock()
	defer q.cache.running.Unlock()
	return q.refresh(ctx)
}

func (q *Queries) refresh(ctx context.Context) (int, error) {
	total := 0
	for {
		tag, err := q.pool.Exec(ctx, q.cache.refresh, q.now(), q.weights, q.slaJSON, q.cache.key, refreshBatch)
		if err != nil {
			return total, readmodel.Fail("work: refresh the churn-risk cache", err)
		}
		total += int(tag.RowsAffected())
		if tag.RowsAffected() < refreshBatch {
			break
		}
	}
	if total >= analyzeAfter {
		if err := q.analyzeDirectory(ctx); err != nil {
			return total, err
		}
	}
	return total, nil
}

// analyzeDirectory analyzes the table of the directory's active
// generation (ANALYZE does not take a view).
func (q *Queries) analyzeDirectory(ctx context.Context) error {
	var schema string
	if err := q.pool.QueryRow(ctx, `SELECT schema_name FROM projections.generations WHERE projector = $1 AND state = 'active'`,
		customers.Name).Scan(&schema); err != nil {
		return fmt.Errorf("work: the directory's generation: %w", err)
	}
	if _, err := q.pool.Exec(ctx, `ANALYZE `+pgx.Identifier{schema, "customers"}.Sanitize()); err != nil {
		return fmt.Errorf("work: analyze the directory: %w", err)
	}
	return nil
}

// refreshInBackground starts a refresh unless one runs or one started in
// the last second.
func (q *Queries) refreshInBackground() {
	c := q.cache
	if q.cacheOff || !c.usable || time.Since(time.Unix(0, c.lastStart.Load())) < time.Second || !c.running.TryLock() {
		return
	}
	c.lastStart.Store(time.Now().UnixNano())
	go func() {
		defer c.running.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// A failure leaves the rows stale: the queries score them.
		_, _ = q.refresh(ctx)
	}()
}

// undefinedColumn is PostgreSQL's SQLSTATE for a column that does not
// exist: a directory generation made before the cache's columns.
const undefinedColumn = "42703"

func isUndefinedColumn(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == undefinedColumn
}

// atRiskCachedSQL is the at-risk queue's query over the cache: the first
// limit+1 fresh rows in the order of their cached score (index
// customers_risk_idx, the key then −score then id), and the stale rows
// (customers_risk_idx's other keys, customers_risk_until_idx,
// customers_risk_scored_idx) scored at now, merged; then the page's rows
// scored again for their factors. The stale rows are read by primary key
// one by one (LATERAL … OFFSET 0), as in refreshSQL.
func (q *Queries) atRiskCachedSQL(f AtRiskFilter, after *readmodel.Key, limit int) (string, []any, error) {
	b := &builder{}
	now, _, _ := b.arg(q.now()), b.arg(q.weights), b.arg(q.slaJSON)
	key := b.arg(q.cache.key)
	var fresh, stale []string
	switch f.Level {
	case "":
		fresh = append(fresh, `-c.risk_score <= -`+strconv.Itoa(risk.MediumFrom))
		stale = append(stale, `r.score >= `+strconv.Itoa(risk.MediumFrom))
	case risk.LevelHigh:
		fresh = append(fresh, `-c.risk_score <= -`+strconv.Itoa(risk.HighFrom))
		stale = append(stale, `r.score >= `+strconv.Itoa(risk.HighFrom))
	case risk.LevelMedium:
		fresh = append(fresh, `-c.risk_score <= -`+strconv.Itoa(risk.MediumFrom), `-c.risk_score > -`+strconv.Itoa(risk.HighFrom))
		stale = append(stale, `r.score >= `+strconv.Itoa(risk.MediumFrom), `r.score < `+strconv.Itoa(risk.HighFrom))
	default:
		return "", nil, fmt.Errorf("%w: level %q", ErrBadRequest, f.Level)
	}
	b.customer(f.Filter)
	common := ""
	for _, w := range b.where {
		common += " AND " + w
	}
	if after != nil {
		score, id := b.arg(int32(after.At.Unix())), b.arg(after.ID)
		fresh = append(fresh, `(-c.risk_score, c.id) > (-`+score+`::integer, `+id+`::uuid)`)
		stale = append(stale, `(r.score < `+score+` OR (r.score = `+score+` AND c.id > `+id+`))`)
	}
	limitArg := b.arg(limit + 1)
	and := func(conds []string) string {
		s := ""
		for _, c := range conds {
			s += " AND " + c
		}
		return s
	}
	return `SELECT c.id, c.name, c.segment, c.tier, c.region, r.score, r.level, r.factors
		FROM (
			SELECT u.id, u.score FROM (
				(SELECT c.id, c.risk_score AS score
				FROM readmodels.customers c
				WHERE c.status = 'active' AND ` + freshSQL("c", key, now) + and(fresh) + common + `
				ORDER BY -c.risk_score, c.id LIMIT ` + limitArg + `)
				UNION ALL
				(SELECT c.id, r.score
				FROM (` + staleIDsSQL(key+"::bigint", now+"::timestamptz") + `) x
				CROSS JOIN LATERAL (SELECT * FROM readmodels.customers c WHERE c.id = x.id AND c.status = 'active'` + common + ` OFFSET 0) c
				CROSS JOIN LATERAL readmodels.customer_risk(` + riskArgsSQL("c") + `) r
				WHERE true` + and(stale) + `)
			) u ORDER BY u.score DESC, u.id LIMIT ` + limitArg + `
		) p
		JOIN readmodels.customers c ON c.id = p.id
		CROSS JOIN LATERAL readmodels.customer_risk(` + riskArgsSQL("c") + `) r
		ORDER BY p.score DESC, p.id`, b.args, nil
}
