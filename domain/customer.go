package domain

import (
	"time"

	"github.com/google/uuid"
)

// Customer is the state of one customer, folded from its events. It is a
// value: Evolve returns a new Customer and never writes into the maps and
// slices of the one it was given, so a state may be cached and shared. Treat
// the maps and slices of a Customer as read-only.
//
// The zero Customer is one that has not registered yet.
type Customer struct {
	ID         uuid.UUID
	Registered bool
	Status     CustomerStatus

	// Profile (personal data: cleared by CustomerDataErased).
	Name    string
	Email   string
	Phone   string
	Company string
	Tags    []string

	// Classification.
	Segment  string
	Tier     string
	Region   string
	Industry string

	// Team maps each filled role to its member; nil when no role is filled.
	Team map[Role]string

	RegisteredAt time.Time
	// LastContactAt is the latest occurred_at of any contact (contacts may be
	// logged out of order); zero when there was none.
	LastContactAt time.Time
	// ChurnedAt is the churned_at of the current churn; zero unless churned
	// (kept when a churned customer is erased).
	ChurnedAt time.Time
	// ActiveSince starts the current (or, once churned, the last) active
	// spell: the registration or the latest reactivation. A churn may not
	// be dated before it (PRODUCT.md, Definitions).
	ActiveSince time.Time
	ErasedAt    time.Time

	// Complaints in filing order.
	Complaints []Complaint
	// FollowUps in scheduling order.
	FollowUps []FollowUp
	Surveys   SurveySummary

	// Value is the customer's purchases and loyalty points.
	Value Value

	// recorded holds the ids of the customer's contacts and surveys, so
	// that Decide recognises a retried command by the id it creates.
	recorded recordedIDs
}

// Complaint is the state of one complaint. The timings are those of the last
// opening (filing, or the latest reopening), as the product's figures use.
type Complaint struct {
	ID          uuid.UUID
	Category    string
	Severity    Severity
	Description string // personal: cleared by CustomerDataErased
	Channel     Channel
	Status      ComplaintStatus
	Assignee    string

	FiledAt time.Time
	// OpenedAt starts the last opening: FiledAt, or the latest reopening.
	OpenedAt time.Time
	// Acknowledged tells whether the last opening has had its first response.
	Acknowledged   bool
	AcknowledgedAt time.Time // of the last opening; zero if not acknowledged
	ResolvedAt     time.Time // of the last opening; zero while open
	// Openings counts filing plus reopenings.
	Openings    int
	Escalations int
}

// IsOpen reports whether the complaint still awaits a resolution.
func (c Complaint) IsOpen() bool { return c.Status.IsOpen() }

// FirstResponseTime is the time from the start of the last opening to its
// first response: the acknowledgement or, when it was resolved without
// one, the resolution (PRODUCT.md, Definitions); ok is false until either.
func (c Complaint) FirstResponseTime() (d time.Duration, ok bool) {
	switch {
	case c.Acknowledged:
		return c.AcknowledgedAt.Sub(c.OpenedAt), true
	case !c.IsOpen():
		return c.ResolvedAt.Sub(c.OpenedAt), true
	}
	return 0, false
}

// ResolutionTime is the time from the start of the last opening to its
// resolution; ok is false while open.
func (c Complaint) ResolutionTime() (d time.Duration, ok bool) {
	if c.IsOpen() {
		return 0, false
	}
	return c.ResolvedAt.Sub(c.OpenedAt), true
}

// FollowUp is a promised contact.
type FollowUp struct {
	ID    uuid.UUID
	DueAt time.Time
	By    string
	Note  string // personal: cleared by CustomerDataErased
	// ScheduledAt is when it was scheduled; only contacts that occurred at or
	// after it complete it.
	ScheduledAt time.Time
	Done        bool
	// DoneAt is the occurred_at of the contact that completed it.
	DoneAt time.Time
}

// Overdue reports whether the follow-up is past due at now without a contact
// having completed it.
func (f FollowUp) Overdue(now time.Time) bool { return !f.Done && now.After(f.DueAt) }

// SurveySummary keeps what the product reports about surveys: the latest
// answers by answered_at (not by recording order) and the CSAT before the
// latest one, for the "CSAT dropped" risk factor. The *At fields let a survey
// recorded late slot into the right place.
type SurveySummary struct {
	Count      int
	LastCSAT   *int
	LastCSATAt time.Time
	PrevCSAT   *int
	PrevCSATAt time.Time
	LastNPS    *int
	LastNPSAt  time.Time
}

// IsErased reports whether the customer's personal data was erased.
func (c Customer) IsErased() bool { return c.Status == StatusErased }

// OpenComplaints counts the complaints that await a resolution.
func (c Customer) OpenComplaints() int {
	n := 0
	for _, complaint := range c.Complaints {
		if complaint.IsOpen() {
			n++
		}
	}
	return n
}

// Complaint finds a complaint by id.
func (c Customer) Complaint(id uuid.UUID) (Complaint, bool) {
	if i := c.complaintIndex(id); i >= 0 {
		return c.Complaints[i], true
	}
	return Complaint{}, false
}

// FollowUp finds a follow-up by id.
func (c Customer) FollowUp(id uuid.UUID) (FollowUp, bool) {
	if i := c.followUpIndex(id); i >= 0 {
		return c.FollowUps[i], true
	}
	return FollowUp{}, false
}

// OverdueFollowUps counts the follow-ups past due at now with no contact since
// they were scheduled.
func (c Customer) OverdueFollowUps(now time.Time) int {
	n := 0
	for _, f := range c.FollowUps {
		if f.Overdue(now) {
			n++
		}
	}
	return n
}

func (c Customer) complaintIndex(id uuid.UUID) int {
	for i, complaint := range c.Complaints {
		if complaint.ID == id {
			return i
		}
	}
	return -1
}

func (c Customer) followUpIndex(id uuid.UUID) int {
	for i, f := range c.FollowUps {
		if f.ID == id {
			return i
		}
	}
	return -1
}
