// Package risk defines the explainable churn-risk score (PRODUCT.md, "Churn
// risk"): its factors, their configurable weights (RAPPORT_RISK_WEIGHTS),
// its levels, and the SQL function that computes it.
//
// The score has one implementation: the SQL function
// readmodels.customer_risk (see FunctionSQL), created by the customer
// directory's projector next to its table. GET /v1/customers/{id}, the
// list's risk filter and its items, and analysts' own SQL all call it, with
// the time to evaluate at, the weights and the SLA targets as arguments, so
// a score is computed when it is read and is never stale.
//
// # Factors
//
// A score is the sum of the points of its factors, capped at 100; a factor
// that gives no points is not listed. The factor names are stable:
//
//	days_since_contact      whole days of 24 h elapsed since the last contact,
//	                        or since the registration when there was none
//	                        (30 days and 23 hours is 30): more than 30 (31 or
//	                        more) contact_30d, more than 60 contact_60d, more
//	                        than 90 contact_90d
//	open_complaints         open_complaint per complaint not resolved, at most
//	                        open_complaints_max
//	sla_breach              any open complaint past its SLA (its last opening
//	                        had no first response when the first-response
//	                        target passed, or is unresolved past the
//	                        resolution target): sla_breach
//	complaints_last_90_days 3 or more complaints filed in the last 90 days
//	                        (90 × 24 h): complaints_90d
//	low_csat                last CSAT (by answered_at) ≤ 2: csat_low; = 3:
//	                        csat_neutral
//	low_nps                 last NPS ≤ 6: nps_detractor; 7–8: nps_passive
//	csat_drop               last CSAT 2 or more points below the one answered
//	                        before it: csat_drop
//	follow_up_overdue       a follow-up past due with no contact since it was
//	                        scheduled: follow_up_overdue
//	purchase_lapsed         optional, weight 0 by default: 2 or more counted
//	                        purchases and the last more than twice their mean
//	                        gap ago (purchases.go; read from the value read
//	                        model): purchase_lapsed
//
// Levels: low below 30, medium from 30, high from 60. Only active customers
// have a score: churned and erased customers have none (null).
//
// It is a helper of the read models, not one: it has no projector and
// no tables. Its SQL functions live beside the customer directory's table
// (package customers), which is what queries of a score read.
package risk
