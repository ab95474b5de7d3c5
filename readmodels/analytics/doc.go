// Package analytics computes the analysts' figures (PRODUCT.md,
// "Definitions") from the read models, one SQL round trip per figure
// family, reading only the readmodels.* views: satisfaction from
// readmodels.surveys, churn and retention from readmodels.customer_lifecycle,
// complaint handling from readmodels.complaints, contact coverage from
// readmodels.contacts and readmodels.follow_ups, and the groups from
// readmodels.customers. ../README.md states every definition and the SQL
// that computes it; the queries here are that SQL.
//
// Grouping: segment, tier and region are the customer's current
// classification and owner its current account manager (all from
// readmodels.customers; a customer without one falls in the group with a
// null key); month is the calendar month (UTC) of the fact counted. For
// figures that hold at an instant, a month is judged at its own bounds:
// churn from the month's start, coverage and overdue follow-ups at its
// end (both clipped to the period).
//
// Analytics has no projector of its own: it reads the tables of the
// customers, surveys, lifecycle, complaints and contacts projectors.
// Queries.Reads names, for each family, the projectors its SQL reads, so
// that min_position waits for exactly those.
package analytics
