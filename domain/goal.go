package domain

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Goals (PRODUCT.md "Goals"): measurable targets an analyst sets on one of
// the analytics figures, for a period and optionally a scope. A goal is not
// a customer: it lives in its own stream, goal-<uuid>, with the same stored
// format (metadata, actor, causation, hash chain) so that its history is
// audited like a customer's. Goal events carry no personal data: a goal's
// name and a closing reason are about the team's work, not about a person,
// so they are stored in clear and never shredded.

// goalStreamPrefix is the stream category of goals ("goal" to EventStoreDB).
const goalStreamPrefix = "goal-"

// GoalStreamPrefix is the prefix every goal stream has, for subscriptions
// that follow goals.
const GoalStreamPrefix = goalStreamPrefix

// GoalStreamName is the name of the stream of one goal: "goal-<uuid>".
func GoalStreamName(id uuid.UUID) string { return goalStreamPrefix + id.String() }

// GoalIDFromStream is the inverse of GoalStreamName; like
// CustomerIDFromStream it accepts only the exact form GoalStreamName makes.
func GoalIDFromStream(stream string) (uuid.UUID, bool) {
	raw, found := strings.CutPrefix(stream, goalStreamPrefix)
	if !found {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(raw)
	if err != nil || id == uuid.Nil || id.String() != raw {
		return uuid.Nil, false
	}
	return id, true
}

// Comparator says on which side of its target a goal's figure must end.
type Comparator string

const (
	AtLeast Comparator = "at_least"
	AtMost  Comparator = "at_most"
)

// Valid reports whether c is a known comparator.
func (c Comparator) Valid() bool { return c == AtLeast || c == AtMost }

// Meets reports whether value is on the goal's side of target.
func (c Comparator) Meets(value, target float64) bool {
	if c == AtMost {
		return value <= target
	}
	return value >= target
}

// GoalFigure is a figure a goal can be set on: its name in the analytics
// answers (PRODUCT.md "Request and response bodies") and the range its
// values take by definition (PRODUCT.md "Definitions"), which bounds a
// target. Counts and durations have no upper bound (Max is +Inf).
type GoalFigure struct {
	Name     string
	Min, Max float64
}

// goalFigures are the figures of the analytics answers, with their ranges:
// rates and shares are percentages 0–100 (complaint rate included, as the
// product defines it), NPS −100…100, average CSAT 1–5, counts and medians
// (seconds) 0 and up.
var goalFigures = []GoalFigure{
	{"csat_pct", 0, 100},
	{"csat_avg", 1, 5},
	{"nps", -100, 100},
	{"responses", 0, math.Inf(1)},
	{"churn_rate", 0, 100},
	{"retention_rate", 0, 100},
	{"complaint_rate", 0, 100},
	{"resolution_rate", 0, 100},
	{"first_response_median_s", 0, math.Inf(1)},
	{"resolution_median_s", 0, math.Inf(1)},
	{"sla_breaches", 0, math.Inf(1)},
	{"contact_coverage", 0, 100},
	{"follow_ups_overdue", 0, math.Inf(1)},
}

// GoalFigures lists the figures goals can be set on, in the analytics
// answers' order.
func GoalFigures() []GoalFigure { return slices.Clone(goalFigures) }

// LookupGoalFigure returns the figure of that name.
func LookupGoalFigure(name string) (GoalFigure, bool) {
	for _, f := range goalFigures {
		if f.Name == name {
			return f, true
		}
	}
	return GoalFigure{}, false
}

// GoalScope narrows a goal to the customers of one group: at most one of
// its fields is set (none: every customer). The groups are the analytics
// groupings, so a scoped goal's figure is the figure of that group.
type GoalScope struct {
	Segment string `json:"segment,omitempty"`
	Tier    string `json:"tier,omitempty"`
	Region  string `json:"region,omitempty"`
	// Owner is an account manager.
	Owner string `json:"owner,omitempty"`
}

// Attribute returns the grouping the scope names and its value; "" for
// an unscoped goal.
func (s GoalScope) Attribute() (attribute, value string) {
	switch {
	case s.Segment != "":
		return "segment", s.Segment
	case s.Tier != "":
		return "tier", s.Tier
	case s.Region != "":
		return "region", s.Region
	case s.Owner != "":
		return "owner", s.Owner
	}
	return "", ""
}

// Goal is the state of one goal, folded from its events by EvolveGoal.
type Goal struct {
	ID         uuid.UUID
	Set        bool
	Name       string
	Figure     string
	Comparator Comparator
	Target     float64
	// From and To bound the period [From, To) in which the goal must be met.
	From, To    time.Time
	Scope       GoalScope
	SetAt       time.Time
	RevisedAt   time.Time
	Closed      bool
	ClosedAt    time.Time
	CloseReason string
}

// GoalCommand is a request to change one goal. Sealed like Command, so that
// DecideGoal is total over the goal commands.
type GoalCommand interface{ isGoalCommand() }

// SetGoal sets a new goal. GoalID is set by the application layer, derived
// from the command id like every created id. Field comments give the
// request-body names used in field errors.
type SetGoal struct {
	GoalID     uuid.UUID  // goal_id
	Name       string     // name: required, at most 200 characters
	Figure     string     // figure: one of GoalFigures
	Comparator Comparator // comparator: at_least or at_most
	Target     *float64   // target: required, within the figure's range
	From       *time.Time // from: required
	To         *time.Time // to: required, after from
	Scope      GoalScope  // scope: at most one of segment, tier, region, owner
}

// ReviseGoal changes an open goal; nil means "leave as is" and at least one
// field must be given. The figure is what the goal is about and cannot be
// revised: a goal on another figure is another goal.
type ReviseGoal struct {
	Name       *string     // name
	Comparator *Comparator // comparator
	Target     *float64    // target
	From       *time.Time  // from
	To         *time.Time  // to
	Scope      *GoalScope  // scope (an empty scope: every customer)
}

// CloseGoal ends a goal: it stays in the history and the list of closed
// goals, and no command changes it any more.
type CloseGoal struct {
	Reason string // reason: optional
}

func (SetGoal) isGoalCommand()    {}
func (ReviseGoal) isGoalCommand() {}
func (CloseGoal) isGoalCommand()  {}

// The stored type names of the goal events.
const (
	TypeGoalSet     = "rapport.GoalSet.v1"
	TypeGoalRevised = "rapport.GoalRevised.v1"
	TypeGoalClosed  = "rapport.GoalClosed.v1"
)

// GoalSet opens a goal's stream with everything the goal is.
type GoalSet struct {
	GoalID     uuid.UUID  `json:"goal_id"`
	Name       string     `json:"name"`
	Figure     string     `json:"figure"`
	Comparator Comparator `json:"comparator"`
	Target     float64    `json:"target"`
	From       time.Time  `json:"from"`
	To         time.Time  `json:"to"`
	Scope      GoalScope  `json:"scope"`
	OccurredAt time.Time  `json:"occurred_at"`
}

// GoalRevised records only what a revision changed; nil is unchanged.
type GoalRevised struct {
	Name       *string     `json:"name,omitempty"`
	Comparator *Comparator `json:"comparator,omitempty"`
	Target     *float64    `json:"target,omitempty"`
	From       *time.Time  `json:"from,omitempty"`
	To         *time.Time  `json:"to,omitempty"`
	Scope      *GoalScope  `json:"scope,omitempty"`
	OccurredAt time.Time   `json:"occurred_at"`
}

// GoalClosed ends a goal.
type GoalClosed struct {
	Reason     string    `json:"reason"`
	OccurredAt time.Time `json:"occurred_at"`
}

func (GoalSet) EventType() string     { return TypeGoalSet }
func (GoalRevised) EventType() string { return TypeGoalRevised }
func (GoalClosed) EventType() string  { return TypeGoalClosed }

func (e GoalSet) BusinessTime() time.Time     { return e.OccurredAt }
func (e GoalRevised) BusinessTime() time.Time { return e.OccurredAt }
func (e GoalClosed) BusinessTime() time.Time  { return e.OccurredAt }

func (GoalSet) isEvent()     {}
func (GoalRevised) isEvent() {}
func (GoalClosed) isEvent()  {}

// Reasons of the goal rejections.
const (
	ReasonGoalNotFound = "goal_not_found"
	ReasonGoalExists   = "goal_exists"
	ReasonGoalClosed   = "goal_closed"
)

// registerGoalEvents adds the goal events to r, marked as goal-stream types
// so that Types (the customer streams' types, which the customer read
// models handle) leaves them out.
func registerGoalEvents(r *Registry) {
	register[GoalSet](r)
	register[GoalRevised](r)
	register[GoalClosed](r)
	for _, t := range []string{TypeGoalSet, TypeGoalRevised, TypeGoalClosed} {
		r.goalTypes[t] = true
	}
}
