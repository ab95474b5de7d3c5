package risk

import (
	"strconv"
	"strings"
)

// Purchase factors (PRODUCT.md "Churn risk", issue #9): optional factors
// read from the customer's purchases, weighted 0 by default so that no
// existing score changes until RAPPORT_RISK_WEIGHTS gives them points.
//
//	purchase_lapsed  the customer has 2 or more counted purchases (not
//	                 refunded in full) up to the instant judged, and the
//	                 time since the last one is more than twice its usual
//	                 interval, the mean gap between them ((last − first) ÷
//	                 (purchases − 1)): purchase_lapsed
//
// The directory does not see purchases: the value read model
// (readmodels.purchases) does, so the factor is a SQL function over it,
// readmodels.customer_purchase_risk, which the value projector creates
// (PurchaseFunctionSQL), and the directory's queries add its points to
// the score only when a purchase factor has a weight (PurchaseRiskSQL):
// judged at query time like every factor, never stale, and no rebuild of
// the directory to learn purchases.
const FactorPurchaseLapsed = "purchase_lapsed"

// PurchasesProjector names the read model the purchase factors read
// (package value's Name, which this package cannot import: value creates
// the function from here).
const PurchasesProjector = "value"

// PurchaseFactors lists the purchase factors, in the order a score lists
// them (after Factors).
func PurchaseFactors() []string { return []string{FactorPurchaseLapsed} }

// lapsedMultiple: lapsed is more than this many usual intervals.
const lapsedMultiple = 2

// UsesPurchases reports whether a purchase factor has points.
func (w Weights) UsesPurchases() bool { return w.PurchaseLapsed > 0 }

// PurchaseFunctionSQL creates readmodels.customer_purchase_risk(customer_id
// uuid, as_of timestamptz, weights integer[]) RETURNS integer: the points
// of the purchase factors of one customer at as_of, with the weights array
// of Weights.Array. It reads readmodels.purchases (the value read model),
// so its body is checked when called.
func PurchaseFunctionSQL() string {
	return strings.NewReplacer(
		"{w_purchase_lapsed}", "weights["+strconv.Itoa(weightIndex("purchase_lapsed"))+"]",
		"{multiple}", strconv.Itoa(lapsedMultiple),
	).Replace(`
CREATE OR REPLACE FUNCTION readmodels.customer_purchase_risk(customer uuid, as_of timestamptz, weights integer[])
RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
SELECT CASE WHEN coalesce({w_purchase_lapsed}, 0) > 0 AND s.n >= 2
		AND as_of - s.last_at > {multiple} * (s.last_at - s.first_at) / (s.n - 1) THEN {w_purchase_lapsed} ELSE 0 END
FROM (
	SELECT count(*) AS n, min(p.occurred_at) AS first_at, max(p.occurred_at) AS last_at
	FROM readmodels.purchases p
	WHERE p.customer_id = customer AND p.amount_minor > p.refunded_minor AND p.occurred_at <= as_of) s
$fn$`)
}

// PurchaseRiskSQL is a LATERAL subquery yielding (score, level, factors):
// the score base (columns score and factors of customer_risk) with the
// purchase factors of customer added at asOf with weights, capped at
// MaxScore, the level judged again, and the factor listed last. A customer
// without a score (not active) keeps none (least() would ignore the NULL).
func PurchaseRiskSQL(base, customer, asOf, weights string) string {
	return strings.NewReplacer("{b}", base, "{c}", customer, "{as_of}", asOf, "{weights}", weights,
		"{max}", strconv.Itoa(MaxScore), "{high}", strconv.Itoa(HighFrom), "{medium}", strconv.Itoa(MediumFrom),
		"{level_high}", sqlString(LevelHigh), "{level_medium}", sqlString(LevelMedium), "{level_low}", sqlString(LevelLow),
		"{name}", sqlString(FactorPurchaseLapsed),
	).Replace(`(SELECT s.score,
		CASE WHEN s.score >= {high} THEN {level_high} WHEN s.score >= {medium} THEN {level_medium} WHEN s.score IS NOT NULL THEN {level_low} END AS level,
		CASE WHEN x.points > 0 THEN {b}.factors || jsonb_build_array(jsonb_build_object('factor', {name}, 'points', x.points)) ELSE {b}.factors END AS factors
	FROM (SELECT CASE WHEN {b}.score IS NULL THEN 0 ELSE readmodels.customer_purchase_risk({c}, {as_of}, {weights}) END AS points) x
	CROSS JOIN LATERAL (SELECT CASE WHEN {b}.score IS NOT NULL THEN least({max}, {b}.score + x.points) END AS score) s)`)
}
