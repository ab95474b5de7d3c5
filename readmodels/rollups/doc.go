// Package rollups is the read model that lets the analytics answer at the
// speed of a dashboard: pre-aggregated figures per group and UTC day,
// maintained by its projector and re-keyed when a customer is reclassified
// or reassigned, so that every figure still groups by the customer's
// *current* classification and account manager (PRODUCT.md, "Groups").
//
// Tables (readmodels.* views, like every read model):
//
//   - rollup_customers: each customer's current group keys (segment, tier,
//     region as in the directory, "" for none; account_manager, NULL for
//     none). A narrow copy of the directory's grouping columns, which the
//     analytics join instead of the wide directory.
//   - rollup_keys: how many customers each group key has (dim, key,
//     customers), so that "every value present in the directory is a
//     group" needs no scan of the directory.
//   - survey_facts: one row per survey, only what the figures read
//     (answered_at, csat, nps); the partial days at a period's edges are
//     counted from it.
//   - survey_days: the satisfaction sums (responses, CSAT answers, CSAT 4–5,
//     CSAT sum, NPS answers, promoters, detractors) per dimension (all,
//     segment, tier, region, owner), key ("" for a null key) and UTC day
//     of answered_at.
//
// The sums are additive, so a report over [from, to) adds the whole days
// inside the period from survey_days and counts the partial days at its
// edges from survey_facts: the figures are exactly those of the SQL in
// ../README.md, which stays their definition (TestRollupsAgreeWithTheDocumentedSQL).
//
// Re-keying: when a batch changes a customer's segment, tier, region or
// account manager, the projector moves the sums of that customer's
// surveys already recorded from the old key to the new one (subtracting
// and adding, per day), before it adds the batch's own surveys under the
// customer's key at the end of the batch. Erasure changes nothing here:
// the tables hold no personal data, and PRODUCT.md keeps scores and
// classification after an erasure.
//
// Figures judged at query time stay judged at query time: the complaint
// report reads every complaint of its period from complaint_blocks (a
// day's facts packed per group, complaint_blocks.go) and judges medians and
// SLA breaches against now; the contact figures count per-customer
// intervals by day (contacts.go).
package rollups
