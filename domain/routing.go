package domain

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// RoutingStream is the stream of the complaint routing rules: one stream
// for the deployment, versioned by its ComplaintRoutingSet events. It is
// not a customer stream: projectors (which read "customer-" streams) never
// see it, and Types() does not list its event.
const RoutingStream = "routing-complaints"

// TypeComplaintRoutingSet is the stored type name of ComplaintRoutingSet.
const TypeComplaintRoutingSet = "rapport.ComplaintRoutingSet.v1"

// Limits of a routing rule set.
const (
	MaxRoutingRules = 100
	MaxRoutingPool  = 50
	// MaxRoutingMatch bounds each list of values a rule matches.
	MaxRoutingMatch = 50
)

// RoutingRule routes a filed complaint that matches it to a named owner.
// A rule matches when every list it gives contains the complaint's value
// (severity, category) or its customer's (segment, tier, region, as
// classified when the complaint is routed); an empty list matches
// anything. It names exactly one of Assignee (always that member) and Pool
// (members taken in turn, round robin).
type RoutingRule struct {
	Name       string     `json:"name"`
	Severities []Severity `json:"severities,omitempty"`
	Categories []string   `json:"categories,omitempty"`
	Segments   []string   `json:"segments,omitempty"`
	Tiers      []string   `json:"tiers,omitempty"`
	Regions    []string   `json:"regions,omitempty"`
	Assignee   string     `json:"assignee,omitempty"`
	Pool       []string   `json:"pool,omitempty"`
}

// RoutingFacts are what a rule matches on.
type RoutingFacts struct {
	Severity                        Severity
	Category, Segment, Tier, Region string
}

// Matches says whether the rule routes a complaint with these facts.
func (r RoutingRule) Matches(f RoutingFacts) bool {
	in := func(list []string, v string) bool { return len(list) == 0 || slices.Contains(list, v) }
	return (len(r.Severities) == 0 || slices.Contains(r.Severities, f.Severity)) &&
		in(r.Categories, f.Category) && in(r.Segments, f.Segment) && in(r.Tiers, f.Tier) && in(r.Regions, f.Region)
}

// SetComplaintRouting replaces the routing rules with a new version.
type SetComplaintRouting struct {
	Rules []RoutingRule // rules: in order, the first that matches routes
}

func (SetComplaintRouting) isCommand() {}

// ComplaintRoutingSet records a version of the routing rules: version 1
// is the first set, each later one replaces the whole list.
type ComplaintRoutingSet struct {
	Version    int           `json:"version"`
	Rules      []RoutingRule `json:"rules"`
	OccurredAt time.Time     `json:"occurred_at"`
}

func (ComplaintRoutingSet) EventType() string         { return TypeComplaintRoutingSet }
func (e ComplaintRoutingSet) BusinessTime() time.Time { return e.OccurredAt }
func (ComplaintRoutingSet) isEvent()                  {}

// Routing is the state of the routing stream: the current version (0
// before any) and its rules.
type Routing struct {
	Version int
	Rules   []RoutingRule
}

// Route returns the first rule that matches, and its index; ok is false
// when none does (the complaint stays unassigned).
func (r Routing) Route(f RoutingFacts) (rule RoutingRule, index int, ok bool) {
	for i, rule := range r.Rules {
		if rule.Matches(f) {
			return rule, i, true
		}
	}
	return RoutingRule{}, -1, false
}

// DecideRouting decides SetComplaintRouting: the rules are checked (a 422
// names each bad field as rules[i].field) and, when they differ from the
// current ones, recorded as the next version. The same rules again are a
// no-op: nothing is appended.
func DecideRouting(state Routing, cmd SetComplaintRouting, now time.Time) ([]Event, error) {
	rules, err := cmd.normalized()
	if err != nil {
		return nil, err
	}
	if state.Version > 0 && sameRules(state.Rules, rules) {
		return nil, nil
	}
	return []Event{ComplaintRoutingSet{Version: state.Version + 1, Rules: rules, OccurredAt: now}}, nil
}

