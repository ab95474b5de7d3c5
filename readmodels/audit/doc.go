// Package audit answers auditors from the authoritative event log rather
// than from a projection: a customer's events as stored, the customer as it
// was at any instant (folded with the same Evolve as the command side), and
// the verification of the hash chain that makes the history tamper-evident.
//
// Audit is not a read model: it has no projector, no tables and no Reads.
// It reads the log through the event-store port, so its answers are never
// behind the log, min_position has nothing to wait for, and it is ready as
// soon as the store is.
package audit
