package domain

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
)

// sampleEvents has one event of every type, with every field set, in an order
// that is a valid history.
func sampleEvents() []Event {
	return append(append([]Event{
		registered(),
		CustomerProfileUpdated{Name: ptr("Ada King"), Email: ptr("ada@king.example"), Phone: ptr("555 0100"), Company: ptr("Babbage & Co"), Tags: &[]string{"vip", "beta"}, OccurredAt: at(1 * time.Hour)},
		CustomerClassified{Segment: ptr("smb"), Tier: ptr("B"), Region: ptr("apac"), Industry: ptr("retail"), OccurredAt: at(2 * time.Hour)},
		TeamMemberAssigned{Role: RoleAccountManager, Member: "maria", PreviousMember: "", OccurredAt: at(3 * time.Hour)},
		FollowUpScheduled{FollowUpID: followUpID, DueAt: at(48 * time.Hour), By: "maria", Note: "send the quote", OccurredAt: at(4 * time.Hour)},
		ContactLogged{ContactID: contactID, Channel: ChannelPhone, Direction: DirectionOutbound, Summary: "quote sent", By: "maria", OccurredAt: at(5 * time.Hour)},
		filed(complaintID, at(6*time.Hour)),
		ComplaintAssigned{ComplaintID: complaintID, Assignee: "kim", OccurredAt: at(7 * time.Hour)},
		acknowledged(complaintID, at(8*time.Hour)),
		escalated(complaintID, at(9*time.Hour)),
		resolved(complaintID, at(10*time.Hour)),
		reopened(complaintID, at(11*time.Hour)),
		SurveyRecorded{SurveyID: surveyID, CSAT: ptr(2), NPS: ptr(5), Comment: "slow", Channel: ChannelEmail, ComplaintID: ptr(complaintID), OccurredAt: at(12 * time.Hour)},
		CustomerChurned{Reason: "too slow", OccurredAt: at(13 * time.Hour)},
		CustomerReactivated{Reason: "won back", OccurredAt: at(14 * time.Hour)},
	}, valueSampleEvents()...), erased(at(15*time.Hour)))
}

func TestFoldBuildsTheState(t *testing.T) {
	events := sampleEvents()
	beforeErasure := Fold(events[:len(events)-1]...)

	want := Customer{
		ID:         customerID,
		Registered: true,
		Status:     StatusActive,
		Name:       "Ada King", Email: "ada@king.example", Phone: "555 0100", Company: "Babbage & Co",
		Tags:    []string{"vip", "beta"},
		Segment: "smb", Tier: "B", Region: "apac", Industry: "retail",
		Team:          map[Role]string{RoleAccountManager: "maria"},
		RegisteredAt:  t0,
		LastContactAt: at(5 * time.Hour),
		ActiveSince:   at(14 * time.Hour), // the reactivation
		Complaints: []Complaint{{
			ID: complaintID, Category: "billing", Severity: SeverityHigh, Description: "charged twice", Channel: ChannelEmail,
			Status: ComplaintStatusReopened, Assignee: "kim",
			FiledAt: at(6 * time.Hour), OpenedAt: at(11 * time.Hour),
			Openings: 2, Escalations: 1,
		}},
		FollowUps: []FollowUp{{
			ID: followUpID, DueAt: at(48 * time.Hour), By: "maria", Note: "send the quote",
			ScheduledAt: at(4 * time.Hour), Done: true, DoneAt: at(5 * time.Hour),
		}},
		Surveys:  SurveySummary{Count: 1, LastCSAT: ptr(2), LastCSATAt: at(12 * time.Hour), LastNPS: ptr(5), LastNPSAt: at(12 * time.Hour)},
		recorded: recordedIDs{contacts: idSet{}.with(contactID), surveys: idSet{}.with(surveyID)},
		Value:    valueSampleState(),
	}
	if !reflect.DeepEqual(beforeErasure, want) {
		t.Fatalf("state differs:\ngot  %s\nwant %s", snapshot(t, beforeErasure), snapshot(t, want))
	}
	if beforeErasure.OpenComplaints() != 1 {
		t.Fatalf("open complaints %d", beforeErasure.OpenComplaints())
	}
}

