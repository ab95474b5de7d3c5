package domain

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

// thenAlreadyRecorded expects Decide to recognise a command it has decided
// before: no events, and an *AlreadyRecordedError naming the id.
func (o *outcome) thenAlreadyRecorded(id uuid.UUID) {
	o.t.Helper()
	if len(o.events) != 0 {
		o.t.Fatalf("a command already recorded must append nothing, got %s", describe(o.t, o.events))
	}
	var already *AlreadyRecordedError
	if !errors.As(o.err, &already) {
		o.t.Fatalf("want *AlreadyRecordedError for %s, got %v", id, o.err)
	}
	if already.ID != id {
		o.t.Fatalf("already recorded names %s, want %s", already.ID, id)
	}
	var domainErr *Error
	if errors.As(o.err, &domainErr) {
		o.t.Fatalf("already recorded must not be a rejection (*Error %s), or a retry would answer 4xx instead of its first answer", domainErr.Reason)
	}
}

// TestAnIDIsRecordedOnce: every id a command creates derives from the
// command id, so a second event with an id the customer already has is a
// retry of a command that already happened, however many commands came in
// between. Decide refuses to append it again and says so, so that the
// application answers the first outcome.
func TestAnIDIsRecordedOnce(t *testing.T) {
	contact := ContactLogged{ContactID: contactID, Channel: ChannelPhone, Direction: DirectionOutbound, Summary: "discussed renewal", By: "maria", OccurredAt: at(time.Hour)}
	survey := SurveyRecorded{SurveyID: surveyID, CSAT: ptr(4), OccurredAt: at(2 * time.Hour)}
	followUp := FollowUpScheduled{FollowUpID: followUpID, DueAt: now, By: "maria", OccurredAt: at(time.Hour)}
	// Many other events between the first run and the retry: the window
	// of a cache does not matter to the state.
	var between []Event
	for i := range 300 {
		between = append(between, ContactLogged{ContactID: uuid.NewSHA1(otherID, fmt.Append(nil, i)), Channel: ChannelChat, Direction: DirectionInbound, Summary: "hi", By: "bot", OccurredAt: at(3 * time.Hour)})
	}

	t.Run("a contact", func(t *testing.T) {
		scenario(t).given(registered(), contact).given(between...).when(validContact()).thenAlreadyRecorded(contactID)
	})
	t.Run("a survey", func(t *testing.T) {
		scenario(t).given(registered(), survey).given(between...).
			when(RecordSurvey{SurveyID: surveyID, CSAT: ptr(4)}).thenAlreadyRecorded(surveyID)
	})
	t.Run("a follow-up", func(t *testing.T) {
		scenario(t).given(registered(), followUp).given(between...).
			when(ScheduleFollowUp{FollowUpID: followUpID, DueAt: now.Add(24 * time.Hour), By: "maria"}).thenAlreadyRecorded(followUpID)
	})
	t.Run("a complaint", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour))).given(between...).
			when(FileComplaint{ComplaintID: complaintID, Category: "billing", Severity: SeverityHigh, Description: "charged twice"}).thenAlreadyRecorded(complaintID)
	})
	t.Run("a complaint resolved since", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)), resolved(complaintID, at(2*time.Hour))).
			when(FileComplaint{ComplaintID: complaintID, Category: "billing", Severity: SeverityHigh, Description: "charged twice"}).thenAlreadyRecorded(complaintID)
	})
	t.Run("a registration", func(t *testing.T) {
		scenario(t).given(registered()).given(between...).when(validRegistration()).thenAlreadyRecorded(customerID)
	})
	t.Run("a survey id is not a contact id", func(t *testing.T) {
		// Ids are recorded per kind: the same id of another kind is new.
		cmd := validContact()
		cmd.ContactID = surveyID
		scenario(t).given(registered(), survey).when(cmd).then(ContactLogged{
			ContactID: surveyID, Channel: ChannelPhone, Direction: DirectionOutbound, Summary: "discussed renewal", By: "maria", OccurredAt: now,
		})
	})
	t.Run("another contact is new", func(t *testing.T) {
		cmd := validContact()
		cmd.ContactID = otherID
		scenario(t).given(registered(), contact).when(cmd).then(ContactLogged{
			ContactID: otherID, Channel: ChannelPhone, Direction: DirectionOutbound, Summary: "discussed renewal", By: "maria", OccurredAt: now,
		})
	})
	t.Run("an erased customer is gone, even for a retry", func(t *testing.T) {
		scenario(t).given(registered(), contact, erased(at(4*time.Hour))).when(validContact()).thenError(CodeGone, ReasonCustomerErased)
	})
}

// TestRecordedIDsAreAValue: the ids a state has recorded follow Evolve's
// rule that a state is a value, so a cached state may be evolved along two
// paths without one seeing the other's ids.
func TestRecordedIDsAreAValue(t *testing.T) {
	base := Fold(registered())
	for i := range 200 { // deep enough that the set has inner nodes
		base = Evolve(base, ContactLogged{ContactID: uuid.NewSHA1(otherID, fmt.Append(nil, i)), Channel: ChannelChat, Direction: DirectionInbound, Summary: "hi", By: "bot", OccurredAt: t0})
	}
	a := Evolve(base, ContactLogged{ContactID: contactID, Channel: ChannelChat, Direction: DirectionInbound, Summary: "a", By: "bot", OccurredAt: t0})
	b := Evolve(base, SurveyRecorded{SurveyID: surveyID, NPS: ptr(9), OccurredAt: t0})
	contact := validContact()
	survey := RecordSurvey{SurveyID: surveyID, NPS: ptr(9)}
	for _, tc := range []struct {
		name            string
		state           Customer
		contact, survey bool
	}{
		{"the shared state", base, false, false},
		{"the path with the contact", a, true, false},
		{"the path with the survey", b, false, true},
	} {
		_, err := Decide(tc.state, contact, now)
		var already *AlreadyRecordedError
		if got := errors.As(err, &already); got != tc.contact {
			t.Errorf("%s: contact recorded %v, want %v (%v)", tc.name, got, tc.contact, err)
		}
		_, err = Decide(tc.state, survey, now)
		if got := errors.As(err, &already); got != tc.survey {
			t.Errorf("%s: survey recorded %v, want %v (%v)", tc.name, got, tc.survey, err)
		}
	}
	for i := range 200 {
		cmd := validContact()
		cmd.ContactID = uuid.NewSHA1(otherID, fmt.Append(nil, i))
		if _, err := Decide(a, cmd, now); !errors.As(err, new(*AlreadyRecordedError)) {
			t.Fatalf("contact %d of the history is not recorded: %v", i, err)
		}
	}
}

// BenchmarkFoldContacts folds a long history of contacts: recording their
// ids must not make a fold quadratic.
func BenchmarkFoldContacts(b *testing.B) {
	events := []Event{registered()}
	for i := range 10_000 {
		events = append(events, ContactLogged{ContactID: uuid.NewSHA1(otherID, fmt.Append(nil, i)), Channel: ChannelChat, Direction: DirectionInbound, Summary: "hi", By: "bot", OccurredAt: t0})
	}
	for b.Loop() {
		Fold(events...)
	}
}
