// Package complaints is the read model of complaints: one row per
// complaint with its state and the timings of its last opening
// (readmodels.complaints), folded with the domain's own Evolve, and its
// timeline, one row per complaint event (readmodels.complaint_events).
// Personal text (description, resolution, notes and reasons) is NULL once
// the customer's data is erased; categories, severities, staff names and
// every time stay, so the figures built on them do not change.
//
// SLA state is not stored: Queries judges each complaint against the
// configured targets (package sla) when it is read, so that changing the
// targets needs no rebuild. Its lists go a page at a time after a cursor
// of their own kind (Cursor); every query reads this projector's tables
// only (Reads).
package complaints
