package domain

import (
	"slices"
	"time"

	"github.com/google/uuid"
)

// Fold rebuilds a customer from its events, oldest first. Fold() is the zero
// (unregistered) Customer. To rebuild the customer "as of" an instant, fold
// the events recorded up to that instant.
func Fold(events ...Event) Customer {
	var c Customer
	for _, e := range events {
		c = Evolve(c, e)
	}
	return c
}

// Evolve applies one event to a state and returns the new state. It accepts
// every event it is given, because events are facts: the rules were checked
// by Decide when the event was produced, and a past event must replay even if
// the rules have changed since. Unknown events (and nil) leave the state
// unchanged.
//
// Evolve never writes into memory reachable from c: a map or slice it changes
// is copied first. Callers can therefore cache a state and evolve it along
// several paths.
func Evolve(c Customer, e Event) Customer {
	switch e := valueOf(e).(type) {
	case CustomerRegistered:
		c.ID = e.CustomerID
		c.Registered = true
		c.Status = StatusActive
		c.Name, c.Email, c.Phone, c.Company = e.Name, e.Email, e.Phone, e.Company
		c.Tags = cloneTags(e.Tags)
		c.Segment, c.Tier, c.Region, c.Industry = e.Segment, e.Tier, e.Region, e.Industry
		c.RegisteredAt = e.OccurredAt
		c.ActiveSince = e.OccurredAt

	case CustomerProfileUpdated:
		setIfGiven(&c.Name, e.Name)
		setIfGiven(&c.Email, e.Email)
		setIfGiven(&c.Phone, e.Phone)
		setIfGiven(&c.Company, e.Company)
		if e.Tags != nil {
			c.Tags = cloneTags(*e.Tags)
		}

	case CustomerClassified:
		setIfGiven(&c.Segment, e.Segment)
		setIfGiven(&c.Tier, e.Tier)
		setIfGiven(&c.Region, e.Region)
		setIfGiven(&c.Industry, e.Industry)

	case TeamMemberAssigned:
		team := make(map[Role]string, len(c.Team)+1)
		for role, member := range c.Team {
			team[role] = member
		}
		team[e.Role] = e.Member
		c.Team = team

	case ContactLogged:
		c.recorded.contacts = c.recorded.contacts.with(e.ContactID)
		if e.OccurredAt.After(c.LastContactAt) {
			c.LastContactAt = e.OccurredAt
		}
		c.FollowUps = completeFollowUps(c.FollowUps, e.OccurredAt)

	case FollowUpScheduled:
		c.FollowUps = append(slices.Clip(c.FollowUps), FollowUp{
			ID:          e.FollowUpID,
			DueAt:       e.DueAt,
			By:          e.By,
			Note:        e.Note,
			ScheduledAt: e.OccurredAt,
		})

	case ComplaintFiled:
		c.Complaints = append(slices.Clip(c.Complaints), Complaint{
			ID:          e.ComplaintID,
			Category:    e.Category,
			Severity:    e.Severity,
			Description: e.Description,
			Channel:     e.Channel,
			Status:      ComplaintStatusFiled,
			FiledAt:     e.OccurredAt,
			OpenedAt:    e.OccurredAt,
			Openings:    1,
		})

	case ComplaintAssigned:
		c = c.withComplaint(e.ComplaintID, func(complaint *Complaint) {
			complaint.Assignee = e.Assignee
		})

	case ComplaintAcknowledged:
		c = c.withComplaint(e.ComplaintID, func(complaint *Complaint) {
			complaint.Acknowledged = true
			complaint.AcknowledgedAt = e.OccurredAt
			// An escalated complaint stays escalated: the status shows the
			// furthest step of the opening, and escalation is further along
			// than a first response.
			if complaint.Status == ComplaintStatusFiled || complaint.Status == ComplaintStatusReopened {
				complaint.Status = ComplaintStatusAcknowledged
			}
		})

	case ComplaintEscalated:
		c = c.withComplaint(e.ComplaintID, func(complaint *Complaint) {
			complaint.Status = ComplaintStatusEscalated
			complaint.Escalations++
		})

	case ComplaintResolved:
		c = c.withComplaint(e.ComplaintID, func(complaint *Complaint) {
			complaint.Status = ComplaintStatusResolved
			complaint.ResolvedAt = e.OccurredAt
		})

	case ComplaintReopened:
		c = c.withComplaint(e.ComplaintID, func(complaint *Complaint) {
			complaint.Status = ComplaintStatusReopened
			complaint.OpenedAt = e.OccurredAt
			complaint.Openings++
			complaint.Acknowledged = false
			complaint.AcknowledgedAt = time.Time{}
			complaint.ResolvedAt = time.Time{}
		})

	case SurveyRecorded:
		c.recorded.surveys = c.recorded.surveys.with(e.SurveyID)
		c.Surveys = c.Surveys.with(e)

	case CustomerChurned:
		c.Status = StatusChurned
		c.ChurnedAt = e.OccurredAt

	case CustomerReactivated:
		c.Status = StatusActive
		c.ChurnedAt = time.Time{}
		c.ActiveSince = e.OccurredAt

	case PurchaseRecorded, PurchaseRefunded, PointsAwarded, PointsRedeemed, PointsRevoked:
		c.Value = evolveValue(c.Value, e)

	case CustomerDataErased:
		c = c.withoutPersonalData()
		c.Status = StatusErased
		c.ErasedAt = e.OccurredAt
	}
	return c
}

