package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The fixed clock and ids the scenarios share. t0 is when the customer
// registered; now is when the command under test is decided.
var (
	t0  = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	now = t0.Add(72 * time.Hour)

	customerID  = uuid.MustParse("6f1c2a9e-2f55-4c0e-9d4b-0a8c5d1e7b01")
	complaintID = uuid.MustParse("0b6b4b61-5a62-4d8e-a7d9-5c2a8f2d9e02")
	otherID     = uuid.MustParse("a3d5e7f9-1b2c-4d3e-8f4a-5b6c7d8e9f03")
	contactID   = uuid.MustParse("c0de0000-0000-4000-8000-000000000004")
	followUpID  = uuid.MustParse("f0110000-0000-4000-8000-000000000005")
	surveyID    = uuid.MustParse("5e440000-0000-4000-8000-000000000006")
)

// at returns a time offset from t0.
func at(d time.Duration) time.Time { return t0.Add(d) }

// registered is the event every scenario starts from.
func registered() CustomerRegistered {
	return CustomerRegistered{
		CustomerID: customerID,
		Name:       "Ada Lovelace",
		Email:      "ada@example.com",
		Phone:      "+44 20 7946 0958",
		Company:    "Analytical Engines",
		Tags:       []string{"vip"},
		Segment:    "enterprise",
		Tier:       "A",
		Region:     "emea",
		Industry:   "computing",
		OccurredAt: t0,
	}
}

func filed(id uuid.UUID, when time.Time) ComplaintFiled {
	return ComplaintFiled{
		ComplaintID: id,
		Category:    "billing",
		Severity:    SeverityHigh,
		Description: "charged twice",
		Channel:     ChannelEmail,
		OccurredAt:  when,
	}
}

func acknowledged(id uuid.UUID, when time.Time) ComplaintAcknowledged {
	return ComplaintAcknowledged{ComplaintID: id, By: "sam", Note: "looking into it", OccurredAt: when}
}

func escalated(id uuid.UUID, when time.Time) ComplaintEscalated {
	return ComplaintEscalated{ComplaintID: id, To: "billing-lead", Reason: "refund above limit", OccurredAt: when}
}

func resolved(id uuid.UUID, when time.Time) ComplaintResolved {
	return ComplaintResolved{ComplaintID: id, By: "sam", Resolution: "refunded", OccurredAt: when}
}

func reopened(id uuid.UUID, when time.Time) ComplaintReopened {
	return ComplaintReopened{ComplaintID: id, Reason: "charged again", OccurredAt: when}
}

func erased(when time.Time) CustomerDataErased {
	return CustomerDataErased{Reason: "GDPR art. 17 request", OccurredAt: when}
}

// scenarioRun is a given-when-then test of Decide: given past events, when a
// command is decided at a time, then these events or this error.
type scenarioRun struct {
	t       *testing.T
	history []Event
	now     time.Time
}

func scenario(t *testing.T) *scenarioRun {
	t.Helper()
	return &scenarioRun{t: t, now: now}
}

func (s *scenarioRun) given(events ...Event) *scenarioRun {
	s.history = append(s.history, events...)
	return s
}

type outcome struct {
	t      *testing.T
	state  Customer
	events []Event
	err    error
}

// when decides cmd against the folded history, and checks on the way that
// Decide left the state it was given untouched.
func (s *scenarioRun) when(cmd Command) *outcome {
	s.t.Helper()
	state := Fold(s.history...)
	before := snapshot(s.t, state)
	events, err := Decide(state, cmd, s.now)
	if after := snapshot(s.t, state); after != before {
		s.t.Fatalf("Decide changed the state it was given:\nbefore %s\nafter  %s", before, after)
	}
	return &outcome{t: s.t, state: state, events: events, err: err}
}

// then expects exactly these events, and checks that each survives the
// store's round trip and applies to the state.
func (o *outcome) then(want ...Event) {
	o.t.Helper()
	if o.err != nil {
		o.t.Fatalf("want events, got error %v", o.err)
	}
	if len(want) == 0 {
		if len(o.events) != 0 {
			o.t.Fatalf("want no events, got %s", describe(o.t, o.events))
		}
		return
	}
	if !reflect.DeepEqual(o.events, want) {
		o.t.Fatalf("events differ:\ngot  %s\nwant %s", describe(o.t, o.events), describe(o.t, want))
	}
	registry := NewRegistry()
	state := o.state
	for _, e := range o.events {
		data, err := Marshal(e)
		if err != nil {
			o.t.Fatalf("marshal %s: %v", e.EventType(), err)
		}
		decoded, err := registry.Decode(e.EventType(), data)
		if err != nil {
			o.t.Fatalf("decode %s: %v", e.EventType(), err)
		}
		if !reflect.DeepEqual(decoded, e) {
			o.t.Fatalf("%s does not survive a round trip:\ngot  %s\nwant %s", e.EventType(), describe(o.t, []Event{decoded}), describe(o.t, []Event{e}))
		}
		state = Evolve(state, e)
	}
}

// thenNothing expects a no-op: no events and no error.
func (o *outcome) thenNothing() {
	o.t.Helper()
	o.then()
}

// thenError expects a rejection with this code and reason.
func (o *outcome) thenError(code Code, reason string) *Error {
	o.t.Helper()
	if o.err == nil {
		o.t.Fatalf("want %s/%s, got events %s", code, reason, describe(o.t, o.events))
	}
	var domainErr *Error
	if !errors.As(o.err, &domainErr) {
		o.t.Fatalf("want *Error, got %T: %v", o.err, o.err)
	}
	if domainErr.Code != code || domainErr.Reason != reason {
		o.t.Fatalf("want %s/%s, got %s/%s: %v", code, reason, domainErr.Code, domainErr.Reason, o.err)
	}
	if len(o.events) != 0 {
		o.t.Fatalf("an error must come without events, got %s", describe(o.t, o.events))
	}
	return domainErr
}

// thenFieldError expects an invalid command naming at least these fields.
func (o *outcome) thenFieldError(fields ...string) {
	o.t.Helper()
	domainErr := o.thenError(CodeInvalid, ReasonInvalidFields)
	for _, field := range fields {
		if !domainErr.HasField(field) {
			o.t.Fatalf("want field %q named, got %+v", field, domainErr.Fields)
		}
	}
	for _, f := range domainErr.Fields {
		if f.Message == "" {
			o.t.Fatalf("field %q has no message", f.Field)
		}
	}
}

func snapshot(t *testing.T, c Customer) string {
	t.Helper()
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func describe(t *testing.T, events []Event) string {
	t.Helper()
	s := "["
	for i, e := range events {
		if i > 0 {
			s += ", "
		}
		data, err := Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		s += e.EventType() + string(data)
	}
	return s + "]"
}

// typeName names a value's type without its package, for subtest names.
func typeName(v any) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", v), "domain.")
}
