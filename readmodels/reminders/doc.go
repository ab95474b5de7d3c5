// Package reminders is the reminder scheduler (issue 10, "Apps react to
// what happens"): it turns the passing of time into integration events —
// a complaint's SLA step at risk (less than 25 % of its time left) and
// breached, a follow-up due, a customer due for contact — each emitted
// once, when its time comes, and delivered by the change feed and the
// webhooks like any other event.
//
// How it works:
//
//   - A reminder is an event in the log, alone in its stream
//     reminder-<uuid>. The uuid is a function of the reminder's kind,
//     subject and basis (domain.ReminderID), and so is the event id; the
//     append expects "no stream". So two schedulers (replicas, a failover,
//     a retry after an unknown outcome, a restart) can never emit one
//     twice: the log itself says no, on Postgres and on EventStoreDB.
//   - The feed's projector follows the reminder streams, so the reminder
//     reaches GET /v1/feed, Server-Sent Events, the webhooks and the
//     brokers in log order, after the customer's events it was judged on.
//     Its envelope's customer_id is the customer's and its revision the
//     revision of the customer's stream it was judged on; it is not part
//     of that stream, so the customer's revision, state and history (and
//     every customer read model) are unchanged.
//   - The scheduler scans the read models' due sets (readmodels.complaints
//     with the configured SLA targets, readmodels.follow_ups,
//     readmodels.customers with the tier cadence), each through the index
//     its work queue uses, at an instant now, after waiting until those
//     read models have applied the log up to its head as of now: a
//     reminder reflects the state at its time. The rules are the work
//     queues': a reminder fires for what GET /v1/work/* lists at that
//     moment — an open complaint whose step is still pending, a follow-up
//     no contact has done, an active customer — never for an erased
//     customer (and contact-due never for a churned one). A complaint
//     whose step came, or that was resolved, before the scan found it due
//     gets no reminder for that step; at risk is not emitted for a step
//     already breached.
//   - Checkpointed: rapport.reminder_scheduler holds the high-water time
//     (every reminder due up to it was judged), so a scan looks only at
//     what fell due since, less an overlap (Config.Overlap) that covers
//     read-model lag and back-dated facts; rapport.reminders remembers
//     what was emitted, so nothing is appended twice even by one
//     scheduler. A full scan (Config.Sweep, hourly by default, and the
//     first start) finds what became due retroactively: a shorter SLA
//     target, a new tier, a fact recorded long after its time.
//   - First start back-fills: the first scan is full, so every reminder
//     that holds at that moment (an open complaint already breached, a
//     follow-up already overdue, a customer already due) is emitted once,
//     with its original due time; those whose subject was settled before
//     the scheduler ever ran are not.
//   - One active scheduler: each process runs one; the one holding a
//     session advisory lock works, the others stand by and take over when
//     its connection dies.
package reminders
