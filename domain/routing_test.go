package domain

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// TestRoutingGivenWhenThen: given the routing stream's events, when
// SetComplaintRouting is decided, then the next version is recorded, or
// nothing when the rules did not change.
func TestRoutingGivenWhenThen(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rules := []RoutingRule{
		{Name: "critical-billing", Severities: []Severity{SeverityCritical}, Categories: []string{" billing "}, Assignee: " alice "},
		{Name: "enterprise", Segments: []string{"enterprise"}, Tiers: []string{"A", "A"}, Pool: []string{"bob", "carol"}},
	}
	// Given nothing, when the rules are set: version 1, trimmed, duplicates
	// in match lists dropped.
	events, err := DecideRouting(Routing{}, SetComplaintRouting{Rules: rules}, now)
	if err != nil || len(events) != 1 {
		t.Fatalf("first set: %v %v", events, err)
	}
	set := events[0].(ComplaintRoutingSet)
	if set.Version != 1 || !set.OccurredAt.Equal(now) || set.Rules[0].Assignee != "alice" || set.Rules[0].Categories[0] != "billing" ||
		!slices.Equal(set.Rules[1].Tiers, []string{"A"}) || set.EventType() != "rapport.ComplaintRoutingSet.v1" {
		t.Fatalf("first set: %+v", set)
	}
	state := EvolveRouting(Routing{}, set)
	if state.Version != 1 || len(state.Rules) != 2 {
		t.Fatalf("state %+v", state)
	}
	// Given version 1, when the same rules come again: nothing.
	if events, err := DecideRouting(state, SetComplaintRouting{Rules: rules}, now); err != nil || len(events) != 0 {
		t.Errorf("same rules: %v %v", events, err)
	}
	// When other rules come: version 2 replaces the list.
	events, err = DecideRouting(state, SetComplaintRouting{Rules: rules[1:]}, now.Add(time.Hour))
	if err != nil || len(events) != 1 || events[0].(ComplaintRoutingSet).Version != 2 {
		t.Fatalf("second set: %v %v", events, err)
	}
	state = EvolveRouting(state, events[0])
	if state.Version != 2 || len(state.Rules) != 1 || state.Rules[0].Name != "enterprise" {
		t.Errorf("state %+v", state)
	}
	// An empty list is a version too: routing switched off.
	events, err = DecideRouting(state, SetComplaintRouting{}, now)
	if err != nil || len(events) != 1 || len(events[0].(ComplaintRoutingSet).Rules) != 0 {
		t.Errorf("no rules: %v %v", events, err)
	}
}

// TestRoutingRulesMatchInOrder: the first rule whose every given list
// holds the complaint's value routes it; an empty list matches anything.
func TestRoutingRulesMatchInOrder(t *testing.T) {
	r := Routing{Version: 3, Rules: []RoutingRule{
		{Name: "critical", Severities: []Severity{SeverityCritical, SeverityHigh}, Categories: []string{"billing"}, Assignee: "alice"},
		{Name: "emea-a", Tiers: []string{"A"}, Regions: []string{"emea"}, Pool: []string{"bob", "carol"}},
		{Name: "smb", Segments: []string{"smb"}, Assignee: "dave"},
	}}
	for _, c := range []struct {
		facts RoutingFacts
		want  string
	}{
		{RoutingFacts{Severity: SeverityHigh, Category: "billing", Segment: "smb", Tier: "A", Region: "emea"}, "critical"},
		{RoutingFacts{Severity: SeverityLow, Category: "billing", Segment: "smb", Tier: "A", Region: "emea"}, "emea-a"},
		{RoutingFacts{Severity: SeverityHigh, Category: "delivery", Segment: "smb", Tier: "B", Region: "emea"}, "smb"},
		{RoutingFacts{Severity: SeverityHigh, Category: "delivery", Segment: "enterprise", Tier: "A", Region: "amer"}, ""},
		{RoutingFacts{Severity: SeverityLow}, ""},
	} {
		rule, i, ok := r.Route(c.facts)
		if c.want == "" {
			if ok {
				t.Errorf("%+v: routed by %s", c.facts, rule.Name)
			}
			continue
		}
		if !ok || rule.Name != c.want || r.Rules[i].Name != c.want {
			t.Errorf("%+v: %q (%v), want %q", c.facts, rule.Name, ok, c.want)
		}
	}
}

