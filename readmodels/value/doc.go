// Package value is the read model of customers' purchases and loyalty
// points (PRODUCT.md "Purchases, value and loyalty"): one row per purchase
// (readmodels.purchases) with what was refunded of it, one row per
// loyalty ledger entry (readmodels.loyalty_ledger; earned lots keep what
// is left of them) and one row per customer (readmodels.value_customers:
// currency, churned, erased).
//
// Rows hold facts only. Everything that depends on the clock is judged at
// query time, so it is never stale: recency, frequency and monetary value
// over the last 365 days, their quintile scores over the current
// population and the RFM segment (readmodels.customer_values(as_of), a SQL
// function analysts can call too), the points that have expired and
// those expiring in the next 30 days. Money stays integer minor units
// until it is written out as a decimal string in the currency's own
// decimals. Reasons of awards and redemptions are personal: NULL once the
// customer is erased; no figure depends on them, so erasure changes none.
//
// ../README.md documents the tables, the RFM mapping and the SQL of every
// figure for analysts.
package value
