// Package feed is the change feed's read model: every domain event's
// integration event (domain/integration), in log order, in the table
// readmodels.feed. GET /v1/feed pages through it, streams it as NDJSON or
// Server-Sent Events; the webhook deliverer and the broker publishers read
// it after their own checkpoints.
//
// One projector writes the table, in log order, in transactions that also
// move its checkpoint; so a reader that has seen position P and asks for
// what follows P never misses a row committed later below P. (A stream a
// projector parked is the exception the engine documents: its events are
// applied when it is retried, at their original positions. The feed's
// Apply fails on nothing but the database, so it does not park in
// practice.) The rows hold no personal data, so erasure leaves them as
// they are: that is the point of integration events.
package feed
