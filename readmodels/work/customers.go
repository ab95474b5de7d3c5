package work

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/risk"
)

// ContactDue is a row of the contact-due queue.
type ContactDue struct {
	Customer      CustomerRef
	RegisteredAt  time.Time
	LastContactAt *time.Time
	// CadenceDays is the customer's tier's cadence.
	CadenceDays int
	// DueSince is when the customer became due: the first instant its
	// last contact (or registration) was more than CadenceDays whole days
	// old. DaysOverdue counts whole days of 24 h since then.
	DueSince    time.Time
	DaysOverdue int
}

// ContactDue returns the active customers whose last contact, or
// registration when there was none, is older than their tier's cadence,
// the longest overdue first (then id). "Older than N days" is N+1 whole
// days of 24 h or more, as "days since" counts them (PRODUCT.md: 30 days
// and 23 hours is 30), the churn-risk factor's rule.
func (q *Queries) ContactDue(ctx context.Context, f Filter, limit int, cursor string) (readmodel.Page[ContactDue], error) {
	limit, err := checkLimit(limit)
	if err != nil {
		return readmodel.Page[ContactDue]{}, err
	}
	after, err := ContactDueCursor.Continue(cursor, limit)
	if err != nil {
		return readmodel.Page[ContactDue]{}, fmt.Errorf("work: contact-due: %w", err)
	}
	now := q.now()
	sql, args := q.contactDueSQL(f, after, now, limit)
	rows, err := q.pool.Query(ctx, sql, args...)
	items, err := collect(rows, err, func(row pgx.CollectableRow) (ContactDue, error) {
		var (
			d       ContactDue
			cadence int32
		)
		err := row.Scan(&d.Customer.ID, &d.Customer.Name, &d.Customer.Segment, &d.Customer.Tier, &d.Customer.Region,
			&d.RegisteredAt, &d.LastContactAt, &cadence, &d.DueSince)
		d.RegisteredAt, d.LastContactAt, d.DueSince = d.RegisteredAt.UTC(), readmodel.UTC(d.LastContactAt), d.DueSince.UTC()
		d.CadenceDays, d.DaysOverdue = int(cadence), int(now.Sub(d.DueSince)/day)
		return d, err
	})
	if err != nil {
		return readmodel.Page[ContactDue]{}, readmodel.Fail("work: contact-due", err)
	}
	return readmodel.PageOf(items, limit, ContactDueCursor, func(d ContactDue) readmodel.Key {
		return readmodel.Key{At: d.DueSince, ID: d.Customer.ID}
	}), nil
}

// contactDueSQL is the contact-due queue's query: one branch per cadence
// (tiers A, B and C, and every other tier), each walking its partial
// index customers_contact_due_*_idx in the order of
// coalesce(last_contact_at, registered_at), which within one cadence is
// the order of due_since, and the first limit+1 of their merge. The
// conditions on due_since move to that column (due_since <= now is
// base <= now − (cadence+1) × 24 h), so the index answers them.
func (q *Queries) contactDueSQL(f Filter, after *readmodel.Key, now time.Time, limit int) (string, []any) {
	b := &builder{}
	b.customer(f)
	common := ""
	for _, w := range b.where {
		common += " AND " + w
	}
	nowArg, limitArg := b.arg(now), b.arg(limit+1)
	var atArg, idArg string
	if after != nil {
		atArg, idArg = b.arg(after.At), b.arg(after.ID)
	}
	const base = `coalesce(c.last_contact_at, c.registered_at)`
	var branches []string
	for _, class := range []struct{ cond, tier string }{
		{`c.tier = 'A'`, "A"}, {`c.tier = 'B'`, "B"}, {`c.tier = 'C'`, "C"}, {`c.tier NOT IN ('A', 'B', 'C')`, ""},
	} {
		k := b.arg(int32(q.cadence.Days(class.tier)))
		lag := `(` + k + `::integer + 1) * interval '24 hours'`
		cursor := ""
		if after != nil {
			cursor = ` AND (` + base + `, c.id) > (` + atArg + `::timestamptz - ` + lag + `, ` + idArg + `::uuid)`
		}
		branches = append(branches, `(SELECT c.id, c.name, c.segment, c.tier, c.region, c.registered_at, c.last_contact_at,
			`+k+`::integer AS cadence, `+base+` + `+lag+` AS due_since
			FROM readmodels.customers c
			WHERE c.status = 'active' AND `+class.cond+` AND `+base+` <= `+nowArg+`::timestamptz - `+lag+common+cursor+`
			ORDER BY `+base+`, c.id LIMIT `+limitArg+`)`)
	}
	return `SELECT * FROM (` + strings.Join(branches, "\n\t\tUNION ALL ") + `) u ORDER BY u.due_since, u.id LIMIT ` + limitArg, b.args
}

// AtRiskFilter narrows the at-risk queue.
type AtRiskFilter struct {
	Filter
	// Level is risk.LevelHigh, risk.LevelMedium, or "" for both.
	Level string
}

// AtRisk is a row of the at-risk queue.
type AtRisk struct {
	Customer CustomerRef
	Risk     risk.Risk
}

