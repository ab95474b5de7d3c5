package value

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
)

// The value figures (GET /v1/analytics/value) are answered from day sums
// kept by this projector, grouped by each customer's *current* keys:
//
//   - value_keys: each customer's segment, tier, region and account
//     manager ("" for none), folded from the same events as the directory;
//     value_groups: how many customers each key has (the groups that
//     answer).
//   - purchases carry their customer's keys (a copy of value_keys, so that
//     the edges read one index) and the customer's chain of counted purchases (those not
//     refunded in full), ordered by (occurred_at, purchase_id): prev_at,
//     prev2_at, next_at, next2_at, the counted purchases one and two
//     before and after (NULL when none, and on purchases not counted).
//   - purchase_days: per dimension, key, currency and UTC day of
//     occurred_at, the additive sums (purchases, counted, revenue) and
//     four counts of counted purchases by their place in the chain.
//
// Revenue and purchases add up over days. Repeat purchase rate does not:
// it counts distinct customers. A customer has 1 or more counted purchases
// in [f, t) exactly when one of them is its *last in the period* (next_at
// NULL or ≥ t), and 2 or more exactly when one is its *second to last*
// (next_at < t, next2_at NULL or ≥ t): each customer is counted once, by
// one purchase, and both tests read the purchase's own row. They depend on
// t only through next_at and next2_at, so:
//
//   - lasts (next_at NULL) and penults (next_at set, next2_at NULL) are day
//     sums; the purchases whose next or second next lies at or after t
//     (t ≤ next) are corrections, read from the purchases at or after t
//     (b, with prev_at and prev2_at): +1 customer per b whose prev_at is in
//     the period's days; −1 repeater per such b that is last (next_at
//     NULL); +1 repeater per b whose prev2_at is in them and prev_at < t.
//     For a period up to now there is no purchase at or after t: nothing
//     to read.
//   - mlasts and mpenults are the same tests with t the end of the
//     purchase's own calendar month (UTC): a month of group_by=month that
//     ends at its calendar end needs no correction at all.
//   - the partial days at a period's edges are read from the purchases,
//     with the tests themselves.
//
// Re-keying and chains: for every customer whose keys or purchases a
// batch changes, Apply takes its purchases' sums away under its stored
// keys, applies the batch, recomputes the chain and adds them back under
// its keys at the end of the batch. Day rows left with no purchase are
// deleted (a rebuild then equals the live tables row for row).

// valueDims are the dimensions of purchase_days.
var valueDims = []string{"all", "segment", "tier", "region", "owner"}

type valueKeys struct{ segment, tier, region, owner string }

func (k valueKeys) of(dim string) string {
	switch dim {
	case "segment":
		return k.segment
	case "tier":
		return k.tier
	case "region":
		return k.region
	case "owner":
		return k.owner
	}
	return "all"
}

const rollupSetupSQL = `
	CREATE TABLE value_keys (
		customer_id   uuid   PRIMARY KEY,
		segment       text   NOT NULL DEFAULT '',
		tier          text   NOT NULL DEFAULT '',
		region        text   NOT NULL DEFAULT '',
		owner         text   NOT NULL DEFAULT '',
		last_revision bigint NOT NULL,
		last_position bigint NOT NULL
	);
	CREATE TABLE value_groups (
		dim       text   NOT NULL,
		key       text   NOT NULL,
		customers bigint NOT NULL,
		PRIMARY KEY (dim, key)
	);
	CREATE TABLE purchase_days (
		dim       text     NOT NULL,
		key       text     NOT NULL,
		currency  text     NOT NULL,
		day       date     NOT NULL,
		decimals  smallint NOT NULL,
		rows      bigint   NOT NULL,
		revenue   bigint   NOT NULL,
		purchases bigint   NOT NULL,
		lasts     bigint   NOT NULL,
		penults   bigint   NOT NULL,
		mlasts    bigint   NOT NULL,
		mpenults  bigint   NOT NULL,
		PRIMARY KEY (dim, key, currency, day)
	);
	CREATE INDEX purchase_days_empty_idx ON purchase_days (dim) WHERE rows = 0;`

