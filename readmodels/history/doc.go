// Package history is the audit-history read model: one row per event of
// every customer, as a readable timeline — who did what, when, from which
// request, and which fields changed from what to what. It is complete:
// no coalescing, no retention limit. Personal data sits in its own columns
// so that erasure can null them without touching the rest.
//
// Queries reads readmodels.history only (Reads), a page in revision order
// at a time; a cursor is the revision the next page starts after.
// Auditors' reads of the authoritative log itself are package audit's.
package history
