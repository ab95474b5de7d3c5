// Package projections builds Rapport's read models from the event log, on
// Watermill.
//
// # Pieces
//
// Subscriber is a Watermill message.Subscriber over the event-store port
// (domain/eventstore), so it works on the Postgres store and on EventStoreDB
// alike. A topic names a consumer (a projector generation); Subscribe
// resumes after the position the consumer stored and delivers the customer
// streams' events, the store's checkpoints and its caught-up notice as
// messages, one at a time and in log order (metadata keys: Metadata*).
//
// A Projector is a read model: it names its event types, creates its tables
// and applies batches of decoded events. The Engine runs every projector as
// the handler of a Watermill router (with the Recoverer middleware and the
// Retry middleware retrying transient errors only):
//
//   - The handler collects messages and flushes them when the batch is full
//     (Config.BatchSize), when the subscriber has nothing more ready, or on a
//     checkpoint or caught-up notice: Apply and the checkpoint commit in one
//     transaction, so a crash at any instant leaves each event applied
//     exactly once. Catch-up runs in large batches (pipelined: the next batch
//     is decoded while the previous one commits), live traffic in small ones.
//     Events a projector does not handle are never decoded, and reach its
//     handler as one KindSkipped message per run (SubscriberConfig.Handles):
//     the checkpoint moves past them without a message for each.
//   - A permanent error (an undecodable event, a data or constraint error, a
//     panic) parks that event's stream in that projector generation only:
//     the engine applies the failed batch event by event, commits
//     everything before the culprit, and in one transaction moves the
//     checkpoint past it and writes a projections.parked row. Later events
//     of a parked stream are passed unapplied (counted as waiting), so its
//     rows keep their last good state; the other streams go on.
//     Engine.RetryParked applies the stream's waiting events in order and
//     un-parks it, in one transaction (see park.go). Only a message the
//     engine cannot read at all stops the projector (Status.Poison).
//   - At most one process runs a projector: it holds a session advisory lock,
//     pg_try_advisory_lock(lockNamespace, hashtext(name)), on a dedicated
//     connection that also carries every write of the projector, so that a
//     process that lost the lock cannot write any more. Other processes stand
//     by and take over when the lock frees.
//
// # Generations, rebuilds and the readmodels views
//
// Each generation of a projector has its own schema, rm_<name>_g<N>, and
// runs its SQL with search_path set to it. The views readmodels.<table>
// point at the active generation; queries and analysts use the views only. A
// rebuild (Engine.Rebuild for the CLI, Engine.RequestRebuild for the API, or
// a changed Projector.Version at startup) fills generation N+1 from the
// start of the log — unlogged and with its secondary indexes deferred, while
// generation N keeps serving — then, once N+1 has caught up: builds its
// indexes and makes it logged, stops N's live handler, lets N+1 pass N's
// checkpoint, and in one transaction points the views at N+1 and marks it
// active, before dropping N's schema. Readers never see an empty or
// half-built model, nor one that goes back in time.
//
// # Reading your writes, status, reconciliation
//
// WaitForPosition returns when the named projectors have applied the log up
// to a position (commits in this process wake it; others are polled), or a
// *NotCaughtUpError (errors.Is ErrNotCaughtUp) when its context ends.
// Status reports, from the tables and the store (so from any process), each
// projector's generation, checkpoint, lag in events and seconds, events
// applied and state; the engine also exports them as Prometheus metrics.
// Verify compares each per-customer read model with the log, stream by
// stream, and finds events skipped or applied out of place.
package projections