func TestFoldIsEvolveInSequence(t *testing.T) {
	var c Customer
	for _, e := range sampleEvents() {
		c = Evolve(c, e)
	}
	if !reflect.DeepEqual(c, Fold(sampleEvents()...)) {
		t.Fatal("Fold differs from successive Evolve")
	}
	if !reflect.DeepEqual(Fold(), Customer{}) {
		t.Fatal("Fold of nothing must be the zero customer")
	}
}

func TestErasureClearsPersonalDataAndKeepsTheFigures(t *testing.T) {
	events := sampleEvents()
	before := Fold(events[:len(events)-1]...)
	after := Fold(events...)

	want := before
	want.Status = StatusErased
	want.ErasedAt = at(15 * time.Hour)
	want.Name, want.Email, want.Phone, want.Company, want.Tags = "", "", "", "", nil
	want.Complaints = []Complaint{before.Complaints[0]}
	want.Complaints[0].Description = ""
	want.FollowUps = []FollowUp{before.FollowUps[0]}
	want.FollowUps[0].Note = ""
	if !reflect.DeepEqual(after, want) {
		t.Fatalf("erased state differs:\ngot  %s\nwant %s", snapshot(t, after), snapshot(t, want))
	}
	if before.Complaints[0].Description == "" || before.FollowUps[0].Note == "" {
		t.Fatal("erasing changed the state it was applied to")
	}
}

func TestErasureKeepsTheChurnDate(t *testing.T) {
	c := Fold(registered(), CustomerChurned{Reason: "budget", OccurredAt: at(time.Hour)}, erased(at(2*time.Hour)))
	if c.Status != StatusErased || !c.ChurnedAt.Equal(at(time.Hour)) || !c.ErasedAt.Equal(at(2*time.Hour)) {
		t.Fatalf("status %s churned %v erased %v", c.Status, c.ChurnedAt, c.ErasedAt)
	}
}

