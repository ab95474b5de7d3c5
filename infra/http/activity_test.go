package http_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// activityPage is a page of a per-customer list.
type activityPage struct {
	Items      []map[string]any `json:"items"`
	NextCursor *string          `json:"next_cursor"`
}

// activityGet reads path as role and wants 200.
func activityGet(t *testing.T, m *apptest.Main, role, path string) *apptest.Response {
	t.Helper()
	resp := m.Get(t, role, path)
	if resp.Status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.Status, resp.Body)
	}
	return resp
}

// activityProblem wants a problem with status, reason and (for 422) the field
// named first.
func activityProblem(t *testing.T, resp *apptest.Response, status int, reason, field string) {
	t.Helper()
	var p fieldProblem
	resp.JSON(t, &p)
	if resp.Status != status || p.Reason != reason || (field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != field)) {
		t.Errorf("%d %s, want %d %s naming %q", resp.Status, resp.Body, status, reason, field)
	}
}

// TestActivityLists pages through each list with limit and cursor, in the
// documented order, and checks the parameters' errors.
func TestActivityLists(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	reg := requireStatus(t, m.Post(t, "/v1/customers", map[string]any{"name": "Ada", "phone": "+44 1 2345"}), http.StatusCreated)
	id := reg["customer_id"].(string)
	base := "/v1/customers/" + id
	now := time.Now().UTC().Truncate(time.Second)
	var position float64
	post := func(path string, body map[string]any) string {
		t.Helper()
		res := requireStatus(t, m.Post(t, base+path, body), http.StatusCreated)
		position = max(position, res["position"].(float64))
		for _, k := range []string{"contact_id", "survey_id", "complaint_id", "follow_up_id"} {
			if v, ok := res[k].(string); ok {
				return v
			}
		}
		t.Fatalf("no created id in %v", res)
		return ""
	}
	// Five contacts, two of them at the same instant (ordered by id).
	var contacts []string
	for i, hoursAgo := range []int{5, 1, 3, 3, 2} {
		contacts = append(contacts, post("/contacts", map[string]any{"channel": "email", "direction": "inbound",
			"summary": fmt.Sprintf("contact %d", i), "by": "bob", "occurred_at": now.Add(-time.Duration(hoursAgo) * time.Hour).Format(time.RFC3339)}))
	}
	var surveyIDs []string
	for i, hoursAgo := range []int{4, 2, 6} {
		surveyIDs = append(surveyIDs, post("/surveys", map[string]any{"csat": i + 1, "answered_at": now.Add(-time.Duration(hoursAgo) * time.Hour).Format(time.RFC3339)}))
	}
	var complaintIDs []string
	for i := range 3 {
		complaintIDs = append(complaintIDs, post("/complaints", map[string]any{"category": "c", "severity": "low", "description": fmt.Sprint(i)}))
	}
	var followUps []string
	for _, hours := range []int{30, 10, 20} {
		followUps = append(followUps, post("/follow-ups", map[string]any{"due_at": now.Add(time.Duration(hours) * time.Hour).Format(time.RFC3339), "by": "bob"}))
	}
	wait := fmt.Sprintf("min_position=%d", uint64(position))

	// walk reads a whole list a page at a time and returns the ids.
	walk := func(list string, limit int) []string {
		t.Helper()
		var ids []string
		path := base + "/" + list + "?" + wait + "&limit=" + fmt.Sprint(limit)
		for pages := 0; ; pages++ {
			var page activityPage
			activityGet(t, m, "writer", path).JSON(t, &page)
			if len(page.Items) > limit || pages > 10 {
				t.Fatalf("%s: page of %d items with limit %d", list, len(page.Items), limit)
			}
			for _, item := range page.Items {
				ids = append(ids, item["id"].(string))
			}
			if page.NextCursor == nil {
				return ids
			}
			path = base + "/" + list + "?limit=" + fmt.Sprint(limit) + "&cursor=" + url.QueryEscape(*page.NextCursor)
		}
	}
	// Contacts: latest occurred_at first, ties by id (descending).
	tied := []string{contacts[2], contacts[3]}
	slices.Sort(tied)
	wantContacts := []string{contacts[1], contacts[4], tied[1], tied[0], contacts[0]}
	for _, limit := range []int{1, 2, 5, 50} {
		if got := walk("contacts", limit); !slices.Equal(got, wantContacts) {
			t.Errorf("contacts with limit %d: %v, want %v", limit, got, wantContacts)
		}
	}
	// Surveys: latest answered_at first.
	if got := walk("surveys", 2); !slices.Equal(got, []string{surveyIDs[1], surveyIDs[0], surveyIDs[2]}) {
		t.Errorf("surveys: %v", got)
	}
	// Complaints: latest filed first.
	if got := walk("complaints", 2); !slices.Equal(got, []string{complaintIDs[2], complaintIDs[1], complaintIDs[0]}) {
		t.Errorf("complaints: %v (filed %v)", got, complaintIDs)
	}
	// Follow-ups: soonest due first.
	if got := walk("follow-ups", 2); !slices.Equal(got, []string{followUps[1], followUps[2], followUps[0]}) {
		t.Errorf("follow-ups: %v", got)
	}

	// The parameters' errors name the parameter.
	var page activityPage
	activityGet(t, m, "writer", base+"/contacts?limit=1").JSON(t, &page)
	contactsCursor := *page.NextCursor
	for q, field := range map[string]string{
		"limit=0": "limit", "limit=501": "limit", "limit=ten": "limit", "limit=": "limit", "limit=1.5": "limit",
		"cursor=": "cursor", "cursor=nope": "cursor", "cursor=" + url.QueryEscape(contactsCursor+"x"): "cursor",
	} {
		activityProblem(t, m.Get(t, "writer", base+"/contacts?"+q), http.StatusUnprocessableEntity, "invalid_fields", field)
	}
	// A cursor of one list is not one of another.
	activityProblem(t, m.Get(t, "writer", base+"/complaints?cursor="+url.QueryEscape(contactsCursor)), http.StatusUnprocessableEntity, "invalid_fields", "cursor")
	activityGet(t, m, "auditor", base+"/contacts?limit=500")
	activityGet(t, m, "analyst", base+"/follow-ups?limit=1")

	// Unknown customers are 404 for lists and items; a known customer
	// without items has an empty list.
	unknown := "/v1/customers/" + uuid.NewString()
	for _, list := range []string{"contacts", "complaints", "surveys", "follow-ups"} {
		activityProblem(t, m.Get(t, "writer", unknown+"/"+list), http.StatusNotFound, "customer_not_found", "")
		activityProblem(t, m.Get(t, "writer", unknown+"/"+list+"/"+uuid.NewString()), http.StatusNotFound, "customer_not_found", "")
	}
	activityProblem(t, m.Get(t, "writer", "/v1/customers/nope/contacts"), http.StatusNotFound, "customer_not_found", "")
	other := requireStatus(t, m.Post(t, "/v1/customers", map[string]any{"name": "Bo", "phone": "+44 1 2346"}), http.StatusCreated)
	for _, list := range []string{"contacts", "complaints", "surveys", "follow-ups"} {
		var empty activityPage
		activityGet(t, m, "writer", fmt.Sprintf("/v1/customers/%s/%s?min_position=%d", other["customer_id"], list, uint64(other["position"].(float64)))).JSON(t, &empty)
		if empty.Items == nil || len(empty.Items) != 0 || empty.NextCursor != nil {
			t.Errorf("%s of a customer without any: %+v", list, empty)
		}
	}
	for list, reason := range map[string]string{"contacts": "contact_not_found", "complaints": "complaint_not_found", "surveys": "survey_not_found", "follow-ups": "follow_up_not_found"} {
		activityProblem(t, m.Get(t, "writer", base+"/"+list+"/"+uuid.NewString()), http.StatusNotFound, reason, "")
		activityProblem(t, m.Get(t, "writer", base+"/"+list+"/42"), http.StatusNotFound, reason, "")
	}
}

