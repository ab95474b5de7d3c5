package domain

import (
	"time"

	"github.com/google/uuid"
)

// Command is a request to change one customer. The interface is sealed (by an
// unexported method) so that Decide is total over the commands that exist.
//
// Commands carry raw input: Decide trims, normalises and validates it. The ids
// of the things a command creates (customer, contact, follow-up, complaint,
// survey) are fields set by the application layer, which derives them
// deterministically so that a retried command yields identical events. Field
// comments give the request-body name used in field errors.
type Command interface{ isCommand() }

// RegisterCustomer creates a customer. Empty optional fields mean "not
// given". Email uniqueness across customers is the application layer's check
// (see EmailTaken): it spans streams, which Decide does not see.
type RegisterCustomer struct {
	CustomerID uuid.UUID // customer_id
	Name       string    // name: required, at most 200 characters
	Email      string    // email: email or phone required
	Phone      string    // phone
	Company    string    // company
	Tags       []string  // tags
	Segment    string    // segment: label when given
	Tier       string    // tier: A, B or C when given
	Region     string    // region: label when given
	Industry   string    // industry: label when given
}

// UpdateProfile changes profile fields; nil means "leave as is". An empty
// email, phone or company clears it (as long as an email or a phone remains);
// an empty tag list clears the tags.
type UpdateProfile struct {
	Name    *string   // name
	Email   *string   // email
	Phone   *string   // phone
	Company *string   // company
	Tags    *[]string // tags
}

// ClassifyCustomer sets classification labels; nil means "leave as is", and
// at least one must be given.
type ClassifyCustomer struct {
	Segment  *string // segment
	Tier     *string // tier
	Region   *string // region
	Industry *string // industry
}

// AssignTeamMember puts Member in Role, replacing whoever held it.
type AssignTeamMember struct {
	Role   Role   // role (a path segment in HTTP)
	Member string // member
}

// LogContact records an interaction with the customer.
type LogContact struct {
	ContactID  uuid.UUID  // contact_id
	Channel    Channel    // channel
	Direction  Direction  // direction
	Summary    string     // summary
	By         string     // by: the staff member
	OccurredAt *time.Time // occurred_at: nil means now; never after now
}

// ScheduleFollowUp promises a contact by DueAt.
type ScheduleFollowUp struct {
	FollowUpID uuid.UUID // follow_up_id
	DueAt      time.Time // due_at: strictly after now
	By         string    // by
	Note       string    // note: optional
}

// FileComplaint opens a complaint with the id the caller chose.
type FileComplaint struct {
	ComplaintID uuid.UUID // complaint_id
	Category    string    // category
	Severity    Severity  // severity
	Description string    // description
	Channel     Channel   // channel: optional
}

// AssignComplaint names the owner of a complaint.
type AssignComplaint struct {
	ComplaintID uuid.UUID // complaint id (a path segment in HTTP)
	Assignee    string    // assignee
	// UnlessOwned makes the command do nothing when the complaint already
	// has an owner: what the routing policy sends, so that it never takes
	// a complaint from the person someone assigned it to before the policy
	// came to it (a lagging, restarted or rebuilt policy), and so that two
	// runs of the policy cannot both assign it. Decided on the stream's
	// current state under its expected revision, it holds against any
	// interleaving. Not settable over HTTP.
	UnlessOwned bool
}

// AcknowledgeComplaint is the first response to the current opening.
type AcknowledgeComplaint struct {
	ComplaintID uuid.UUID
	By          string // by
	Note        string // note: optional
}

// EscalateComplaint hands an open complaint to To.
type EscalateComplaint struct {
	ComplaintID uuid.UUID
	To          string // to
	Reason      string // reason
}

// ResolveComplaint closes the current opening of a complaint.
type ResolveComplaint struct {
	ComplaintID uuid.UUID
	By          string // by
	Resolution  string // resolution
}

// ReopenComplaint starts a new opening of a resolved complaint.
type ReopenComplaint struct {
	ComplaintID uuid.UUID
	Reason      string // reason
}

// RecordSurvey records a satisfaction answer.
type RecordSurvey struct {
	SurveyID    uuid.UUID  // survey_id
	CSAT        *int       // csat: 1–5
	NPS         *int       // nps: 0–10; at least one of csat and nps
	Comment     string     // comment: optional
	Channel     Channel    // channel: optional
	AnsweredAt  *time.Time // answered_at: nil means now; never after now
	ComplaintID *uuid.UUID // complaint_id: optional, a complaint of this customer
}

// MarkChurned marks the customer lost.
type MarkChurned struct {
	Reason    string     // reason
	ChurnedAt *time.Time // churned_at: nil means now; never after now
}

// Reactivate brings a churned customer back.
type Reactivate struct {
	Reason string // reason: optional
}

// EraseCustomerData erases the customer's personal data for good.
type EraseCustomerData struct {
	Reason string // reason
}

func (RegisterCustomer) isCommand()     {}
func (UpdateProfile) isCommand()        {}
func (ClassifyCustomer) isCommand()     {}
func (AssignTeamMember) isCommand()     {}
func (LogContact) isCommand()           {}
func (ScheduleFollowUp) isCommand()     {}
func (FileComplaint) isCommand()        {}
func (AssignComplaint) isCommand()      {}
func (AcknowledgeComplaint) isCommand() {}
func (EscalateComplaint) isCommand()    {}
func (ResolveComplaint) isCommand()     {}
func (ReopenComplaint) isCommand()      {}
func (RecordSurvey) isCommand()         {}
func (MarkChurned) isCommand()          {}
func (Reactivate) isCommand()           {}
func (EraseCustomerData) isCommand()    {}
