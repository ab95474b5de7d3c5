// Package routing routes filed complaints to a named owner (PRODUCT.md,
// issue 20): the policy that reacts to ComplaintFiled by issuing the
// ordinary assign command, and the queries of the routing rules.
//
// The rules are event-sourced in their own stream (domain.RoutingStream,
// ComplaintRoutingSet per version, set by commands.Routing). The policy is
// a projector of the projections engine, so it runs like one: checkpointed
// in the same transaction as its tables, one active process (the
// projector's lock), resumed after a restart or a failover. For each
// ComplaintFiled it takes the rules in force at the complaint's log
// position (the latest version appended before it), routes by the first
// rule that matches the complaint's severity and category and its
// customer's segment, tier and region at that moment (folded by the
// policy from the customer's events), and, when one matches, assigns the
// complaint through the command layer with:
//
//   - actor routing:v<version>:<rule name>, so the history says which rule
//     of which version assigned it;
//   - command id = causation id = the ComplaintFiled event's id, so the
//     event ids of the assignment derive from it;
//   - at most once: the command runs only if the customer's stream holds
//     no event caused by it after the filing (commands.Customers
//     HandleOnce), so a batch run again after a crash, a rebuild or a
//     failover never assigns twice — and never takes back a complaint that
//     someone re-assigned meanwhile.
//
// A pool is served round robin: the n-th complaint a rule of a version
// routes goes to pool[n mod len(pool)], the turn counted in
// routing_pool_turns and committed with the checkpoint. Every decision is
// a row of routing_decisions. Both are deterministic functions of the log,
// so a rebuild reproduces them (and assigns nothing again).
package routing