// signedDaySums adds ($2 = +1) or takes away (−1) the purchases of the
// customers $1 under their stored keys.
const signedDaySums = `
	INSERT INTO purchase_days AS d (dim, key, currency, day, decimals, rows, revenue, purchases, lasts, penults, mlasts, mpenults)
	SELECT x.dim, x.key, p.currency, (p.occurred_at AT TIME ZONE 'UTC')::date, max(p.decimals),
		$2 * count(*), $2 * sum(p.amount_minor - p.refunded_minor),
		$2 * count(*) FILTER (WHERE p.amount_minor > p.refunded_minor),
		$2 * count(*) FILTER (WHERE p.amount_minor > p.refunded_minor AND p.next_at IS NULL),
		$2 * count(*) FILTER (WHERE p.next_at IS NOT NULL AND p.next2_at IS NULL),
		$2 * count(*) FILTER (WHERE p.amount_minor > p.refunded_minor AND (p.next_at IS NULL OR p.next_at >= m.e)),
		$2 * count(*) FILTER (WHERE p.next_at < m.e AND (p.next2_at IS NULL OR p.next2_at >= m.e))
	FROM purchases p LEFT JOIN value_keys k ON k.customer_id = p.customer_id
	CROSS JOIN LATERAL (SELECT (date_trunc('month', p.occurred_at AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC' AS e) m
	CROSS JOIN LATERAL (VALUES ('all', 'all'), ('segment', coalesce(k.segment, '')), ('tier', coalesce(k.tier, '')),
		('region', coalesce(k.region, '')), ('owner', coalesce(k.owner, ''))) AS x(dim, key)
	WHERE p.customer_id = ANY($1)
	GROUP BY 1, 2, 3, 4
	ON CONFLICT (dim, key, currency, day) DO UPDATE SET
		decimals = greatest(d.decimals, EXCLUDED.decimals), rows = d.rows + EXCLUDED.rows,
		revenue = d.revenue + EXCLUDED.revenue, purchases = d.purchases + EXCLUDED.purchases,
		lasts = d.lasts + EXCLUDED.lasts, penults = d.penults + EXCLUDED.penults,
		mlasts = d.mlasts + EXCLUDED.mlasts, mpenults = d.mpenults + EXCLUDED.mpenults`

// chainSQL recomputes the chain of counted purchases of the customers $1;
// purchases not counted have none.
const chainSQL = `
	UPDATE purchases p SET prev_at = c.prev_at, prev2_at = c.prev2_at, next_at = c.next_at, next2_at = c.next2_at
	FROM (
		SELECT x.customer_id, x.purchase_id,
			CASE WHEN x.counted THEN lag(x.occurred_at) OVER w END AS prev_at,
			CASE WHEN x.counted THEN lag(x.occurred_at, 2) OVER w END AS prev2_at,
			CASE WHEN x.counted THEN lead(x.occurred_at) OVER w END AS next_at,
			CASE WHEN x.counted THEN lead(x.occurred_at, 2) OVER w END AS next2_at
		FROM (SELECT customer_id, purchase_id, occurred_at, amount_minor > refunded_minor AS counted
			FROM purchases WHERE customer_id = ANY($1)) x
		WINDOW w AS (PARTITION BY x.customer_id, x.counted ORDER BY x.occurred_at, x.purchase_id)) c
	WHERE p.customer_id = c.customer_id AND p.purchase_id = c.purchase_id
		AND (p.prev_at, p.prev2_at, p.next_at, p.next2_at) IS DISTINCT FROM (c.prev_at, c.prev2_at, c.next_at, c.next2_at)`

// keyFold is a batch's classification events folded over the stored keys.
type keyFold struct {
	stored  map[uuid.UUID]valueKeys
	had     map[uuid.UUID]bool
	current map[uuid.UUID]valueKeys
	rev     map[uuid.UUID][2]int64
	order   []uuid.UUID
}

// keyEvent reports whether e sets a customer's group keys.
func keyEvent(e any) bool {
	switch e.(type) {
	case domain.CustomerRegistered, domain.CustomerClassified, domain.TeamMemberAssigned:
		return true
	}
	return false
}

// purchaseEvent reports whether e changes a customer's purchases.
func purchaseEvent(e any) bool {
	switch e.(type) {
	case domain.PurchaseRecorded, domain.PurchaseRefunded:
		return true
	}
	return false
}