// withComplaint returns c with one complaint changed in a fresh copy of the
// complaint list; an unknown id leaves c as it is.
func (c Customer) withComplaint(id uuid.UUID, change func(*Complaint)) Customer {
	i := c.complaintIndex(id)
	if i < 0 {
		return c
	}
	complaints := slices.Clone(c.Complaints)
	change(&complaints[i])
	c.Complaints = complaints
	return c
}

// completeFollowUps marks done every pending follow-up scheduled at or before
// a contact that occurred at contactAt. It copies the list only when something
// changes.
func completeFollowUps(followUps []FollowUp, contactAt time.Time) []FollowUp {
	completes := func(f FollowUp) bool { return !f.Done && !contactAt.Before(f.ScheduledAt) }
	if !slices.ContainsFunc(followUps, completes) {
		return followUps
	}
	updated := slices.Clone(followUps)
	for i := range updated {
		if completes(updated[i]) {
			updated[i].Done = true
			updated[i].DoneAt = contactAt
		}
	}
	return updated
}

// with slots a survey into the summary by its answered_at, so that surveys
// recorded out of order still yield the latest answers.
func (s SurveySummary) with(e SurveyRecorded) SurveySummary {
	s.Count++
	answeredAt := e.OccurredAt
	if e.CSAT != nil {
		csat := *e.CSAT
		switch {
		case s.LastCSAT == nil || !answeredAt.Before(s.LastCSATAt):
			s.PrevCSAT, s.PrevCSATAt = s.LastCSAT, s.LastCSATAt
			s.LastCSAT, s.LastCSATAt = &csat, answeredAt
		case s.PrevCSAT == nil || !answeredAt.Before(s.PrevCSATAt):
			s.PrevCSAT, s.PrevCSATAt = &csat, answeredAt
		}
	}
	if e.NPS != nil && (s.LastNPS == nil || !answeredAt.Before(s.LastNPSAt)) {
		nps := *e.NPS
		s.LastNPS, s.LastNPSAt = &nps, answeredAt
	}
	return s
}

// withoutPersonalData clears every personal field the state holds, keeping
// classification, team, dates, channels, severities and scores so that the
// figures built on them do not change.
func (c Customer) withoutPersonalData() Customer {
	c.Name, c.Email, c.Phone, c.Company = "", "", "", ""
	c.Tags = nil
	if len(c.Complaints) > 0 {
		complaints := slices.Clone(c.Complaints)
		for i := range complaints {
			complaints[i].Description = ""
		}
		c.Complaints = complaints
	}
	if len(c.FollowUps) > 0 {
		followUps := slices.Clone(c.FollowUps)
		for i := range followUps {
			followUps[i].Note = ""
		}
		c.FollowUps = followUps
	}
	return c
}

func setIfGiven(field *string, value *string) {
	if value != nil {
		*field = *value
	}
}

// cloneTags copies a tag list so the state never shares memory with an event;
// an empty list becomes nil so that "no tags" has one representation.
func cloneTags(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	return slices.Clone(tags)
}
