// Package work answers the work queues of PRODUCT.md ("Work queues"): the
// cross-customer lists that staff work through — open complaints by SLA
// urgency, pending follow-ups by due date, customers due for a contact by
// their tier's cadence, and active customers by churn risk.
//
// It has no projector and no tables of its own (the at-risk queue's cache
// of scores lives in the directory's rows: riskcache.go): its queries read the
// views of the customer directory (readmodels.customers, and its
// churn-risk function readmodels.customer_risk), the complaints
// (readmodels.complaints) and the follow-ups (readmodels.follow_ups).
// Everything time-dependent — SLA breaches, a follow-up's state, a
// cadence being due, the risk score — is judged when the query runs (the
// Queries' clock), so a queue is never stale and changing the SLA
// targets, the risk weights or the cadence needs no rebuild.
//
// The definitions are the ones the rest of the service uses: SLA targets
// and breaches are complaints.Judge's (the SQL below computes the same
// due times, and each row is judged again in Go with Judge), the risk
// score is readmodels.customer_risk's, a pending follow-up is the
// analytics' "follow-ups overdue" predicate, and "days since" the last
// contact counts whole days of 24 hours like the risk factor.
package work
