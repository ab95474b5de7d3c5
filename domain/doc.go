// Package domain is Rapport's customer model: the commands an app may issue,
// the events they append, the rules that decide between them, and the state
// folded from a customer's events. It follows the decider pattern:
//
//	Decide(state, command, now) -> events or *Error
//	Evolve(state, event)        -> state
//	Fold(events...)             -> state
//
// Every function here is pure. The package never reads the clock, never
// generates ids and never talks to a store: the application layer passes the
// current time to Decide and sets the ids of the things a command creates, so
// that a retried command produces byte-identical events. The package imports
// only the standard library and github.com/google/uuid so that every other
// layer (commands, projections, read models, infrastructure) can depend on it
// without pulling anything else in.
//
// One customer is one event stream, named by StreamName. Events are encoded
// with Marshal and decoded with a Registry, which also upcasts payloads that
// were written under an older schema version. Events that carry personal data
// expose it through PersonalData so that an infrastructure codec can encrypt
// it (crypto-shredding) without knowing the event types.
package domain
