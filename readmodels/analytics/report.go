package analytics

import (
	"time"
)

// GroupBy is how a report groups its figures.
type GroupBy string

const (
	// All makes one group, keyed "all".
	All     GroupBy = ""
	Segment GroupBy = "segment"
	Tier    GroupBy = "tier"
	Region  GroupBy = "region"
	// Owner is the customer's account manager.
	Owner GroupBy = "owner"
	// Month is the calendar month (UTC) of the fact counted, keyed
	// YYYY-MM.
	Month GroupBy = "month"
)

// GroupBys lists the groupings a request may name.
func GroupBys() []GroupBy { return []GroupBy{Segment, Tier, Region, Owner, Month} }

// Family is a set of figures answered together.
type Family string

const (
	Satisfaction Family = "satisfaction"
	Churn        Family = "churn"
	Complaints   Family = "complaints"
	Contacts     Family = "contacts"
	// KPIs are the headline figures of every family.
	KPIs Family = "kpis"
)

// DefaultPeriod is the period a report covers without from: the 90 days
// up to to.
const DefaultPeriod = 90 * 24 * time.Hour

// CoverageWindow is how far back a contact counts for contact coverage:
// the 30 days (of 24 h) up to the instant judged.
const CoverageWindow = 30 * 24 * time.Hour

// MaxMonths bounds the months of a report grouped by month.
const MaxMonths = 1200

// Params select a report: the period [From, To) and the grouping.
type Params struct {
	From, To time.Time
	GroupBy  GroupBy
}

// Months counts the calendar months (UTC) the period touches.
func (p Params) Months() int {
	f, t := p.From.UTC(), p.To.Add(-time.Microsecond).UTC()
	return (t.Year()-f.Year())*12 + int(t.Month()) - int(f.Month()) + 1
}

// Group holds the figures of one group. A nil figure has a zero
// denominator: there was nothing to compute it from.
type Group struct {
	// Key is the group's value: "all" without grouping, a label, an
	// account manager or a month (YYYY-MM); nil for customers without the
	// classification or account manager.
	Key *string

	// Satisfaction.
	CSATPct       *float64
	CSATAvg       *float64
	NPS           *float64
	Responses     int64
	CSATResponses int64
	NPSResponses  int64

	// Churn.
	ChurnRate     *float64
	RetentionRate *float64
	ActiveAtStart int64
	Churned       int64

	// Complaints.
	ComplaintRate         *float64
	ResolutionRate        *float64
	FirstResponseMedianS  *float64
	ResolutionMedianS     *float64
	SLABreaches           int64
	FirstResponseBreaches int64
	ResolutionBreaches    int64
	Filed                 int64
	Resolved              int64
	ActiveInPeriod        int64

	// Contacts.
	ContactCoverage  *float64
	FollowUpsOverdue int64
	ActiveAtEnd      int64
	Contacted        int64
	// CadenceAdherence is the share of the customers active at the end
	// that were not due for a contact then (NotDue ÷ ActiveAtEnd × 100);
	// OverContacted counts the customers with more than the maximum of
	// outbound contacts within some 7 days of the period.
	CadenceAdherence *float64
	NotDue           int64
	OverContacted    int64
}

// Report is the figures of a period by group.
type Report struct {
	Params
	Groups []Group
}

// columns are each family's figures, in the order the API answers them.
var columns = map[Family][]string{
	Satisfaction: {"csat_pct", "csat_avg", "nps", "responses", "csat_responses", "nps_responses"},
	Churn:        {"churn_rate", "retention_rate", "active_at_start", "churned"},
	Complaints: {"complaint_rate", "resolution_rate", "first_response_median_s", "resolution_median_s",
		"sla_breaches", "first_response_breaches", "resolution_breaches", "filed", "resolved", "active_in_period"},
	Contacts: {"contact_coverage", "follow_ups_overdue", "active_at_end", "contacted", "cadence_adherence", "over_contacted", "not_due"},
	KPIs: {"csat_pct", "csat_avg", "nps", "responses", "churn_rate", "retention_rate",
		"complaint_rate", "resolution_rate", "first_response_median_s", "resolution_median_s", "sla_breaches",
		"contact_coverage", "follow_ups_overdue", "cadence_adherence", "over_contacted"},
}

// Columns lists a family's figures in answer order (without the key).
func Columns(f Family) []string { return columns[f] }

// Families lists the families.
func Families() []Family { return []Family{Satisfaction, Churn, Complaints, Contacts, KPIs} }

// Figure returns the named figure: a *float64 (nil when undefined) or an
// int64.
func (g *Group) Figure(name string) any {
	switch name {
	case "csat_pct":
		return g.CSATPct
	case "csat_avg":
		return g.CSATAvg
	case "nps":
		return g.NPS
	case "responses":
		return g.Responses
	case "csat_responses":
		return g.CSATResponses
	case "nps_responses":
		return g.NPSResponses
	case "churn_rate":
		return g.ChurnRate
	case "retention_rate":
		return g.RetentionRate
	case "active_at_start":
		return g.ActiveAtStart
	case "churned":
		return g.Churned
	case "complaint_rate":
		return g.ComplaintRate
	case "resolution_rate":
		return g.ResolutionRate
	case "first_response_median_s":
		return g.FirstResponseMedianS
	case "resolution_median_s":
		return g.ResolutionMedianS
	case "sla_breaches":
		return g.SLABreaches
	case "first_response_breaches":
		return g.FirstResponseBreaches
	case "resolution_breaches":
		return g.ResolutionBreaches
	case "filed":
		return g.Filed
	case "resolved":
		return g.Resolved
	case "active_in_period":
		return g.ActiveInPeriod
	case "contact_coverage":
		return g.ContactCoverage
	case "follow_ups_overdue":
		return g.FollowUpsOverdue
	case "active_at_end":
		return g.ActiveAtEnd
	case "contacted":
		return g.Contacted
	case "cadence_adherence":
		return g.CadenceAdherence
	case "over_contacted":
		return g.OverContacted
	case "not_due":
		return g.NotDue
	}
	return nil
}

// percent is 100 × part ÷ whole, nil when whole is 0.
func percent(part, whole int64) *float64 {
	if whole == 0 {
		return nil
	}
	v := 100 * float64(part) / float64(whole)
	return &v
}

func ratio(sum, n int64) *float64 {
	if n == 0 {
		return nil
	}
	v := float64(sum) / float64(n)
	return &v
}
