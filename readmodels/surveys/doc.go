// Package surveys is the read model of satisfaction surveys: one row per
// survey (readmodels.surveys) with its scores, channel, answered_at and
// the complaint it followed. The comment is personal: NULL when none was
// given or once the customer's data is erased; the scores stay, so the
// figures do not change.
//
// The projector writes a batch's surveys with one COPY and its erasures
// with one UPDATE. Queries read the readmodels.* views, the list a page at
// a time after a cursor of its own kind (Cursor); every query reads this
// projector's tables only (Reads). ../README.md documents the tables for
// analysts.
package surveys
