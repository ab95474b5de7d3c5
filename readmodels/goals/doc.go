// Package goals is the read model of goals (PRODUCT.md "Goals"): one row
// per goal (readmodels.goals) folded from the goal-<uuid> streams, and the
// queries that answer each goal's baseline, current figure, progress and
// status.
//
// The row holds only facts: what the goal is (figure, comparator, target,
// period, scope), who set it and whether it is closed. The figures and the
// judgement are computed at query time by the analytics queries
// (readmodels/analytics: one definition per figure) over the goal's
// windows, so a goal is never stale and a late event or a changed SLA
// target needs no rebuild. Judge holds the definitions of progress and
// status; Windows those of the baseline and current periods.
//
// The projector handles only goal events, so it implements Reconciler over
// goal streams: `rapport projections verify` compares each goal's applied
// revision with the log like it does for customers. ../README.md documents
// the table for analysts.
package goals
