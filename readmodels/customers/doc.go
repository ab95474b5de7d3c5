// Package customers is the customer directory: one row per customer with
// the profile, classification, team, status, dates and satisfaction figures
// that GET /v1/customers/{id} and the customer list show, plus the facts the
// churn-risk score is computed from at query time. SCHEMA.md documents the
// table (readmodels.customers) for analysts.
//
// Projector folds events with domain.Evolve, so the directory says what the
// command side would: it loads the batch's customers (from its cache of the
// rows it wrote, else with one = ANY query), folds the whole batch in memory
// and writes the changed rows back with one INSERT … ON CONFLICT over unnest
// arrays. Personal fields are NULL once a customer's data is erased, or its
// key destroyed, so a rebuild after erasure cannot bring them back.
//
// Queries reads through the readmodels.customers view, so it always sees the
// active generation, with keyset pagination on (registered_at, id) (cursors
// of kind Cursor); it reads this projector's table and functions only
// (Reads). Each
// customer it reads carries its churn risk, scored at the time of the query
// by the SQL function readmodels.customer_risk (package risk), which Setup
// creates beside the table: Get, List's items and List's risk filter, and
// analysts' SQL, all use that one implementation. Queries.At evaluates at
// another time (tests; "what will it say tomorrow").
package customers
