package http

import (
	"net/http"
	"net/url"
	"time"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/risk"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// The web console (infra/console) is served by this server under
// /console/ and reads through the same query interfaces as the API. What
// follows is what it shares with the API so that a page and the API answer
// the same query the same way: the parameter rules, and the CSV export.

// mountConsole hands /console/ to the console's handler, when one is
// configured. The console authenticates with its own session cookies, so
// it bypasses the API's bearer-key middleware.
func (s *Server) mountConsole() {
	if s.cfg.Console == nil {
		return
	}
	s.router.Handle("/console", http.RedirectHandler("/console/", http.StatusMovedPermanently)).Methods(http.MethodGet, http.MethodHead)
	s.router.PathPrefix("/console/").Handler(s.cfg.Console)
}

// ParseAnalyticsParams reads group_by, from and to as /v1/analytics/*
// does (a *Problem naming each bad parameter).
func ParseAnalyticsParams(q url.Values, now time.Time) (analytics.Params, error) {
	return parseAnalyticsParams(q, now)
}

// WriteReportCSV writes a report as the API's CSV answer (Accept:
// text/csv), byte for byte.
func WriteReportCSV(w http.ResponseWriter, f analytics.Family, rep analytics.Report) error {
	return writeReportCSV(w, f, rep)
}

// FigureText formats a figure as the API's JSON does ("null" when
// undefined), so a page can carry the exact value beside the rounded one.
func FigureText(v any) string { return string(figureJSON(v)) }

// WorkComplaintParams reads GET /v1/work/complaints' parameters.
func WorkComplaintParams(q url.Values) (work.ComplaintFilter, int, string, error) {
	p := parseWorkParams(q, work.ComplaintsCursor)
	f := work.ComplaintFilter{Filter: p.filter,
		SLA:      p.oneOf("sla", work.SLABreached, work.SLAAtRisk, work.SLAAny),
		Severity: p.oneOf("severity", string(domain.SeverityLow), string(domain.SeverityMedium), string(domain.SeverityHigh), string(domain.SeverityCritical)),
		Assignee: p.text("assignee", domain.MaxShortTextLength, "a staff member's name"),
	}
	return f, p.limit, p.cursor, p.p.err()
}

// WorkFollowUpParams reads GET /v1/work/follow-ups' parameters.
func WorkFollowUpParams(q url.Values) (work.FollowUpFilter, int, string, error) {
	p := parseWorkParams(q, work.FollowUpsCursor)
	f := work.FollowUpFilter{Filter: p.filter,
		State: p.oneOf("state", work.FollowUpOverdue, work.FollowUpDueToday, work.FollowUpUpcoming),
		By:    p.text("by", domain.MaxShortTextLength, "a staff member's name"),
	}
	return f, p.limit, p.cursor, p.p.err()
}

// WorkContactDueParams reads GET /v1/work/contact-due's parameters.
func WorkContactDueParams(q url.Values) (work.Filter, int, string, error) {
	p := parseWorkParams(q, work.ContactDueCursor)
	return p.filter, p.limit, p.cursor, p.p.err()
}

// WorkAtRiskParams reads GET /v1/work/at-risk's parameters.
func WorkAtRiskParams(q url.Values) (work.AtRiskFilter, int, string, error) {
	p := parseWorkParams(q, work.AtRiskCursor)
	f := work.AtRiskFilter{Filter: p.filter, Level: p.oneOf("level", risk.LevelHigh, risk.LevelMedium)}
	return f, p.limit, p.cursor, p.p.err()
}

// SLAOf is a queue row's SLA state as the API names it: breached, at_risk
// or on_track.
func SLAOf(c work.OpenComplaint) string {
	switch {
	case c.SLA.Breached():
		return work.SLABreached
	case c.AtRisk:
		return work.SLAAtRisk
	}
	return "on_track"
}

// ParseAnalyticsParamsError is the 422 the API answers for a bad
// parameter, for the console's own parameters.
func ParseAnalyticsParamsError(field, message string) error {
	return invalidFields(FieldError{Field: field, Message: message})
}

// InvalidFields is the API's 422 naming each bad parameter.
func InvalidFields(fields ...FieldError) error { return invalidFields(fields...) }

// NotFound is the API's 404 with its reason.
func NotFound(reason, detail string) error { return newProblem(http.StatusNotFound, reason, detail) }

// CustomerListParams reads GET /v1/customers' parameters.
func CustomerListParams(q url.Values) (customers.Filter, int, string, error) {
	p, err := parseCustomerListQuery(q)
	return p.filter, p.limit, p.cursor, err
}

// Conflict is the API's 409 with its reason.
func Conflict(reason, detail string) error { return newProblem(http.StatusConflict, reason, detail) }

// FailureLimiter is the API's limit on refused keys per client address,
// for the console's sign-in form: a flood of bad keys costs the key store
// at most a burst of lookups per address there too.
type FailureLimiter struct{ a *addrLimiter }

// NewFailureLimiter allows perSecond refused keys per address (burst at
// once), tracking at most max addresses.
func NewFailureLimiter(perSecond float64, burst, max int) *FailureLimiter {
	return &FailureLimiter{a: newAddrLimiter(perSecond, burst, max)}
}

// Exhausted says whether the request's address has no refusal left, and
// how long until it has one.
func (f *FailureLimiter) Exhausted(r *http.Request) (time.Duration, bool) {
	return f.a.exhausted(clientAddress(r))
}

// Spend counts a refused key against the request's address.
func (f *FailureLimiter) Spend(r *http.Request) { f.a.spend(clientAddress(r)) }
