// Package webhooks delivers the change feed's integration events to the
// HTTP endpoints apps subscribe (PRODUCT.md, "Change feed and webhooks").
//
//   - Subscriptions (store.go) hold a target URL, the event types wanted
//     and a signing secret, stored sealed; the secret is shown once, at
//     creation or rotation.
//   - Deliveries follow Standard Webhooks (sign.go): webhook-id (the
//     integration event's id, the same on every retry and replay),
//     webhook-timestamp and webhook-signature "v1,<base64 HMAC-SHA256>".
//   - The Deliverer (deliverer.go) is driven from the log like a
//     projector: per subscription, a checkpoint in the feed up to which
//     deliveries are queued, moved in the transaction that queues them; it
//     runs in one process at a time (a session advisory lock; another
//     process takes over when that one dies). A delivery is pending until
//     its receiver answers 2xx (at least once), a customer's deliveries go
//     out one at a time in log order, different customers' concurrently.
//     Failures are retried with exponential backoff and jitter; when a
//     delivery has failed for FailAfter (24 h), the subscription is marked
//     failing and holds every delivery until it is enabled again.
//   - Targets are checked against SSRF (target.go) when subscribed and
//     again on every connection (the address dialled, not the name), and
//     redirects are never followed.
package webhooks
