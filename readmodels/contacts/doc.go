// Package contacts is the read model of a customer's contacts and
// follow-ups: one row per contact (readmodels.contacts) and one per
// follow-up (readmodels.follow_ups), with the follow-up's completion folded
// in as the domain does it (the first contact logged after it whose
// occurred_at is at or after its scheduling). Personal text (contact
// summaries, follow-up notes) is NULL once the customer's data is erased.
//
// The projector folds a batch in memory and writes it with a few
// statements: the new rows with COPY, completed follow-ups with one UPDATE
// over unnest arrays, erasures with one UPDATE each table. Queries read
// the readmodels.* views, lists a page at a time after a cursor of their
// own kind (ContactsCursor, FollowUpsCursor); every query reads this
// projector's tables only (Reads). ../README.md documents the tables for
// analysts.
package contacts