// AtRisk returns the active customers at medium or high churn risk (or
// the level asked), the highest score first (then id), scored now by
// readmodels.customer_risk: the score GET /v1/customers/{id} shows. It
// reads the cache of scores (riskcache.go) when it can: the same rows, at
// the cost of the rows whose cached score does not hold now.
//
// Its cursor carries the score where the other lists carry a time: the
// key (score, id) travels as (unix seconds = score, id).
func (q *Queries) AtRisk(ctx context.Context, f AtRiskFilter, limit int, cursor string) (readmodel.Page[AtRisk], error) {
	limit, err := checkLimit(limit)
	if err != nil {
		return readmodel.Page[AtRisk]{}, err
	}
	after, err := AtRiskCursor.Continue(cursor, limit)
	if err != nil {
		return readmodel.Page[AtRisk]{}, fmt.Errorf("work: at-risk: %w", err)
	}
	var items []AtRisk
	cached := q.cache.usable
	if cached {
		many, err := q.manyStale(ctx)
		switch {
		case isUndefinedColumn(err):
			cached = false // a generation made before the cache
		case err != nil:
			return readmodel.Page[AtRisk]{}, readmodel.Fail("work: at-risk", err)
		case many:
			cached = false // nothing or little cached: a rebuild, other weights
			q.refreshInBackground()
		}
	}
	if cached {
		items, err = q.atRisk(ctx, q.atRiskCachedSQL, f, after, limit)
		if err == nil {
			q.refreshInBackground()
		}
	} else {
		// Score every active customer: the weights give points the cache
		// cannot bound, or it holds too few of the scores.
		items, err = q.atRisk(ctx, q.atRiskSQL, f, after, limit)
	}
	if err != nil {
		return readmodel.Page[AtRisk]{}, readmodel.Fail("work: at-risk", err)
	}
	return readmodel.PageOf(items, limit, AtRiskCursor, func(a AtRisk) readmodel.Key {
		return readmodel.Key{At: time.Unix(int64(a.Risk.Score), 0), ID: a.Customer.ID}
	}), nil
}

// atRisk reads a page of the at-risk queue with the query build makes.
func (q *Queries) atRisk(ctx context.Context, build func(AtRiskFilter, *readmodel.Key, int) (string, []any, error),
	f AtRiskFilter, after *readmodel.Key, limit int) ([]AtRisk, error) {
	sql, args, err := build(f, after, limit)
	if err != nil {
		return nil, err
	}
	return afterSetting(ctx, q.pool, noJITSQL, sql, args, func(row pgx.CollectableRow) (AtRisk, error) {
		var (
			a       AtRisk
			score   int32
			factors []byte
		)
		if err := row.Scan(&a.Customer.ID, &a.Customer.Name, &a.Customer.Segment, &a.Customer.Tier, &a.Customer.Region,
			&score, &a.Risk.Level, &factors); err != nil {
			return a, err
		}
		a.Risk.Score, a.Risk.Factors = int(score), []risk.Factor{}
		if err := json.Unmarshal(factors, &a.Risk.Factors); err != nil {
			return a, fmt.Errorf("work: risk factors of %s: %w", a.Customer.ID, err)
		}
		return a, nil
	})
}

// atRiskSQL is the at-risk queue's query by the definition, without the
// cache: every active customer is scored. The page's order needs only the score and the level: the inner
// query sorts by those, and the factors — a JSON array built per row, the
// dearest part of the function — are computed after the limit, by the
// same function over the same row, for the rows of the page alone.
func (q *Queries) atRiskSQL(f AtRiskFilter, after *readmodel.Key, limit int) (string, []any, error) {
	b := &builder{}
	riskOf := func(c string) string {
		return `readmodels.customer_risk(` + c + `.status, ` + c + `.registered_at, ` + c + `.last_contact_at, ` + c + `.open_complaints, ` +
			c + `.complaints_total, ` + c + `.complaints, ` + c + `.last_csat, ` + c + `.prev_csat, ` + c + `.last_nps, ` + c + `.next_follow_up_due_at, ` +
			`$1::timestamptz, $2::integer[], $3::jsonb)`
	}
	b.arg(q.now())
	b.arg(q.weights)
	b.arg(q.slaJSON)
	b.where = append(b.where, "c.status = 'active'")
	switch f.Level {
	case "":
		b.add("r.score >= ?", int32(risk.MediumFrom))
	case risk.LevelHigh, risk.LevelMedium:
		b.add("r.level = ?", f.Level)
	default:
		return "", nil, fmt.Errorf("%w: level %q", ErrBadRequest, f.Level)
	}
	b.customer(f.Filter)
	if after != nil {
		score := int32(after.At.Unix())
		b.add("(r.score < ? OR (r.score = "+b.arg(score)+" AND c.id > "+b.arg(after.ID)+"))", score)
	}
	scored := func(c string) string {
		if !q.riskWeights.UsesPurchases() {
			return riskOf(c) + ` r`
		}
		// The purchase factors' points, as the directory adds them
		// (risk/purchases.go): the queue and the customer judge one score.
		return riskOf(c) + ` r0 CROSS JOIN LATERAL ` + risk.PurchaseRiskSQL("r0", c+".id", "$1::timestamptz", "$2::integer[]") + ` r`
	}
	inner := b.sql(`SELECT c.id, r.score FROM readmodels.customers c CROSS JOIN LATERAL `+scored("c"), "r.score DESC, c.id", limit)
	return `SELECT c.id, c.name, c.segment, c.tier, c.region, r.score, r.level, r.factors
		FROM (` + inner + `) p
		JOIN readmodels.customers c ON c.id = p.id
		CROSS JOIN LATERAL ` + scored("c") + `
		ORDER BY p.score DESC, p.id`, b.args, nil
}
