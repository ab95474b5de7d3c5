package domain

import (
	"reflect"
	"time"

	"github.com/google/uuid"
)

// Event is an immutable fact about one customer. Events are values: Decide
// returns them by value and Registry.Decode decodes them by value, so a type
// switch on the struct types sees every event. (Pointers to events satisfy the
// interface too; Evolve and Marshal accept them and look through them.)
//
// The interface is sealed by an unexported method: only this package defines
// events, so the registry and Evolve always know every type there is.
type Event interface {
	// EventType is the stable, versioned name stored with the event,
	// "rapport.<Name>.v<N>". It never derives from the Go type name, so
	// renaming a type cannot orphan stored events.
	EventType() string
	// BusinessTime is the event's occurred_at: when the fact happened in the
	// business (a contact's occurred_at, a survey's answered_at, a churn's
	// churned_at), as opposed to when the store recorded it.
	BusinessTime() time.Time
	isEvent()
}

// The stored type names of the current events. Bump the version suffix (and
// register an Upcaster from the old name) when a payload changes
// incompatibly.
const (
	TypeCustomerRegistered     = "rapport.CustomerRegistered.v1"
	TypeCustomerProfileUpdated = "rapport.CustomerProfileUpdated.v1"
	TypeCustomerClassified     = "rapport.CustomerClassified.v1"
	TypeTeamMemberAssigned     = "rapport.TeamMemberAssigned.v1"
	TypeContactLogged          = "rapport.ContactLogged.v1"
	TypeFollowUpScheduled      = "rapport.FollowUpScheduled.v1"
	TypeComplaintFiled         = "rapport.ComplaintFiled.v1"
	TypeComplaintAssigned      = "rapport.ComplaintAssigned.v1"
	TypeComplaintAcknowledged  = "rapport.ComplaintAcknowledged.v1"
	TypeComplaintEscalated     = "rapport.ComplaintEscalated.v1"
	TypeComplaintResolved      = "rapport.ComplaintResolved.v1"
	TypeComplaintReopened      = "rapport.ComplaintReopened.v1"
	TypeSurveyRecorded         = "rapport.SurveyRecorded.v1"
	TypeCustomerChurned        = "rapport.CustomerChurned.v1"
	TypeCustomerReactivated    = "rapport.CustomerReactivated.v1"
	TypeCustomerDataErased     = "rapport.CustomerDataErased.v1"
)

// CustomerRegistered opens a customer's stream. Email is normalised
// (trimmed, lower-case); optional fields are empty when not given.
type CustomerRegistered struct {
	CustomerID uuid.UUID `json:"customer_id"`
	Name       string    `json:"name"`
	Email      string    `json:"email"`
	Phone      string    `json:"phone"`
	Company    string    `json:"company"`
	Tags       []string  `json:"tags"`
	Segment    string    `json:"segment"`
	Tier       string    `json:"tier"`
	Region     string    `json:"region"`
	Industry   string    `json:"industry"`
	OccurredAt time.Time `json:"occurred_at"`
}

// CustomerProfileUpdated records only the profile fields that changed; a nil
// field is unchanged. An empty string clears email, phone or company, and an
// empty list clears the tags.
type CustomerProfileUpdated struct {
	Name       *string   `json:"name,omitempty"`
	Email      *string   `json:"email,omitempty"`
	Phone      *string   `json:"phone,omitempty"`
	Company    *string   `json:"company,omitempty"`
	Tags       *[]string `json:"tags,omitempty"`
	OccurredAt time.Time `json:"occurred_at"`
}

// CustomerClassified records only the classification labels that changed; a
// nil field is unchanged.
type CustomerClassified struct {
	Segment    *string   `json:"segment,omitempty"`
	Tier       *string   `json:"tier,omitempty"`
	Region     *string   `json:"region,omitempty"`
	Industry   *string   `json:"industry,omitempty"`
	OccurredAt time.Time `json:"occurred_at"`
}

// TeamMemberAssigned puts a staff member in a role, replacing
// PreviousMember (empty when the role was vacant).
type TeamMemberAssigned struct {
	Role           Role      `json:"role"`
	Member         string    `json:"member"`
	PreviousMember string    `json:"previous_member"`
	OccurredAt     time.Time `json:"occurred_at"`
}

