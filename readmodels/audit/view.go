package audit

import (
	"time"

	"github.com/rapport-crm/rapport/domain"
)

// personal renders a personal field: null once the customer's data was
// erased, even in a state from before the erasure (the field is not empty,
// it is unreadable).
func personal(hidden bool, v string) *string {
	if hidden {
		return nil
	}
	return &v
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// CustomerView renders a folded domain.Customer for auditors, with the
// field names of the HTTP API; personal fields are null once erased.
func CustomerView(c domain.Customer) map[string]any { return customerView(c, c.IsErased()) }

// CustomerView renders the state: personal fields are null when the
// customer's data has been erased since, as in the customer answer.
func (s State) CustomerView() map[string]any {
	return customerView(s.Customer, s.Erased || s.Customer.IsErased())
}

func customerView(c domain.Customer, hidden bool) map[string]any {
	team := map[string]string{}
	for role, member := range c.Team {
		team[string(role)] = member
	}
	tags := any(c.Tags)
	if hidden {
		tags = nil
	} else if c.Tags == nil {
		tags = []string{}
	}
	complaints := make([]map[string]any, len(c.Complaints))
	for i, k := range c.Complaints {
		complaints[i] = map[string]any{
			"complaint_id": k.ID, "category": k.Category, "severity": k.Severity,
			"description": personal(hidden, k.Description), "channel": k.Channel, "status": k.Status,
			"assignee": k.Assignee, "filed_at": k.FiledAt, "opened_at": k.OpenedAt,
			"acknowledged_at": optionalTime(k.AcknowledgedAt), "resolved_at": optionalTime(k.ResolvedAt),
			"openings": k.Openings, "escalations": k.Escalations,
		}
	}
	followUps := make([]map[string]any, len(c.FollowUps))
	for i, f := range c.FollowUps {
		followUps[i] = map[string]any{
			"follow_up_id": f.ID, "due_at": f.DueAt, "by": f.By, "note": personal(hidden, f.Note),
			"scheduled_at": f.ScheduledAt, "done": f.Done, "done_at": optionalTime(f.DoneAt),
		}
	}
	return map[string]any{
		"id": c.ID, "status": c.Status,
		"name": personal(hidden, c.Name), "email": personal(hidden, c.Email), "phone": personal(hidden, c.Phone),
		"company": personal(hidden, c.Company), "tags": tags,
		"segment": c.Segment, "tier": c.Tier, "region": c.Region, "industry": c.Industry,
		"team":            team,
		"registered_at":   c.RegisteredAt,
		"last_contact_at": optionalTime(c.LastContactAt),
		"churned_at":      optionalTime(c.ChurnedAt),
		"erased_at":       optionalTime(c.ErasedAt),
		"open_complaints": c.OpenComplaints(),
		"last_csat":       c.Surveys.LastCSAT,
		"last_nps":        c.Surveys.LastNPS,
		"surveys":         c.Surveys.Count,
		"complaints":      complaints,
		"follow_ups":      followUps,
	}
}