// Callers cache states: evolving a state along any event must leave the
// original exactly as it was.
func TestEvolveDoesNotChangeItsInput(t *testing.T) {
	events := sampleEvents()
	for i, e := range events {
		t.Run(typeName(e), func(t *testing.T) {
			cached := Fold(events[:i]...)
			before := snapshot(t, cached)
			_ = Evolve(cached, e)
			if after := snapshot(t, cached); after != before {
				t.Fatalf("evolving changed the cached state:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// Two branches from one cached state must not see each other, even when the
// slices have spare capacity that an append could write into.
func TestEvolveBranchesDoNotAlias(t *testing.T) {
	base := Fold(registered(), filed(complaintID, at(time.Hour)))
	base.Complaints = append(make([]Complaint, 0, 8), base.Complaints...)
	base.FollowUps = make([]FollowUp, 0, 8)

	a := Evolve(Evolve(base, filed(otherID, at(2*time.Hour))), FollowUpScheduled{FollowUpID: followUpID, OccurredAt: at(2 * time.Hour)})
	b := Evolve(Evolve(base, filed(uuid.New(), at(3*time.Hour))), FollowUpScheduled{FollowUpID: uuid.New(), OccurredAt: at(3 * time.Hour)})
	if a.Complaints[1].ID != otherID || a.FollowUps[0].ID != followUpID {
		t.Fatal("a later branch overwrote an earlier one")
	}
	if len(base.Complaints) != 1 || len(b.Complaints) != 2 {
		t.Fatal("branches changed the base")
	}

	team := Evolve(base, TeamMemberAssigned{Role: RoleSales, Member: "lee"})
	other := Evolve(team, TeamMemberAssigned{Role: RoleSales, Member: "kim"})
	if team.Team[RoleSales] != "lee" || other.Team[RoleSales] != "kim" {
		t.Fatal("team map shared between states")
	}
}

// The state keeps its own copies of what events hand it.
func TestEvolveDoesNotShareMemoryWithEvents(t *testing.T) {
	e := registered()
	c := Evolve(Customer{}, e)
	e.Tags[0] = "changed"
	update := CustomerProfileUpdated{Tags: &[]string{"a"}}
	c2 := Evolve(c, update)
	(*update.Tags)[0] = "changed"
	if c.Tags[0] != "vip" || c2.Tags[0] != "a" {
		t.Fatalf("state shares tags with events: %v %v", c.Tags, c2.Tags)
	}
}

type unknownEvent struct{}

func (unknownEvent) EventType() string       { return "rapport.Unknown.v1" }
func (unknownEvent) BusinessTime() time.Time { return time.Time{} }
func (unknownEvent) isEvent()                {}

func TestEvolveIgnoresWhatItDoesNotKnow(t *testing.T) {
	c := Fold(sampleEvents()[:8]...)
	for _, e := range []Event{unknownEvent{}, nil, (*ContactLogged)(nil)} {
		if !reflect.DeepEqual(Evolve(c, e), c) {
			t.Fatalf("%T changed the state", e)
		}
	}
	// Events about a complaint that does not exist change nothing either.
	if !reflect.DeepEqual(Evolve(c, resolved(otherID, now)), c) {
		t.Fatal("an event for an unknown complaint changed the state")
	}
}

func TestEvolveAcceptsPointersToEvents(t *testing.T) {
	e := registered()
	if !reflect.DeepEqual(Evolve(Customer{}, &e), Evolve(Customer{}, e)) {
		t.Fatal("a pointer event evolves differently")
	}
}

func TestComplaintTimingsUseTheLastOpening(t *testing.T) {
	c := Fold(registered(),
		filed(complaintID, at(1*time.Hour)),
		acknowledged(complaintID, at(2*time.Hour)),
		resolved(complaintID, at(5*time.Hour)),
	)
	complaint, _ := c.Complaint(complaintID)
	if d, ok := complaint.FirstResponseTime(); !ok || d != time.Hour {
		t.Fatalf("first response %v %v", d, ok)
	}
	if d, ok := complaint.ResolutionTime(); !ok || d != 4*time.Hour {
		t.Fatalf("resolution %v %v", d, ok)
	}

	c = Evolve(c, reopened(complaintID, at(10*time.Hour)))
	complaint, _ = c.Complaint(complaintID)
	if _, ok := complaint.FirstResponseTime(); ok {
		t.Fatal("a reopened complaint starts unacknowledged")
	}
	if _, ok := complaint.ResolutionTime(); ok {
		t.Fatal("a reopened complaint is unresolved")
	}
	if !complaint.AcknowledgedAt.IsZero() || !complaint.ResolvedAt.IsZero() || !complaint.FiledAt.Equal(at(time.Hour)) {
		t.Fatalf("reopening must reset the opening's timings only: %+v", complaint)
	}

	c = Fold(append([]Event{}, registered(), filed(complaintID, at(1*time.Hour)), resolved(complaintID, at(5*time.Hour)),
		reopened(complaintID, at(10*time.Hour)), acknowledged(complaintID, at(10*time.Hour+30*time.Minute)), resolved(complaintID, at(12*time.Hour)))...)
	complaint, _ = c.Complaint(complaintID)
	if d, _ := complaint.FirstResponseTime(); d != 30*time.Minute {
		t.Fatalf("first response of the last opening %v", d)
	}
	if d, _ := complaint.ResolutionTime(); d != 2*time.Hour {
		t.Fatalf("resolution of the last opening %v", d)
	}
}

func TestAcknowledgingAnEscalatedComplaintKeepsItEscalated(t *testing.T) {
	c := Fold(registered(), filed(complaintID, at(time.Hour)), escalated(complaintID, at(2*time.Hour)), acknowledged(complaintID, at(3*time.Hour)))
	complaint, _ := c.Complaint(complaintID)
	if complaint.Status != ComplaintStatusEscalated || !complaint.Acknowledged {
		t.Fatalf("complaint %+v", complaint)
	}
}

func TestFollowUpIsDoneOnlyByALaterContact(t *testing.T) {
	schedule := FollowUpScheduled{FollowUpID: followUpID, DueAt: at(48 * time.Hour), By: "maria", OccurredAt: at(10 * time.Hour)}
	contactAt := func(when time.Time) ContactLogged {
		return ContactLogged{ContactID: uuid.New(), Channel: ChannelEmail, Direction: DirectionOutbound, Summary: "hi", By: "maria", OccurredAt: when}
	}

	c := Fold(registered(), schedule, contactAt(at(9*time.Hour)))
	if f, _ := c.FollowUp(followUpID); f.Done {
		t.Fatal("a contact that occurred before the scheduling must not complete the follow-up")
	}
	if c.OverdueFollowUps(at(49*time.Hour)) != 1 || c.OverdueFollowUps(at(47*time.Hour)) != 0 {
		t.Fatal("overdue is past due and not done")
	}

	c = Evolve(c, contactAt(at(10*time.Hour)))
	f, _ := c.FollowUp(followUpID)
	if !f.Done || !f.DoneAt.Equal(at(10*time.Hour)) {
		t.Fatalf("a contact at the scheduling time completes it: %+v", f)
	}
	if c.OverdueFollowUps(at(100*time.Hour)) != 0 {
		t.Fatal("a done follow-up is never overdue")
	}

	// A later contact leaves the completion as it was.
	c = Evolve(c, contactAt(at(20*time.Hour)))
	if f, _ := c.FollowUp(followUpID); !f.DoneAt.Equal(at(10 * time.Hour)) {
		t.Fatalf("completion moved: %+v", f)
	}
}

func TestLastContactFollowsOccurredAt(t *testing.T) {
	contact := func(when time.Time) ContactLogged {
		return ContactLogged{ContactID: uuid.New(), Channel: ChannelChat, Direction: DirectionInbound, Summary: "hi", By: "sam", OccurredAt: when}
	}
	c := Fold(registered(), contact(at(5*time.Hour)), contact(at(2*time.Hour)))
	if !c.LastContactAt.Equal(at(5 * time.Hour)) {
		t.Fatalf("last contact %v: a back-dated contact logged later must not win", c.LastContactAt)
	}
	if !Fold(registered()).LastContactAt.IsZero() {
		t.Fatal("no contact means a zero last contact")
	}
}

func TestSurveySummaryFollowsAnsweredAt(t *testing.T) {
	survey := func(when time.Time, csat, nps *int) SurveyRecorded {
		return SurveyRecorded{SurveyID: uuid.New(), CSAT: csat, NPS: nps, OccurredAt: when}
	}
	tests := []struct {
		name                     string
		surveys                  []Event
		lastCSAT, prevCSAT, last *int
	}{
		{"in order", []Event{survey(at(1*time.Hour), ptr(5), ptr(9)), survey(at(2*time.Hour), ptr(2), ptr(3))}, ptr(2), ptr(5), ptr(3)},
		{"the latest recorded first", []Event{survey(at(2*time.Hour), ptr(2), ptr(3)), survey(at(1*time.Hour), ptr(5), ptr(9))}, ptr(2), ptr(5), ptr(3)},
		{"a late survey between the two latest", []Event{
			survey(at(1*time.Hour), ptr(1), nil), survey(at(3*time.Hour), ptr(4), nil), survey(at(2*time.Hour), ptr(3), nil),
		}, ptr(4), ptr(3), nil},
		{"a late survey older than both", []Event{
			survey(at(2*time.Hour), ptr(3), nil), survey(at(3*time.Hour), ptr(4), nil), survey(at(1*time.Hour), ptr(1), ptr(10)),
		}, ptr(4), ptr(3), ptr(10)},
		{"nps-only surveys leave csat alone", []Event{survey(at(1*time.Hour), ptr(4), nil), survey(at(2*time.Hour), nil, ptr(7))}, ptr(4), nil, ptr(7)},
		{"a tie goes to the one recorded last", []Event{survey(at(1*time.Hour), ptr(4), ptr(1)), survey(at(1*time.Hour), ptr(2), ptr(2))}, ptr(2), ptr(4), ptr(2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Fold(append([]Event{registered()}, tt.surveys...)...).Surveys
			if !reflect.DeepEqual(s.LastCSAT, tt.lastCSAT) || !reflect.DeepEqual(s.PrevCSAT, tt.prevCSAT) || !reflect.DeepEqual(s.LastNPS, tt.last) {
				t.Fatalf("got last csat %v prev %v last nps %v", deref(s.LastCSAT), deref(s.PrevCSAT), deref(s.LastNPS))
			}
			if s.Count != len(tt.surveys) {
				t.Fatalf("count %d", s.Count)
			}
		})
	}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestChurnAndReactivationStatus(t *testing.T) {
	churned := Fold(registered(), CustomerChurned{Reason: "budget", OccurredAt: at(time.Hour)})
	if churned.Status != StatusChurned || !churned.ChurnedAt.Equal(at(time.Hour)) {
		t.Fatalf("churned: %s %v", churned.Status, churned.ChurnedAt)
	}
	back := Evolve(churned, CustomerReactivated{OccurredAt: at(2 * time.Hour)})
	if back.Status != StatusActive || !back.ChurnedAt.IsZero() {
		t.Fatalf("reactivated: %s %v", back.Status, back.ChurnedAt)
	}
}