// ContactLogged records an interaction with the customer. OccurredAt is when
// it happened, which may be earlier than when it was logged.
type ContactLogged struct {
	ContactID  uuid.UUID `json:"contact_id"`
	Channel    Channel   `json:"channel"`
	Direction  Direction `json:"direction"`
	Summary    string    `json:"summary"`
	By         string    `json:"by"`
	OccurredAt time.Time `json:"occurred_at"`
}

// FollowUpScheduled promises a contact by DueAt. OccurredAt is the scheduling
// time; the first contact logged afterwards that occurred at or after it
// completes the follow-up.
type FollowUpScheduled struct {
	FollowUpID uuid.UUID `json:"follow_up_id"`
	DueAt      time.Time `json:"due_at"`
	By         string    `json:"by"`
	Note       string    `json:"note"`
	OccurredAt time.Time `json:"occurred_at"`
}

// ComplaintFiled opens a complaint. Channel is empty when not given.
type ComplaintFiled struct {
	ComplaintID uuid.UUID `json:"complaint_id"`
	Category    string    `json:"category"`
	Severity    Severity  `json:"severity"`
	Description string    `json:"description"`
	Channel     Channel   `json:"channel"`
	OccurredAt  time.Time `json:"occurred_at"`
}

// ComplaintAssigned names the staff member who owns a complaint.
type ComplaintAssigned struct {
	ComplaintID uuid.UUID `json:"complaint_id"`
	Assignee    string    `json:"assignee"`
	OccurredAt  time.Time `json:"occurred_at"`
}

// ComplaintAcknowledged is the first response within an opening of a
// complaint; its time is what first-response figures measure.
type ComplaintAcknowledged struct {
	ComplaintID uuid.UUID `json:"complaint_id"`
	By          string    `json:"by"`
	Note        string    `json:"note"`
	OccurredAt  time.Time `json:"occurred_at"`
}

// ComplaintEscalated hands an open complaint to someone (To) for a reason.
type ComplaintEscalated struct {
	ComplaintID uuid.UUID `json:"complaint_id"`
	To          string    `json:"to"`
	Reason      string    `json:"reason"`
	OccurredAt  time.Time `json:"occurred_at"`
}

// ComplaintResolved closes the current opening of a complaint.
type ComplaintResolved struct {
	ComplaintID uuid.UUID `json:"complaint_id"`
	By          string    `json:"by"`
	Resolution  string    `json:"resolution"`
	OccurredAt  time.Time `json:"occurred_at"`
}

// ComplaintReopened starts a new opening of a resolved complaint; timings and
// acknowledgement start afresh.
type ComplaintReopened struct {
	ComplaintID uuid.UUID `json:"complaint_id"`
	Reason      string    `json:"reason"`
	OccurredAt  time.Time `json:"occurred_at"`
}

// SurveyRecorded is a satisfaction answer. At least one of CSAT (1–5) and NPS
// (0–10) is set; ComplaintID names the complaint the survey followed, if any.
// OccurredAt is the answered_at time, which orders surveys.
type SurveyRecorded struct {
	SurveyID    uuid.UUID  `json:"survey_id"`
	CSAT        *int       `json:"csat"`
	NPS         *int       `json:"nps"`
	Comment     string     `json:"comment"`
	Channel     Channel    `json:"channel"`
	ComplaintID *uuid.UUID `json:"complaint_id"`
	OccurredAt  time.Time  `json:"occurred_at"`
}

// CustomerChurned marks the customer lost. OccurredAt is the churned_at time.
type CustomerChurned struct {
	Reason     string    `json:"reason"`
	OccurredAt time.Time `json:"occurred_at"`
}

// CustomerReactivated brings a churned customer back to active.
type CustomerReactivated struct {
	Reason     string    `json:"reason"`
	OccurredAt time.Time `json:"occurred_at"`
}

// CustomerDataErased ends a customer's stream: the personal data of every
// earlier event becomes unreadable (its keys are shredded) and no command is
// accepted afterwards. Reason is deliberately not personal data: auditors
// must be able to read why data was erased.
type CustomerDataErased struct {
	Reason     string    `json:"reason"`
	OccurredAt time.Time `json:"occurred_at"`
}