// foldKeys loads the stored keys of the customers the batch classifies
// and folds the batch's events over them, as the directory does.
func foldKeys(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) (*keyFold, error) {
	f := &keyFold{stored: map[uuid.UUID]valueKeys{}, had: map[uuid.UUID]bool{}, current: map[uuid.UUID]valueKeys{}, rev: map[uuid.UUID][2]int64{}}
	var ids []uuid.UUID
	seen := map[uuid.UUID]bool{}
	for i := range batch {
		if !keyEvent(batch[i].Event) {
			continue
		}
		id, err := batch[i].CustomerID()
		if err != nil {
			return nil, err
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return f, nil
	}
	rows, err := tx.Query(ctx, `SELECT customer_id, segment, tier, region, owner FROM value_keys WHERE customer_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("value: load keys: %w", err)
	}
	for rows.Next() {
		var id uuid.UUID
		var k valueKeys
		if err := rows.Scan(&id, &k.segment, &k.tier, &k.region, &k.owner); err != nil {
			rows.Close()
			return nil, fmt.Errorf("value: load keys: %w", err)
		}
		f.stored[id], f.had[id] = k, true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("value: load keys: %w", err)
	}
	for i := range batch {
		d := &batch[i]
		if !keyEvent(d.Event) {
			continue
		}
		id, _ := d.CustomerID()
		k, ok := f.current[id]
		if !ok {
			k = f.stored[id]
			f.order = append(f.order, id)
		}
		switch e := d.Event.(type) {
		case domain.CustomerRegistered:
			k = valueKeys{segment: e.Segment, tier: e.Tier, region: e.Region}
		case domain.CustomerClassified:
			setIf(&k.segment, e.Segment)
			setIf(&k.tier, e.Tier)
			setIf(&k.region, e.Region)
		case domain.TeamMemberAssigned:
			if e.Role == domain.RoleAccountManager {
				k.owner = e.Member
			}
		}
		f.current[id] = k
		f.rev[id] = [2]int64{int64(d.Record.Revision), int64(d.Record.Position)}
	}
	return f, nil
}

func setIf(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

// rekeyed lists the customers whose keys the batch changes.
func (f *keyFold) rekeyed() []uuid.UUID {
	var out []uuid.UUID
	for _, id := range f.order {
		if f.had[id] && f.stored[id] != f.current[id] {
			out = append(out, id)
		}
	}
	return out
}

// write stores the folded keys and the groups' customer counts.
func (f *keyFold) write(ctx context.Context, tx pgx.Tx) error {
	if len(f.order) == 0 {
		return nil
	}
	n := len(f.order)
	seg, tier, region, owner := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	revs, poss := make([]int64, n), make([]int64, n)
	counts := map[[2]string]int64{}
	for i, id := range f.order {
		k := f.current[id]
		seg[i], tier[i], region[i], owner[i] = k.segment, k.tier, k.region, k.owner
		revs[i], poss[i] = f.rev[id][0], f.rev[id][1]
		for _, dim := range valueDims {
			if f.had[id] {
				counts[[2]string{dim, f.stored[id].of(dim)}]--
			}
			counts[[2]string{dim, k.of(dim)}]++
		}
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO value_keys AS k (customer_id, segment, tier, region, owner, last_revision, last_position)
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])
		ON CONFLICT (customer_id) DO UPDATE SET segment = EXCLUDED.segment, tier = EXCLUDED.tier, region = EXCLUDED.region,
			owner = EXCLUDED.owner, last_revision = EXCLUDED.last_revision, last_position = EXCLUDED.last_position`,
		f.order, seg, tier, region, owner, revs, poss); err != nil {
		return fmt.Errorf("value: write %d customers' keys: %w", n, err)
	}
	var dims, keys []string
	var ns []int64
	for g, c := range counts {
		if c != 0 {
			dims, keys, ns = append(dims, g[0]), append(keys, g[1]), append(ns, c)
		}
	}
	if len(dims) > 0 {
		if _, err := tx.Exec(ctx, `
			INSERT INTO value_groups AS g (dim, key, customers)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
			ON CONFLICT (dim, key) DO UPDATE SET customers = g.customers + EXCLUDED.customers`, dims, keys, ns); err != nil {
			return fmt.Errorf("value: count the groups' customers: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM value_groups WHERE customers = 0 AND dim = ANY($1) AND key = ANY($2)`, dims, keys); err != nil {
			return fmt.Errorf("value: count the groups' customers: %w", err)
		}
	}
	return nil
}

// rollupCustomers lists the customers whose day sums the batch changes:
// those it re-keys and those whose purchases it changes (first-seen order).
func rollupCustomers(batch []eventcodec.Decoded, keys *keyFold) ([]uuid.UUID, []uuid.UUID, error) {
	var all, chains []uuid.UUID
	seen, seenChain := map[uuid.UUID]bool{}, map[uuid.UUID]bool{}
	for _, id := range keys.rekeyed() {
		seen[id] = true
		all = append(all, id)
	}
	for i := range batch {
		if !purchaseEvent(batch[i].Event) {
			continue
		}
		id, err := batch[i].CustomerID()
		if err != nil {
			return nil, nil, err
		}
		if !seenChain[id] {
			seenChain[id] = true
			chains = append(chains, id)
		}
		if !seen[id] {
			seen[id] = true
			all = append(all, id)
		}
	}
	return all, chains, nil
}

// takeDaySums (sign −1) or addDaySums (+1) the purchases of ids.
func daySums(ctx context.Context, tx pgx.Tx, ids []uuid.UUID, sign int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, signedDaySums, ids, sign); err != nil {
		return fmt.Errorf("value: day sums of %d customers: %w", len(ids), err)
	}
	return nil
}

// finishRollup recomputes the chains of chains, adds the sums of ids back
// under their current keys and deletes the day rows left empty.
func (p Projector) finishRollup(ctx context.Context, tx pgx.Tx, ids, chains []uuid.UUID) error {
	if len(chains) > 0 {
		if _, err := tx.Exec(ctx, chainSQL, chains); err != nil {
			return fmt.Errorf("value: chains of %d customers: %w", len(chains), err)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE purchases p SET segment = k.segment, tier = k.tier, region = k.region, owner = k.owner
		FROM value_keys k WHERE k.customer_id = p.customer_id AND p.customer_id = ANY($1)
			AND (p.segment, p.tier, p.region, p.owner) IS DISTINCT FROM (k.segment, k.tier, k.region, k.owner)`, ids); err != nil {
		return fmt.Errorf("value: keys of %d customers' purchases: %w", len(ids), err)
	}
	if err := daySums(ctx, tx, ids, 1); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM purchase_days WHERE rows = 0`); err != nil {
		return fmt.Errorf("value: delete empty days: %w", err)
	}
	return nil
}