// TestRoutingRulesValidation: every bad field is named as it is in the
// body (rules[i].field[j]), all in one answer.
func TestRoutingRulesValidation(t *testing.T) {
	ok := RoutingRule{Name: "r", Assignee: "alice"}
	many := make([]RoutingRule, MaxRoutingRules+1)
	for i := range many {
		many[i] = ok
	}
	for _, c := range []struct {
		name   string
		rules  []RoutingRule
		fields []string
	}{
		{"no name", []RoutingRule{{Assignee: "a"}}, []string{"rules[0].name"}},
		{"a name with a colon", []RoutingRule{{Name: "a:b", Assignee: "a"}}, []string{"rules[0].name"}},
		{"the same name twice", []RoutingRule{ok, ok}, []string{"rules[1].name"}},
		{"neither assignee nor pool", []RoutingRule{{Name: "r"}}, []string{"rules[0].assignee"}},
		{"both", []RoutingRule{{Name: "r", Assignee: "a", Pool: []string{"b"}}}, []string{"rules[0].pool"}},
		{"a blank pool member", []RoutingRule{{Name: "r", Pool: []string{"b", " "}}}, []string{"rules[0].pool[1]"}},
		{"a pool member twice", []RoutingRule{{Name: "r", Pool: []string{"b", "b"}}}, []string{"rules[0].pool[1]"}},
		{"unknown severity", []RoutingRule{ok, {Name: "s", Severities: []Severity{"urgent"}, Assignee: "a"}}, []string{"rules[1].severities[0]"}},
		{"unknown tier", []RoutingRule{{Name: "r", Tiers: []string{"D"}, Assignee: "a"}}, []string{"rules[0].tiers[0]"}},
		{"a control character", []RoutingRule{{Name: "r", Categories: []string{"bill\x00ing"}, Assignee: "a"}}, []string{"rules[0].categories[0]"}},
		{"a segment too long", []RoutingRule{{Name: "r", Segments: []string{string(make([]byte, MaxLabelLength+1))}, Assignee: "a"}}, []string{"rules[0].segments[0]"}},
		{"too many rules", many, []string{"rules"}},
		{"several at once", []RoutingRule{{Name: "", Regions: []string{""}}}, []string{"rules[0].name", "rules[0].regions[0]", "rules[0].assignee"}},
	} {
		_, err := DecideRouting(Routing{}, SetComplaintRouting{Rules: c.rules}, time.Now())
		var de *Error
		if !errors.As(err, &de) || de.Code != CodeInvalid {
			t.Errorf("%s: %v, want invalid", c.name, err)
			continue
		}
		for _, field := range c.fields {
			if !de.HasField(field) {
				t.Errorf("%s: %v does not name %s", c.name, de.Fields, field)
			}
		}
		if len(de.Fields) != len(c.fields) {
			t.Errorf("%s: %v, want %v", c.name, de.Fields, c.fields)
		}
	}
}

// TestRoutingEventIsNotACustomerEvent: the registry decodes
// ComplaintRoutingSet, but Types (what customer streams may hold) does
// not list it.
func TestRoutingEventIsNotACustomerEvent(t *testing.T) {
	r := NewRegistry()
	if slices.Contains(r.Types(), TypeComplaintRoutingSet) || !slices.Contains(r.AllTypes(), TypeComplaintRoutingSet) {
		t.Fatalf("Types %v, AllTypes %v", r.Types(), r.AllTypes())
	}
	data, err := Marshal(ComplaintRoutingSet{Version: 2, Rules: []RoutingRule{{Name: "r", Pool: []string{"a", "b"}}}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := r.Decode(TypeComplaintRoutingSet, data)
	if err != nil || e.(ComplaintRoutingSet).Version != 2 || e.(ComplaintRoutingSet).Rules[0].Pool[1] != "b" {
		t.Fatalf("decode: %+v %v", e, err)
	}
}
