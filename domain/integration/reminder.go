package integration

import (
	"reflect"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
)

// The reminders' public types. They share the prefix "reminder." so that
// a consumer can tell them from the events of the customer's stream: a
// reminder is not in that stream, and its revision is the revision of the
// customer's stream it was judged on (the state it reflects), not a place
// of its own in it.
const (
	TypeReminderComplaintSLAAtRisk   = "reminder.complaint_sla_at_risk.v1"
	TypeReminderComplaintSLABreached = "reminder.complaint_sla_breached.v1"
	TypeReminderFollowUpDue          = "reminder.follow_up_due.v1"
	TypeReminderContactDue           = "reminder.contact_due.v1"
)

// ReminderPrefix starts every reminder's public type.
const ReminderPrefix = "reminder."

// The reminders' data: ids, times, severities, tiers and staff names —
// nothing personal, like every integration event.
type (
	// ComplaintSLAData is the data of both complaint reminders: which
	// step of which opening, and its target.
	ComplaintSLAData struct {
		ComplaintID uuid.UUID `json:"complaint_id"`
		Severity    string    `json:"severity"`
		Step        string    `json:"step"`
		OpenedAt    time.Time `json:"opened_at"`
		DueAt       time.Time `json:"due_at"`
	}
	FollowUpDueData struct {
		FollowUpID uuid.UUID `json:"follow_up_id"`
		By         string    `json:"by"`
		DueAt      time.Time `json:"due_at"`
	}
	ContactDueData struct {
		Tier          string     `json:"tier"`
		CadenceDays   int        `json:"cadence_days"`
		LastContactAt *time.Time `json:"last_contact_at"`
		DueAt         time.Time  `json:"due_at"`
	}
)

func reminderTable() []mapping {
	return []mapping{
		entry(TypeReminderComplaintSLAAtRisk, func(e domain.ComplaintSLAAtRisk) ComplaintSLAData {
			return ComplaintSLAData{ComplaintID: e.ComplaintID, Severity: string(e.Severity), Step: e.Step, OpenedAt: e.OpenedAt.UTC(), DueAt: e.DueAt.UTC()}
		}),
		entry(TypeReminderComplaintSLABreached, func(e domain.ComplaintSLABreached) ComplaintSLAData {
			return ComplaintSLAData{ComplaintID: e.ComplaintID, Severity: string(e.Severity), Step: e.Step, OpenedAt: e.OpenedAt.UTC(), DueAt: e.DueAt.UTC()}
		}),
		entry(TypeReminderFollowUpDue, func(e domain.FollowUpDue) FollowUpDueData {
			return FollowUpDueData{FollowUpID: e.FollowUpID, By: e.By, DueAt: e.DueAt.UTC()}
		}),
		entry(TypeReminderContactDue, func(e domain.ContactDue) ContactDueData {
			var last *time.Time
			if e.LastContactAt != nil {
				t := e.LastContactAt.UTC()
				last = &t
			}
			return ContactDueData{Tier: e.Tier, CadenceDays: e.CadenceDays, LastContactAt: last, DueAt: e.DueAt.UTC()}
		}),
	}
}

// ReminderTypes lists the reminders' public types, sorted.
func ReminderTypes() []string {
	return []string{TypeReminderComplaintSLAAtRisk, TypeReminderComplaintSLABreached, TypeReminderContactDue, TypeReminderFollowUpDue}
}

// valueOfReminder returns e (or what it points to) as a reminder event.
func valueOfReminder(e domain.Event) (domain.ReminderEvent, bool) {
	if r, ok := e.(domain.ReminderEvent); ok {
		return r, true
	}
	if rv := reflect.ValueOf(e); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		r, ok := rv.Elem().Interface().(domain.ReminderEvent)
		return r, ok
	}
	return nil, false
}
