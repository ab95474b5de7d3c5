// Package cadence defines the contact rhythm of PRODUCT.md ("Contact
// cadence"): how often a customer of each value tier should be contacted
// (RAPPORT_CADENCE) and how many outbound contacts in 7 days are too many
// (max_outbound_per_week), with the SQL that judges both.
//
// Like the churn-risk score and the SLA breaches, nothing here is stored:
// whether a customer is due or over-contacted depends on the clock and on
// configuration, so the customer directory, the contact-due queue and the
// contacts figures judge it when they are read, with the same SQL
// (DueAtSQL, OverContactedSQL, OverContactedInSQL). Changing the cadence
// or the maximum needs no rebuild.
//
// It is a helper of the read models, not one: no projector, no tables.
package cadence
