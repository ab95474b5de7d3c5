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
//     whose step came, or that was resolved, in time gets no reminder for
//     that step; one whose step came after its deadline but before a scan
//     saw the deadline pass (the scheduler was down or behind) still gets
//     its breach, found through the customer the late step touched
//     (TestALateAnswerStillAnnouncesTheBreach); at risk is emitted only
//     while the step is pending, and never for a step already breached.
//   - Checkpointed: rapport.reminder_scheduler holds the high-water time
//     (every reminder due up to it was judged), the log position judged
//     through, the last full scan, the configuration judged with and the
//     back-fill floor; rapport.reminders remembers what was emitted, so
//     nothing is appended twice even by one scheduler. A tick looks at
//     what fell due since the high-water time (less Config.Overlap, for
//     the clocks of processes that take turns) and at every reminder of
//     the customers whose events came after the checkpoint (read from the
//     log without decoding): a fact recorded late — a complaint filed
//     hours after it was made, a reopening, a new tier — can be due before
//     the high-water time. A full scan runs at the first start, when the
//     SLA targets or the cadence change, and every Config.Sweep (hourly).
//   - Back-fill: the first scan ever emits what became due within
//     Config.Backfill (24 h) before it and still holds (an open complaint
//     already breached, a follow-up already overdue, a customer already
//     due), once, with its original due time. That floor is stored: what
//     fell due before it is never emitted, so a database with years of
//     history does not flood its subscribers.
//   - One active scheduler: each process runs one; the one holding a
//     session advisory lock works, the others stand by and take over when
//     its connection dies.
package reminders