// TestActivityItems reads each kind of item: its fields, a follow-up done
// by a later contact or overdue, a complaint's timeline and SLA state, and
// the same items after the customer's erasure.
func TestActivityItems(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	s := &sim{t: t, m: m}
	now := time.Now().UTC().Truncate(time.Second)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	id := s.do(uuid.Nil, at(-72*time.Hour), domain.RegisterCustomer{Name: "Ada", Phone: "+44 1 2347", Segment: "smb"})
	base := "/v1/customers/" + id.String()

	// A follow-up scheduled two days ago, due yesterday, and one scheduled
	// a minute ago, due tomorrow.
	done := s.do(id, at(-48*time.Hour), domain.ScheduleFollowUp{DueAt: now.Add(-24 * time.Hour), By: "bob", Note: "call back"})
	pending := s.do(id, at(-time.Minute), domain.ScheduleFollowUp{DueAt: now.Add(24 * time.Hour), By: "bob"})
	// A contact logged now that occurred 30 hours ago: it completes the
	// first (it occurred after its scheduling, before its due date), not
	// the second (scheduled after the contact occurred).
	early := s.do(id, at(0), domain.LogContact{Channel: domain.ChannelPhone, Direction: domain.DirectionInbound, Summary: "hello",
		By: "carol", OccurredAt: refTo(now.Add(-30 * time.Hour))})
	s.wait()
	var fu map[string]any
	activityGet(t, m, "writer", base+"/follow-ups/"+done.String()+"?min_position="+s.minPosition()).JSON(t, &fu)
	if fu["done"] != true || fu["overdue"] != false || fu["done_at"] != now.Add(-30*time.Hour).Format(time.RFC3339) || fu["done_by_contact_id"] != early.String() || fu["note"] != "call back" {
		t.Errorf("follow-up done by a contact logged late: %v", fu)
	}
	activityGet(t, m, "writer", base+"/follow-ups/"+pending.String()).JSON(t, &fu)
	if fu["done"] != false || fu["overdue"] != false || fu["done_at"] != nil || fu["note"] != nil {
		t.Errorf("pending follow-up: %v", fu)
	}
	// Only contacts logged after a follow-up complete it: one scheduled
	// (at a business time 47 hours ago) after that contact was logged
	// stays open, and is overdue once due.
	late := s.do(id, at(-47*time.Hour), domain.ScheduleFollowUp{DueAt: now.Add(-12 * time.Hour), By: "bob"})
	s.wait()
	activityGet(t, m, "writer", base+"/follow-ups/"+late.String()+"?min_position="+s.minPosition()).JSON(t, &fu)
	if fu["done"] != false || fu["overdue"] != true {
		t.Errorf("overdue follow-up: %v", fu)
	}

	// A complaint through its whole life, reopened at the end: open again,
	// timings of the new opening.
	k := s.do(id, at(-10*time.Hour), domain.FileComplaint{Category: "billing", Severity: domain.SeverityHigh, Description: "charged twice", Channel: domain.ChannelChat})
	s.do(id, at(-9*time.Hour), domain.AssignComplaint{ComplaintID: k, Assignee: "dave"})
	s.do(id, at(-8*time.Hour), domain.AcknowledgeComplaint{ComplaintID: k, By: "dave", Note: "looking"})
	s.do(id, at(-7*time.Hour), domain.EscalateComplaint{ComplaintID: k, To: "billing-team", Reason: "refund"})
	s.do(id, at(-6*time.Hour), domain.ResolveComplaint{ComplaintID: k, By: "erin", Resolution: "refunded"})
	s.do(id, at(-2*time.Hour), domain.ReopenComplaint{ComplaintID: k, Reason: "refund never arrived"})
	survey := s.do(id, at(-time.Hour), domain.RecordSurvey{CSAT: refTo(2), Comment: "slow", ComplaintID: &k})
	s.wait()
	var c map[string]any
	activityGet(t, m, "writer", base+"/complaints/"+k.String()+"?min_position="+s.minPosition()).JSON(t, &c)
	wantFields := map[string]any{"status": "reopened", "openings": 2.0, "escalations": 1.0, "escalated_to": "billing-team", "assignee": "dave",
		"description": "charged twice", "channel": "chat", "severity": "high", "category": "billing",
		"filed_at": at(-10 * time.Hour), "opened_at": at(-2 * time.Hour), "acknowledged_at": nil, "resolved_at": nil, "resolution": nil,
		"first_response_due_at": at(2 * time.Hour), "resolution_due_at": at(70 * time.Hour),
		"first_response_breached": false, "resolution_breached": false, "sla_breached": false}
	for f, v := range wantFields {
		if c[f] != v {
			t.Errorf("complaint %s = %v, want %v", f, c[f], v)
		}
	}
	var kinds []string
	for _, e := range c["timeline"].([]any) {
		kinds = append(kinds, e.(map[string]any)["kind"].(string))
	}
	if want := []string{"filed", "assigned", "acknowledged", "escalated", "resolved", "reopened"}; !slices.Equal(kinds, want) {
		t.Errorf("timeline %v, want %v", kinds, want)
	}
	timeline := c["timeline"].([]any)
	esc, res := timeline[3].(map[string]any), timeline[4].(map[string]any)
	if esc["target"] != "billing-team" || esc["note"] != "refund" || res["by"] != "erin" || res["note"] != "refunded" || res["at"] != at(-6*time.Hour) || res["actor"] != "tester" {
		t.Errorf("timeline entries: %v %v", esc, res)
	}

	// An old critical complaint never answered breaches both targets; one
	// answered in time and resolved late breaches the resolution only.
	old := s.do(id, at(-30*time.Hour), domain.FileComplaint{Category: "outage", Severity: domain.SeverityCritical, Description: "down"})
	slow := s.do(id, at(-29*time.Hour), domain.FileComplaint{Category: "outage", Severity: domain.SeverityCritical, Description: "slow"})
	s.do(id, at(-29*time.Hour+30*time.Minute), domain.AcknowledgeComplaint{ComplaintID: slow, By: "dave"})
	s.do(id, at(-time.Hour), domain.ResolveComplaint{ComplaintID: slow, By: "dave", Resolution: "fixed"})
	s.wait()
	activityGet(t, m, "writer", base+"/complaints/"+old.String()+"?min_position="+s.minPosition()).JSON(t, &c)
	if c["first_response_breached"] != true || c["resolution_breached"] != true || c["sla_breached"] != true || c["first_response_due_at"] != at(-29*time.Hour) {
		t.Errorf("unanswered critical complaint: %v", c)
	}
	activityGet(t, m, "writer", base+"/complaints/"+slow.String()).JSON(t, &c)
	if c["first_response_breached"] != false || c["resolution_breached"] != true || c["status"] != "resolved" || c["resolution"] != "fixed" {
		t.Errorf("late resolution: %v", c)
	}

	var sv map[string]any
	activityGet(t, m, "writer", base+"/surveys/"+survey.String()).JSON(t, &sv)
	if sv["csat"] != 2.0 || sv["nps"] != nil || sv["comment"] != "slow" || sv["complaint_id"] != k.String() || sv["channel"] != nil || sv["answered_at"] != at(-time.Hour) {
		t.Errorf("survey: %v", sv)
	}
	var ct map[string]any
	activityGet(t, m, "writer", base+"/contacts/"+early.String()).JSON(t, &ct)
	if ct["summary"] != "hello" || ct["by"] != "carol" || ct["channel"] != "phone" || ct["direction"] != "inbound" || ct["occurred_at"] != at(-30*time.Hour) {
		t.Errorf("contact: %v", ct)
	}

	// After the erasure every item still reads, without personal text.
	s.do(id, at(0), domain.EraseCustomerData{Reason: "GDPR"})
	s.wait()
	activityGet(t, m, "writer", base+"/contacts/"+early.String()+"?min_position="+s.minPosition()).JSON(t, &ct)
	activityGet(t, m, "writer", base+"/surveys/"+survey.String()).JSON(t, &sv)
	activityGet(t, m, "writer", base+"/follow-ups/"+done.String()).JSON(t, &fu)
	activityGet(t, m, "writer", base+"/complaints/"+k.String()).JSON(t, &c)
	if ct["summary"] != nil || ct["by"] != "carol" || sv["comment"] != nil || sv["csat"] != 2.0 || fu["note"] != nil || fu["done"] != true ||
		c["description"] != nil || c["escalated_to"] != "billing-team" || c["openings"] != 2.0 {
		t.Errorf("after erasure: %v %v %v %v", ct, sv, fu, c)
	}
	for _, e := range c["timeline"].([]any) {
		if note := e.(map[string]any)["note"]; note != nil {
			t.Errorf("timeline note after erasure: %v", note)
		}
	}
	activityGet(t, m, "writer", base+"/complaints/"+slow.String()).JSON(t, &c)
	if c["resolution"] != nil || c["status"] != "resolved" {
		t.Errorf("resolution after erasure: %v", c)
	}
	var page activityPage
	activityGet(t, m, "analyst", base+"/contacts").JSON(t, &page)
	if len(page.Items) != 1 || page.Items[0]["summary"] != nil {
		t.Errorf("list after erasure: %+v", page)
	}
	if strings.Contains(string(activityGet(t, m, "writer", base+"/complaints").Body), "charged twice") {
		t.Error("a complaint description survived the erasure")
	}
}
