package domain

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Reminders (issue 10, "Apps react to what happens"): time-based facts —
// a complaint's SLA step at risk or breached, a follow-up due, a customer
// due for contact — that no command causes. A scheduler emits each once,
// when its time comes, as one event in a stream of its own,
// reminder-<uuid>, appended with "no stream" so that a second emission
// (another replica, a restart, a retry) can never add a second event.
//
// They are not customer events: the customer's stream, revision, state and
// history do not change, no projector of customers sees them (Types leaves
// them out) and no command answers with them. Their only reader is the
// change feed, which gives them to apps like every other event. They carry
// no personal data: ids, times, severities, tiers and staff names only.

// reminderStreamPrefix is the stream category of reminders ("reminder" to
// EventStoreDB).
const reminderStreamPrefix = "reminder-"

// ReminderStreamPrefix is the prefix every reminder stream has, for the
// subscriptions that follow them (the change feed's).
const ReminderStreamPrefix = reminderStreamPrefix

// ReminderStreamName is the stream of one reminder: "reminder-<uuid>".
func ReminderStreamName(id uuid.UUID) string { return reminderStreamPrefix + id.String() }

// ReminderIDFromStream is the inverse of ReminderStreamName; it accepts only
// the exact form ReminderStreamName makes.
func ReminderIDFromStream(stream string) (uuid.UUID, bool) {
	raw, found := strings.CutPrefix(stream, reminderStreamPrefix)
	if !found {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(raw)
	if err != nil || id == uuid.Nil || id.String() != raw {
		return uuid.Nil, false
	}
	return id, true
}

// reminderNamespace roots the reminders' ids (UUIDv5).
var reminderNamespace = uuid.MustParse("6b1f4c2e-3a7d-5e90-8c41-7d2b9e0a5f13")

// ReminderID is the id of the reminder of kind for subject, whose time
// is counted from basis (a complaint's opening, a follow-up's due time, a
// customer's last contact): the same three give the same id on every
// replica and after every restart, so the reminder's stream name and
// event id are decided before it is emitted.
func ReminderID(kind string, subject uuid.UUID, basis time.Time) uuid.UUID {
	return uuid.NewSHA1(reminderNamespace, []byte(kind+"/"+subject.String()+"/"+basis.UTC().Format(time.RFC3339Nano)))
}

// Reminder kinds: the first part of a reminder's identity.
const (
	ReminderSLAAtRisk   = "complaint_sla_at_risk"
	ReminderSLABreached = "complaint_sla_breached"
	ReminderFollowUpDue = "follow_up_due"
	ReminderContactDue  = "contact_due"
)

// SLA steps a complaint reminder is about.
const (
	SLAStepFirstResponse = "first_response"
	SLAStepResolution    = "resolution"
)

// The stored type names of the reminder events.
const (
	TypeComplaintSLAAtRisk   = "rapport.ComplaintSLAAtRisk.v1"
	TypeComplaintSLABreached = "rapport.ComplaintSLABreached.v1"
	TypeFollowUpDue          = "rapport.FollowUpDue.v1"
	TypeContactDue           = "rapport.ContactDue.v1"
)

// ReminderEvent is implemented by the reminder events: the customer they
// are about and the customer's stream revision they were judged on (the
// state they reflect).
type ReminderEvent interface {
	Event
	ReminderCustomer() uuid.UUID
	JudgedAtRevision() uint64
}

// ReminderSubject is what every reminder event carries: the customer and
// the revision of the customer's stream whose state it was judged on.
type ReminderSubject struct {
	CustomerID       uuid.UUID `json:"customer_id"`
	CustomerRevision uint64    `json:"customer_revision"`
}

// ReminderCustomer implements ReminderEvent.
func (s ReminderSubject) ReminderCustomer() uuid.UUID { return s.CustomerID }

// JudgedAtRevision implements ReminderEvent.
func (s ReminderSubject) JudgedAtRevision() uint64 { return s.CustomerRevision }

// ComplaintSLAAtRisk: less than 25 % of the time allowed for the step of
// the complaint's last opening is left, and the step has not been taken.
// OccurredAt is the instant the last quarter began.
type ComplaintSLAAtRisk struct {
	ReminderSubject
	ComplaintID uuid.UUID `json:"complaint_id"`
	Severity    Severity  `json:"severity"`
	Step        string    `json:"step"`
	OpenedAt    time.Time `json:"opened_at"`
	DueAt       time.Time `json:"due_at"`
	OccurredAt  time.Time `json:"occurred_at"`
}

// ComplaintSLABreached: the step's target passed without the step.
// OccurredAt is the target (DueAt).
type ComplaintSLABreached struct {
	ReminderSubject
	ComplaintID uuid.UUID `json:"complaint_id"`
	Severity    Severity  `json:"severity"`
	Step        string    `json:"step"`
	OpenedAt    time.Time `json:"opened_at"`
	DueAt       time.Time `json:"due_at"`
	OccurredAt  time.Time `json:"occurred_at"`
}

// FollowUpDue: a follow-up's due time came and no contact has done it.
type FollowUpDue struct {
	ReminderSubject
	FollowUpID uuid.UUID `json:"follow_up_id"`
	By         string    `json:"by"`
	DueAt      time.Time `json:"due_at"`
}

// ContactDue: an active customer's last contact (or registration, when
// LastContactAt is nil) became older than its tier's cadence at DueAt.
type ContactDue struct {
	ReminderSubject
	Tier          string     `json:"tier"`
	CadenceDays   int        `json:"cadence_days"`
	LastContactAt *time.Time `json:"last_contact_at"`
	DueAt         time.Time  `json:"due_at"`
}

func (ComplaintSLAAtRisk) EventType() string           { return TypeComplaintSLAAtRisk }
func (e ComplaintSLAAtRisk) BusinessTime() time.Time   { return e.OccurredAt }
func (ComplaintSLAAtRisk) isEvent()                    {}
func (ComplaintSLABreached) EventType() string         { return TypeComplaintSLABreached }
func (e ComplaintSLABreached) BusinessTime() time.Time { return e.OccurredAt }
func (ComplaintSLABreached) isEvent()                  {}
func (FollowUpDue) EventType() string                  { return TypeFollowUpDue }
func (e FollowUpDue) BusinessTime() time.Time          { return e.DueAt }
func (FollowUpDue) isEvent()                           {}
func (ContactDue) EventType() string                   { return TypeContactDue }
func (e ContactDue) BusinessTime() time.Time           { return e.DueAt }
func (ContactDue) isEvent()                            {}

// registerReminderEvents adds the reminder events to r, marked as
// reminder-stream types so that Types leaves them out.
func registerReminderEvents(r *Registry) {
	register[ComplaintSLAAtRisk](r)
	register[ComplaintSLABreached](r)
	register[FollowUpDue](r)
	register[ContactDue](r)
	for _, t := range []string{TypeComplaintSLAAtRisk, TypeComplaintSLABreached, TypeFollowUpDue, TypeContactDue} {
		r.others[t] = true
		r.reminderTypes[t] = true
	}
}

// ReminderTypes lists the reminder streams' event types, sorted.
func (r *Registry) ReminderTypes() []string {
	return slices.Sorted(maps.Keys(r.reminderTypes))
}
