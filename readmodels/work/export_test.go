package work

import "strings"

// FullScoring returns q's queries without the cache of churn-risk
// scores: the at-risk queue by the definition.
func FullScoring(q *Queries) *Queries {
	c := *q
	c.cache = &riskCache{key: q.cache.key, refresh: refreshSQL()}
	return &c
}

// WithWrongValidity returns q's queries whose refresh stores every score
// as valid for ever: a wrong cache, for a test to catch.
func WithWrongValidity(q *Queries) *Queries {
	c := *q
	stmt := refreshSQL()
	start := strings.Index(stmt, "readmodels.customer_risk_valid_until(")
	end := strings.Index(stmt[start:], "$3::jsonb)") + start + len("$3::jsonb)")
	c.cache = &riskCache{key: q.cache.key ^ 1, usable: true, refresh: stmt[:start] + "'infinity'::timestamptz" + stmt[end:]}
	return &c
}

// RiskKey is the key of q's cached scores.
func RiskKey(q *Queries) int64 { return q.cache.key }