// EvolveRouting folds a routing event into the state.
func EvolveRouting(state Routing, e Event) Routing {
	if set, ok := valueOf(e).(ComplaintRoutingSet); ok {
		return Routing{Version: set.Version, Rules: slices.Clone(set.Rules)}
	}
	return state
}

func sameRules(a, b []RoutingRule) bool {
	return slices.EqualFunc(a, b, func(x, y RoutingRule) bool {
		return x.Name == y.Name && slices.Equal(x.Severities, y.Severities) && slices.Equal(x.Categories, y.Categories) &&
			slices.Equal(x.Segments, y.Segments) && slices.Equal(x.Tiers, y.Tiers) && slices.Equal(x.Regions, y.Regions) &&
			x.Assignee == y.Assignee && slices.Equal(x.Pool, y.Pool)
	})
}

// normalized trims and checks the rules; the field names are those of
// the HTTP body (rules[2].pool[0]).
func (cmd SetComplaintRouting) normalized() ([]RoutingRule, error) {
	var f fieldErrors
	if len(cmd.Rules) > MaxRoutingRules {
		f.add("rules", "must hold at most %d rules", MaxRoutingRules)
		return nil, f.err()
	}
	out := make([]RoutingRule, len(cmd.Rules))
	names := map[string]int{}
	for i, r := range cmd.Rules {
		at := func(field string) string { return fmt.Sprintf("rules[%d].%s", i, field) }
		n := RoutingRule{Name: f.label(at("name"), r.Name)}
		if prev, dup := names[n.Name]; dup && n.Name != "" {
			f.add(at("name"), "repeats the name of rules[%d]", prev)
		}
		names[n.Name] = i
		if n.Name != "" && strings.ContainsAny(n.Name, ": ") {
			f.add(at("name"), "must not hold a colon or a space (it names the rule in the actor routing:v<N>:<name>)")
		}
		list := func(field string, values []string, check func(field, v string) string) []string {
			if len(values) > MaxRoutingMatch {
				f.add(at(field), "must hold at most %d values", MaxRoutingMatch)
				return nil
			}
			var vs []string
			for j, v := range values {
				v = check(fmt.Sprintf("%s[%d]", at(field), j), v)
				if !slices.Contains(vs, v) {
					vs = append(vs, v)
				}
			}
			return vs
		}
		for j, s := range r.Severities {
			if !s.Valid() {
				f.add(fmt.Sprintf("%s[%d]", at("severities"), j), "must be one of low, medium, high, critical")
			} else if !slices.Contains(n.Severities, s) {
				n.Severities = append(n.Severities, s)
			}
		}
		if len(r.Severities) > MaxRoutingMatch {
			f.add(at("severities"), "must hold at most %d values", MaxRoutingMatch)
		}
		short := func(field, v string) string { return f.required(field, v, MaxShortTextLength) }
		n.Categories = list("categories", r.Categories, short)
		n.Segments = list("segments", r.Segments, f.label)
		n.Tiers = list("tiers", r.Tiers, f.tier)
		n.Regions = list("regions", r.Regions, f.label)
		switch {
		case strings.TrimSpace(r.Assignee) != "" && len(r.Pool) > 0:
			f.add(at("pool"), "must not be given with an assignee: name one of assignee and pool")
		case strings.TrimSpace(r.Assignee) != "":
			n.Assignee = short(at("assignee"), r.Assignee)
		case len(r.Pool) == 0:
			f.add(at("assignee"), "is required unless a pool is given")
		case len(r.Pool) > MaxRoutingPool:
			f.add(at("pool"), "must hold at most %d members", MaxRoutingPool)
		default:
			for j, m := range r.Pool {
				m = short(fmt.Sprintf("%s[%d]", at("pool"), j), m)
				if slices.Contains(n.Pool, m) {
					f.add(fmt.Sprintf("%s[%d]", at("pool"), j), "repeats a member of the pool")
				}
				n.Pool = append(n.Pool, m)
			}
		}
		out[i] = n
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	return out, nil
}
