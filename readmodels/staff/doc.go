// Package staff is the read model behind the staff scorecards (PRODUCT.md
// "Staff scorecards"): who held each team role of each customer when
// (readmodels.team_spells, folded from TeamMemberAssigned), and the
// scorecard query, which reads it beside the contacts, complaints, surveys
// and life-cycle tables.
//
// The spells make "the customers a member manages" exact at any instant:
// accounts are counted at the period's end and the accounts' churn rate
// over the customers managed at its start, whoever manages them today. The
// other figures attribute each fact to the staff member it names: the `by`
// of a contact or follow-up, the assignee of a complaint. The figures that
// also exist per group use the same definitions as the analytics (the SLA
// breach SQL of package sla; the first-response median of the
// acknowledgement, else the resolution; CSAT 4 or 5).
//
// The projector is per customer, so it implements Reconciler. ../README.md
// documents the table and every figure for analysts.
package staff
