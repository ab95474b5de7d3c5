// Package readmodel is the small kernel every read model shares, so that
// they are cut the same way and the HTTP adapter keeps no read-side
// knowledge of its own:
//
//   - Key, CursorKind and Page: keyset pagination. A list sorted by
//     (time, id) continues after the Key of its last item; the Key
//     travels as an opaque cursor of the list's kind, which every other
//     list refuses (ErrBadCursor).
//   - ErrNotReady and Fail: a query that finds its tables missing (the
//     projector has not created its first generation yet: the service's
//     first start) fails with ErrNotReady, which the API answers 503 with
//     Retry-After rather than 500.
//   - Personal, Int, SmallInt, UTC, Deref, NullTime: how personal fields
//     and optional values become NULL in a table and nil in Go.
//
// Every read model package (customers, contacts, complaints, surveys,
// lifecycle, history, analytics, work) has the same files: doc.go (what
// it holds and for whom), projector.go (the projector that builds its
// tables; analytics and work have none, they read the others'),
// queries.go (its Queries, whose Reads method names the projectors each
// of its queries reads from, so that min_position waits for exactly
// those), and its tests.
package readmodel