func (CustomerRegistered) EventType() string     { return TypeCustomerRegistered }
func (CustomerProfileUpdated) EventType() string { return TypeCustomerProfileUpdated }
func (CustomerClassified) EventType() string     { return TypeCustomerClassified }
func (TeamMemberAssigned) EventType() string     { return TypeTeamMemberAssigned }
func (ContactLogged) EventType() string          { return TypeContactLogged }
func (FollowUpScheduled) EventType() string      { return TypeFollowUpScheduled }
func (ComplaintFiled) EventType() string         { return TypeComplaintFiled }
func (ComplaintAssigned) EventType() string      { return TypeComplaintAssigned }
func (ComplaintAcknowledged) EventType() string  { return TypeComplaintAcknowledged }
func (ComplaintEscalated) EventType() string     { return TypeComplaintEscalated }
func (ComplaintResolved) EventType() string      { return TypeComplaintResolved }
func (ComplaintReopened) EventType() string      { return TypeComplaintReopened }
func (SurveyRecorded) EventType() string         { return TypeSurveyRecorded }
func (CustomerChurned) EventType() string        { return TypeCustomerChurned }
func (CustomerReactivated) EventType() string    { return TypeCustomerReactivated }
func (CustomerDataErased) EventType() string     { return TypeCustomerDataErased }

func (e CustomerRegistered) BusinessTime() time.Time     { return e.OccurredAt }
func (e CustomerProfileUpdated) BusinessTime() time.Time { return e.OccurredAt }
func (e CustomerClassified) BusinessTime() time.Time     { return e.OccurredAt }
func (e TeamMemberAssigned) BusinessTime() time.Time     { return e.OccurredAt }
func (e ContactLogged) BusinessTime() time.Time          { return e.OccurredAt }
func (e FollowUpScheduled) BusinessTime() time.Time      { return e.OccurredAt }
func (e ComplaintFiled) BusinessTime() time.Time         { return e.OccurredAt }
func (e ComplaintAssigned) BusinessTime() time.Time      { return e.OccurredAt }
func (e ComplaintAcknowledged) BusinessTime() time.Time  { return e.OccurredAt }
func (e ComplaintEscalated) BusinessTime() time.Time     { return e.OccurredAt }
func (e ComplaintResolved) BusinessTime() time.Time      { return e.OccurredAt }
func (e ComplaintReopened) BusinessTime() time.Time      { return e.OccurredAt }
func (e SurveyRecorded) BusinessTime() time.Time         { return e.OccurredAt }
func (e CustomerChurned) BusinessTime() time.Time        { return e.OccurredAt }
func (e CustomerReactivated) BusinessTime() time.Time    { return e.OccurredAt }
func (e CustomerDataErased) BusinessTime() time.Time     { return e.OccurredAt }

func (CustomerRegistered) isEvent()     {}
func (CustomerProfileUpdated) isEvent() {}
func (CustomerClassified) isEvent()     {}
func (TeamMemberAssigned) isEvent()     {}
func (ContactLogged) isEvent()          {}
func (FollowUpScheduled) isEvent()      {}
func (ComplaintFiled) isEvent()         {}
func (ComplaintAssigned) isEvent()      {}
func (ComplaintAcknowledged) isEvent()  {}
func (ComplaintEscalated) isEvent()     {}
func (ComplaintResolved) isEvent()      {}
func (ComplaintReopened) isEvent()      {}
func (SurveyRecorded) isEvent()         {}
func (CustomerChurned) isEvent()        {}
func (CustomerReactivated) isEvent()    {}
func (CustomerDataErased) isEvent()     {}

// valueOf looks through a pointer to an event or a command, so that callers
// may pass either form; a nil pointer becomes the nil interface.
func valueOf[T any](x T) T {
	v := reflect.ValueOf(x)
	if v.Kind() != reflect.Pointer {
		return x
	}
	var zero T
	if v.IsNil() {
		return zero
	}
	if inner, ok := v.Elem().Interface().(T); ok {
		return inner
	}
	return x
}
