package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Upcaster rewrites a payload stored under an old type name into the shape of
// a newer one, returning the new type name and payload. Upcasters let the
// event log stay immutable while the code only knows current event types:
// old events are translated on the way in, never rewritten in the store.
//
// To change an event incompatibly: bump the version in its type name (say
// rapport.X.v1 to rapport.X.v2), then register an upcaster for "rapport.X.v1"
// that turns a v1 payload into a v2 one. Upcasters chain: a v0 payload passes
// through the v0 upcaster, then the v1 one, until a current type is reached.
// An upcaster must be pure and must not fail on any payload its type was ever
// stored with.
type Upcaster func(data []byte) (typeName string, upcasted []byte, err error)

// UnknownEventTypeError is returned by Decode when a type name (after
// upcasting) is neither a current event type nor has an upcaster.
type UnknownEventTypeError struct {
	Type string
}

func (e *UnknownEventTypeError) Error() string {
	return fmt.Sprintf("domain: unknown event type %q", e.Type)
}

// Registry decodes stored events. It knows every current event type; add
// upcasters for older type names with RegisterUpcaster while setting up, then
// share it: Decode is safe for concurrent use as long as no registration
// happens at the same time.
type Registry struct {
	decoders  map[string]func([]byte) (Event, error)
	upcasters map[string]Upcaster
	// goalTypes are the types of goal streams (registerGoalEvents).
	goalTypes map[string]bool
	// others are the types of streams other than customers' and goals'
	// (the routing rules): decoded like the rest, but not listed by Types.
	others map[string]bool
	// reminderTypes are the reminder streams' types (registerReminderEvents),
	// a part of others.
	reminderTypes map[string]bool
}

// NewRegistry returns a registry that decodes every current event type.
func NewRegistry() *Registry {
	r := &Registry{
		decoders:  map[string]func([]byte) (Event, error){},
		upcasters: map[string]Upcaster{},
		goalTypes: map[string]bool{},
		others:    map[string]bool{},

		reminderTypes: map[string]bool{},
	}
	register[CustomerRegistered](r)
	register[CustomerProfileUpdated](r)
	register[CustomerClassified](r)
	register[TeamMemberAssigned](r)
	register[ContactLogged](r)
	register[FollowUpScheduled](r)
	register[ComplaintFiled](r)
	register[ComplaintAssigned](r)
	register[ComplaintAcknowledged](r)
	register[ComplaintEscalated](r)
	register[ComplaintResolved](r)
	register[ComplaintReopened](r)
	register[SurveyRecorded](r)
	register[CustomerChurned](r)
	register[CustomerReactivated](r)
	register[CustomerDataErased](r)
	registerGoalEvents(r)
	register[PurchaseRecorded](r)
	register[PurchaseRefunded](r)
	register[PointsAwarded](r)
	register[PointsRedeemed](r)
	register[PointsRevoked](r)
	// Not customer events: the routing stream's.
	register[ComplaintRoutingSet](r)
	r.others[TypeComplaintRoutingSet] = true
	// Nor are the reminders: their streams' (reminder.go).
	registerReminderEvents(r)
	return r
}

// register maps E's type name to a decoder producing E by value. The type name
// comes from the zero value's EventType, so the name lives in one place.
func register[E Event](r *Registry) {
	var zero E
	r.decoders[zero.EventType()] = func(data []byte) (Event, error) {
		var e E
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, err
		}
		return e, nil
	}
}

// Types lists the current event type names of customer streams, sorted:
// what a read model that folds customers handles. The goal streams' types
// are apart (GoalTypes), and so is the routing stream's (AllTypes lists
// every type), so that no customer projector receives them.
func (r *Registry) Types() []string {
	var out []string
	for t := range r.decoders {
		if !r.goalTypes[t] && !r.others[t] {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// GoalTypes lists the current event type names of goal streams, sorted.
func (r *Registry) GoalTypes() []string {
	return slices.Sorted(maps.Keys(r.goalTypes))
}

// AllTypes lists every current event type name, sorted: those of
// customer streams and those of the routing stream.
func (r *Registry) AllTypes() []string {
	return slices.Sorted(maps.Keys(r.decoders))
}

// RegisterUpcaster adds the upcaster for payloads stored under fromType. A
// current type name cannot have one (it would shadow its decoder) and a type
// name can have only one.
func (r *Registry) RegisterUpcaster(fromType string, up Upcaster) error {
	switch {
	case up == nil:
		return errors.New("domain: nil upcaster")
	case r.decoders[fromType] != nil:
		return fmt.Errorf("domain: %q is a current event type and cannot be upcast", fromType)
	case r.upcasters[fromType] != nil:
		return fmt.Errorf("domain: an upcaster for %q is already registered", fromType)
	}
	r.upcasters[fromType] = up
	return nil
}

// Upcast runs the upcaster chain from typeName until it reaches a type name
// without an upcaster, and returns that name and payload. A chain longer than
// the number of upcasters must loop, and is an error.
func (r *Registry) Upcast(typeName string, data []byte) (string, []byte, error) {
	for steps := 0; ; steps++ {
		up, ok := r.upcasters[typeName]
		if !ok {
			return typeName, data, nil
		}
		if steps >= len(r.upcasters) {
			return "", nil, fmt.Errorf("domain: upcasters loop at %q", typeName)
		}
		next, upcasted, err := up(data)
		if err != nil {
			return "", nil, fmt.Errorf("domain: upcast %q: %w", typeName, err)
		}
		typeName, data = next, upcasted
	}
}

// Decode turns a stored type name and JSON payload into a current event,
// upcasting it first. The event comes back by value, like those Decide
// returns. Unknown JSON fields are ignored, so that a reader deployed before
// a writer can read additive changes. An unknown type is an
// *UnknownEventTypeError.
func (r *Registry) Decode(typeName string, data []byte) (Event, error) {
	current, data, err := r.Upcast(typeName, data)
	if err != nil {
		return nil, err
	}
	decode, ok := r.decoders[current]
	if !ok {
		return nil, &UnknownEventTypeError{Type: current}
	}
	e, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("domain: decode %q: %w", current, err)
	}
	return e, nil
}

// Marshal encodes an event as the JSON payload to store beside its
// EventType. A pointer to an event encodes like the event.
func Marshal(e Event) ([]byte, error) {
	e = valueOf(e)
	if e == nil {
		return nil, errors.New("domain: marshal nil event")
	}
	return json.Marshal(e)
}
