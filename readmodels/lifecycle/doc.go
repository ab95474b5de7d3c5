// Package lifecycle is the read model of each customer's life cycle, the
// base of the churn, retention and "active customer" figures: one row per
// active spell of a customer (readmodels.customer_lifecycle), from its
// registration or a reactivation to the churn that ended it, so that
// "active at instant T" and "churned in a period" are exact for any past
// period, including a churn and a reactivation within one period.
//
// Spells are half-open, [active_from, active_until): a customer is active
// at T when one of its spells has active_from <= T < active_until (or
// active_until NULL). Erasure does not touch the life cycle: it removes
// personal data, not history, so the figures do not change.
//
// Queries reads readmodels.customer_lifecycle only (Reads): whether a
// customer is registered, which the lists of its contacts, complaints,
// surveys and follow-ups need for their 404, and a customer's spells. The
// figures that use the life cycles are package analytics'.
package lifecycle
