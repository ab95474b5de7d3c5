package domain

import (
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Decide answers a command with the events that record it, given the
// customer's current state and the current time. It is pure: the same state,
// command and time always give the same events, which is what makes retries
// and tests deterministic.
//
// It first validates and normalises the command on its own (a CodeInvalid
// *Error naming every bad field), then checks it against the state: an erased
// customer is CodeGone, an unregistered one CodeNotFound (except for
// registration), an unknown complaint CodeNotFound, and a broken rule
// CodeConflict. A command whose created id (customer, contact, survey,
// follow-up, complaint) the customer already has is a retry: it returns an
// *AlreadyRecordedError and no events, so that nothing is recorded twice. A command that would change nothing (an unchanged profile, a
// role given to its current member, a complaint given to its current
// assignee) returns no events and no error.
//
// Business times (occurred_at) are now, or the command's own time for a
// contact, a survey or a churn; all event times are in UTC.
func Decide(c Customer, cmd Command, now time.Time) ([]Event, error) {
	now = now.UTC()
	switch cmd := valueOf(cmd).(type) {
	case RegisterCustomer:
		return decideRegister(c, cmd, now)
	case UpdateProfile:
		return decideUpdateProfile(c, cmd, now)
	case ClassifyCustomer:
		return decideClassify(c, cmd, now)
	case AssignTeamMember:
		return decideAssignTeamMember(c, cmd, now)
	case LogContact:
		return decideLogContact(c, cmd, now)
	case ScheduleFollowUp:
		return decideScheduleFollowUp(c, cmd, now)
	case FileComplaint:
		return decideFileComplaint(c, cmd, now)
	case AssignComplaint:
		return decideAssignComplaint(c, cmd, now)
	case AcknowledgeComplaint:
		return decideAcknowledgeComplaint(c, cmd, now)
	case EscalateComplaint:
		return decideEscalateComplaint(c, cmd, now)
	case ResolveComplaint:
		return decideResolveComplaint(c, cmd, now)
	case ReopenComplaint:
		return decideReopenComplaint(c, cmd, now)
	case RecordSurvey:
		return decideRecordSurvey(c, cmd, now)
	case MarkChurned:
		return decideMarkChurned(c, cmd, now)
	case Reactivate:
		return decideReactivate(c, cmd, now)
	case EraseCustomerData:
		return decideErase(c, cmd, now)
	case RecordPurchase, RefundPurchase, AwardPoints, RedeemPoints:
		return decideValue(c, cmd, now)
	default:
		// Command is sealed, so only a nil command gets here: a programming
		// error, deliberately not an *Error.
		return nil, fmt.Errorf("domain: cannot decide command %T", cmd)
	}
}

// requireCustomer is the precondition of every command but registration.
func requireCustomer(c Customer) error {
	if c.IsErased() {
		return customerErased()
	}
	if !c.Registered {
		return notFound(ReasonCustomerNotFound, "customer not found")
	}
	return nil
}

// requireComplaint is the precondition of every command on a complaint.
func requireComplaint(c Customer, id uuid.UUID) (Complaint, error) {
	if err := requireCustomer(c); err != nil {
		return Complaint{}, err
	}
	complaint, ok := c.Complaint(id)
	if !ok {
		return Complaint{}, notFound(ReasonComplaintNotFound, "complaint not found")
	}
	return complaint, nil
}

func decideRegister(c Customer, cmd RegisterCustomer, now time.Time) ([]Event, error) {
	cmd, err := cmd.normalized()
	if err != nil {
		return nil, err
	}
	if c.IsErased() {
		return nil, customerErased()
	}
	if c.Registered && c.ID == cmd.CustomerID {
		return nil, alreadyRecorded("customer", cmd.CustomerID)
	}
	if c.Registered {
		return nil, conflict(ReasonAlreadyRegistered, "the customer is already registered")
	}
	return []Event{CustomerRegistered{
		CustomerID: cmd.CustomerID,
		Name:       cmd.Name,
		Email:      cmd.Email,
		Phone:      cmd.Phone,
		Company:    cmd.Company,
		Tags:       cmd.Tags,
		Segment:    cmd.Segment,
		Tier:       cmd.Tier,
		Region:     cmd.Region,
		Industry:   cmd.Industry,
		OccurredAt: now,
	}}, nil
}

func decideUpdateProfile(c Customer, cmd UpdateProfile, now time.Time) ([]Event, error) {
	cmd, err := cmd.normalized()
	if err != nil {
		return nil, err
	}
	if err := requireCustomer(c); err != nil {
		return nil, err
	}
	event := CustomerProfileUpdated{
		Name:       changed(cmd.Name, c.Name),
		Email:      changed(cmd.Email, c.Email),
		Phone:      changed(cmd.Phone, c.Phone),
		Company:    changed(cmd.Company, c.Company),
		OccurredAt: now,
	}
	if cmd.Tags != nil && !slices.Equal(*cmd.Tags, c.Tags) {
		event.Tags = cmd.Tags
	}
	if event.Name == nil && event.Email == nil && event.Phone == nil && event.Company == nil && event.Tags == nil {
		return nil, nil
	}
	email, phone := c.Email, c.Phone
	setIfGiven(&email, event.Email)
	setIfGiven(&phone, event.Phone)
	if email == "" && phone == "" {
		return nil, invalid([]FieldError{
			{Field: "email", Message: "the customer must keep an email or a phone"},
			{Field: "phone", Message: "the customer must keep an email or a phone"},
		})
	}
	return []Event{event}, nil
}

func decideClassify(c Customer, cmd ClassifyCustomer, now time.Time) ([]Event, error) {
	cmd, err := cmd.normalized()
	if err != nil {
		return nil, err
	}
	if err := requireCustomer(c); err != nil {
		return nil, err
	}
	event := CustomerClassified{
		Segment:    changed(cmd.Segment, c.Segment),
		Tier:       changed(cmd.Tier, c.Tier),
		Region:     changed(cmd.Region, c.Region),
		Industry:   changed(cmd.Industry, c.Industry),
		OccurredAt: now,
	}
	if event.Segment == nil && event.Tier == nil && event.Region == nil && event.Industry == nil {
		return nil, nil
	}
	return []Event{event}, nil
}

func decideAssignTeamMember(c Customer, cmd AssignTeamMember, now time.Time) ([]Event, error) {
	cmd, err := cmd.normalized()
	if err != nil {
		return nil, err
	}
	if err := requireCustomer(c); err != nil {
		return nil, err
	}
	previous := c.Team[cmd.Role]
	if previous == cmd.Member {
		return nil, nil
	}
	return []Event{TeamMemberAssigned{Role: cmd.Role, Member: cmd.Member, PreviousMember: previous, OccurredAt: now}}, nil
}

func decideLogContact(c Customer, cmd LogContact, now time.Time) ([]Event, error) {
	cmd, occurredAt, err := cmd.normalized(now)
	if err != nil {
		return nil, err
	}
	if err := requireCustomer(c); err != nil {
		return nil, err
	}
	if c.recorded.contacts.has(cmd.ContactID) {
		return nil, alreadyRecorded("contact", cmd.ContactID)
	}
	return []Event{ContactLogged{
		ContactID:  cmd.ContactID,
		Channel:    cmd.Channel,
		Direction:  cmd.Direction,
		Summary:    cmd.Summary,
		By:         cmd.By,
		OccurredAt: occurredAt,
	}}, nil
}

func decideScheduleFollowUp(c Customer, cmd ScheduleFollowUp, now time.Time) ([]Event, error) {
	cmd, err := cmd.normalized(now)
	if err != nil {
		return nil, err
	}
	if err := requireCustomer(c); err != nil {
		return nil, err
	}
	if _, exists := c.FollowUp(cmd.FollowUpID); exists {
		return nil, alreadyRecorded("follow-up", cmd.FollowUpID)
	}
	return []Event{FollowUpScheduled{FollowUpID: cmd.FollowUpID, DueAt: cmd.DueAt, By: cmd.By, Note: cmd.Note, OccurredAt: now}}, nil
}

func decideFileComplaint(c Customer, cmd FileComplaint, now time.Time) ([]Event, error) {
	cmd, err := cmd.normalized()
	if err != nil {
		return nil, err
	}
	if err := requireCustomer(c); err != nil {
		return nil, err
	}
	if _, exists := c.Complaint(cmd.ComplaintID); exists {
		return nil, alreadyRecorded("complaint", cmd.ComplaintID)
	}
	return []Event{ComplaintFiled{
		ComplaintID: cmd.ComplaintID,
		Category:    cmd.Category,
		Severity:    cmd.Severity,
		Description: cmd.Description,
		Channel:     cmd.Channel,
		OccurredAt:  now,
	}}, nil
}

// decideAssignComplaint accepts any status: giving a resolved complaint an
// owner is harmless and lets a team hand over its history.
func decideAssignComplaint(c Customer, cmd AssignComplaint, now time.Time) ([]Event, error) {
	cmd, err := cmd.normalized()
	if err != nil {
		return nil, err
	}
	complaint, err := requireComplaint(c, cmd.ComplaintID)
	if err != nil {
		return nil, err
	}
	if complaint.Assignee == cmd.Assignee || (cmd.UnlessOwned && complaint.Assignee != "") {
		return nil, nil
	}
	return []Event{ComplaintAssigned{ComplaintID: cmd.ComplaintID, Assignee: cmd.Assignee, OccurredAt: now}}, nil
}

func decideAcknowledgeComplaint(c Customer, cmd AcknowledgeComplaint, now time.Time) ([]Event, error) {
	cmd, err := cmd.normalized()
	if err != nil {
		return nil, err
	}
	complaint, err := requireComplaint(c, cmd.ComplaintID)
	if err != nil {
		return nil, err
	}
	if !complaint.IsOpen() {
		return nil, complaintNotOpen()
	}
	if complaint.Acknowledged {
		return nil, conflict(ReasonComplaintAlreadyAcknowledged, "the complaint was already acknowledged in its current opening")
	}
	return []Event{ComplaintAcknowledged{ComplaintID: cmd.ComplaintID, By: cmd.By, Note: cmd.Note, OccurredAt: now}}, nil
}

func decideEscalateComplaint(c Customer, cmd EscalateComplaint, now time.Time) ([]Event, error) {
	cmd, err := cmd.normalized()
	if err != nil {
		return nil, err
	}
	complaint, err := requireComplaint(c, cmd.ComplaintID)
	if err != nil {
		return nil, err
	}
	if !complaint.IsOpen() {
		return nil, complaintNotOpen()
	}
	return []Event{ComplaintEscalated{ComplaintID: cmd.ComplaintID, To: cmd.To, Reason: cmd.Reason, OccurredAt: now}}, nil
}

func decideResolveComplaint(c Customer, cmd ResolveComplaint, now time.Time) ([]Event, error) {
	cmd, err := cmd.normalized()
	if err != nil {
		return nil, err
	}
	complaint, err := requireComplaint(c, cmd.ComplaintID)
	if err != nil {
		return nil, err
	}
	if !complaint.IsOpen() {
		return nil, complaintNotOpen()
	}
	return []Event{ComplaintResolved{ComplaintID: cmd.ComplaintID, By: cmd.By, Resolution: cmd.Resolution, OccurredAt: now}}, nil
}

func decideReopenComplaint(c Customer, cmd ReopenComplaint, now time.Time) ([]Event, error) {
	cmd, err := cmd.normalized()
	if err != nil {
		return nil, err
	}
	complaint, err := requireComplaint(c, cmd.ComplaintID)
	if err != nil {
		return nil, err
	}
	if complaint.Status != ComplaintStatusResolved {
		return nil, conflict(ReasonComplaintNotResolved, "only a resolved complaint can be reopened")
	}
	return []Event{ComplaintReopened{ComplaintID: cmd.ComplaintID, Reason: cmd.Reason, OccurredAt: now}}, nil
}

func decideRecordSurvey(c Customer, cmd RecordSurvey, now time.Time) ([]Event, error) {
	cmd, answeredAt, err := cmd.normalized(now)
	if err != nil {
		return nil, err
	}
	if err := requireCustomer(c); err != nil {
		return nil, err
	}
	if c.recorded.surveys.has(cmd.SurveyID) {
		return nil, alreadyRecorded("survey", cmd.SurveyID)
	}
	// The complaint a survey follows is a body field, not the resource the
	// request addresses, so an unknown one is an invalid field (422), not 404.
	if cmd.ComplaintID != nil {
		if _, ok := c.Complaint(*cmd.ComplaintID); !ok {
			return nil, invalid([]FieldError{{Field: "complaint_id", Message: "must be a complaint of this customer"}})
		}
	}
	return []Event{SurveyRecorded{
		SurveyID:    cmd.SurveyID,
		CSAT:        copyPtr(cmd.CSAT),
		NPS:         copyPtr(cmd.NPS),
		Comment:     cmd.Comment,
		Channel:     cmd.Channel,
		ComplaintID: copyPtr(cmd.ComplaintID),
		OccurredAt:  answeredAt,
	}}, nil
}

func decideMarkChurned(c Customer, cmd MarkChurned, now time.Time) ([]Event, error) {
	cmd, churnedAt, err := cmd.normalized(now)
	if err != nil {
		return nil, err
	}
	if err := requireCustomer(c); err != nil {
		return nil, err
	}
	if c.Status == StatusChurned {
		return nil, conflict(ReasonAlreadyChurned, "the customer is already churned")
	}
	// A business time may not precede the state it changes: a churn dated
	// before the current active spell would end a spell that had not begun.
	if churnedAt.Before(c.ActiveSince) {
		return nil, invalid([]FieldError{{Field: "churned_at",
			Message: "must not be before the start of the customer's current active spell (registration or last reactivation, " +
				c.ActiveSince.UTC().Format(time.RFC3339Nano) + ")"}})
	}
	return []Event{CustomerChurned{Reason: cmd.Reason, OccurredAt: churnedAt}}, nil
}

func decideReactivate(c Customer, cmd Reactivate, now time.Time) ([]Event, error) {
	cmd, err := cmd.normalized()
	if err != nil {
		return nil, err
	}
	if err := requireCustomer(c); err != nil {
		return nil, err
	}
	if c.Status != StatusChurned {
		return nil, conflict(ReasonNotChurned, "only a churned customer can be reactivated")
	}
	return []Event{CustomerReactivated{Reason: cmd.Reason, OccurredAt: now}}, nil
}

func decideErase(c Customer, cmd EraseCustomerData, now time.Time) ([]Event, error) {
	cmd, err := cmd.normalized()
	if err != nil {
		return nil, err
	}
	if err := requireCustomer(c); err != nil {
		return nil, err
	}
	return []Event{CustomerDataErased{Reason: cmd.Reason, OccurredAt: now}}, nil
}

func customerErased() error {
	return &Error{Code: CodeGone, Reason: ReasonCustomerErased, Message: "the customer's data was erased; no command is accepted"}
}

func complaintNotOpen() error {
	return conflict(ReasonComplaintNotOpen, "the complaint is resolved; reopen it first")
}

// changed returns the requested value when it was given and differs from the
// current one, and nil otherwise: events record only what changed.
func changed(requested *string, current string) *string {
	if requested == nil || *requested == current {
		return nil
	}
	return requested
}

// copyPtr keeps events from sharing memory with the command that produced
// them.
func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
