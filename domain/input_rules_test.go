package domain

import (
	"testing"
	"time"
)

// TestTextRefusesControlCharacters: every text field of every command
// refuses NUL and the other C0/C1 controls (PRODUCT.md, input rules), so
// that whatever the domain accepts every store can hold.
func TestTextRefusesControlCharacters(t *testing.T) {
	s := func(v string) *string { return &v }
	for _, bad := range []string{"\x00", "\x01", "\x1f", "\x7f", "\u0080", "\u0085", "\u009f", "\v", "\f"} {
		x := "a" + bad + "b"
		cases := []struct {
			name  string
			cmd   Command
			field string
		}{
			{"register name", RegisterCustomer{CustomerID: customerID, Name: x, Phone: "+44 1 2"}, "name"},
			{"register company", RegisterCustomer{CustomerID: customerID, Name: "A", Phone: "+44 1 2", Company: x}, "company"},
			{"register segment", RegisterCustomer{CustomerID: customerID, Name: "A", Phone: "+44 1 2", Segment: x}, "segment"},
			{"register region", RegisterCustomer{CustomerID: customerID, Name: "A", Phone: "+44 1 2", Region: x}, "region"},
			{"register industry", RegisterCustomer{CustomerID: customerID, Name: "A", Phone: "+44 1 2", Industry: x}, "industry"},
			{"register tier", RegisterCustomer{CustomerID: customerID, Name: "A", Phone: "+44 1 2", Tier: "A" + bad}, "tier"},
			{"register tags", RegisterCustomer{CustomerID: customerID, Name: "A", Phone: "+44 1 2", Tags: []string{x}}, "tags"},
			{"register email", RegisterCustomer{CustomerID: customerID, Name: "A", Email: "a" + bad + "@example.com"}, "email"},
			{"register phone", RegisterCustomer{CustomerID: customerID, Name: "A", Phone: "+44" + bad + "12"}, "phone"},
			{"profile name", UpdateProfile{Name: s(x)}, "name"},
			{"profile company", UpdateProfile{Company: s(x)}, "company"},
			{"profile tags", UpdateProfile{Tags: &[]string{x}}, "tags"},
			{"classify segment", ClassifyCustomer{Segment: s(x)}, "segment"},
			{"team member", AssignTeamMember{Role: RoleAccountManager, Member: x}, "member"},
			{"contact summary", LogContact{ContactID: contactID, Channel: ChannelPhone, Direction: DirectionInbound, Summary: x, By: "b"}, "summary"},
			{"contact by", LogContact{ContactID: contactID, Channel: ChannelPhone, Direction: DirectionInbound, Summary: "s", By: x}, "by"},
			{"follow-up note", ScheduleFollowUp{FollowUpID: followUpID, DueAt: now.Add(time.Hour), By: "b", Note: x}, "note"},
			{"complaint category", FileComplaint{ComplaintID: otherID, Category: x, Severity: SeverityLow, Description: "d"}, "category"},
			{"complaint description", FileComplaint{ComplaintID: otherID, Category: "c", Severity: SeverityLow, Description: x}, "description"},
			{"assignee", AssignComplaint{ComplaintID: complaintID, Assignee: x}, "assignee"},
			{"acknowledgement note", AcknowledgeComplaint{ComplaintID: complaintID, By: "b", Note: x}, "note"},
			{"escalation to", EscalateComplaint{ComplaintID: complaintID, To: x, Reason: "r"}, "to"},
			{"resolution", ResolveComplaint{ComplaintID: complaintID, By: "b", Resolution: x}, "resolution"},
			{"survey comment", RecordSurvey{SurveyID: surveyID, CSAT: ptr(3), Comment: x}, "comment"},
			{"churn reason", MarkChurned{Reason: x}, "reason"},
			{"erasure reason", EraseCustomerData{Reason: x}, "reason"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				sc := scenario(t)
				if _, ok := c.cmd.(RegisterCustomer); !ok {
					sc = sc.given(registered(), filed(complaintID, at(time.Hour)))
				}
				sc.when(c.cmd).thenFieldError(c.field)
			})
		}
	}
	t.Run("tab, line feed and carriage return are text", func(t *testing.T) {
		scenario(t).given(registered()).
			when(LogContact{ContactID: contactID, Channel: ChannelPhone, Direction: DirectionInbound, Summary: "a\tb\r\nc", By: "b"}).
			then(ContactLogged{ContactID: contactID, Channel: ChannelPhone, Direction: DirectionInbound, Summary: "a\tb\r\nc", By: "b", OccurredAt: now})
	})
}

// TestTimesWithinRange: business times outside 1900-01-01..9999-12-31 UTC
// are refused, whatever their offset.
func TestTimesWithinRange(t *testing.T) {
	minus14 := time.FixedZone("-14", -14*3600)
	early := time.Date(0, 1, 1, 0, 0, 0, 0, time.FixedZone("+1", 3600))
	justBefore := time.Date(1900, 1, 1, 0, 30, 0, 0, time.FixedZone("+1", 3600))
	late := time.Date(9999, 12, 31, 23, 59, 59, 0, minus14)
	for _, when := range []time.Time{early, justBefore, time.Date(1899, 12, 31, 23, 59, 59, 0, time.UTC)} {
		t.Run(when.String(), func(t *testing.T) {
			scenario(t).given(registered()).when(LogContact{ContactID: contactID, Channel: ChannelPhone, Direction: DirectionInbound, Summary: "s", By: "b", OccurredAt: &when}).thenFieldError("occurred_at")
			scenario(t).given(registered()).when(RecordSurvey{SurveyID: surveyID, CSAT: ptr(3), AnsweredAt: &when}).thenFieldError("answered_at")
			scenario(t).given(registered()).when(MarkChurned{Reason: "r", ChurnedAt: &when}).thenFieldError("churned_at")
		})
	}
	t.Run("due after 9999", func(t *testing.T) {
		scenario(t).given(registered()).when(ScheduleFollowUp{FollowUpID: followUpID, DueAt: late, By: "b"}).thenFieldError("due_at")
	})
}

// TestEmailRefusesInvisibleCharacters: an email holding a format
// character would be a look-alike of another address.
func TestEmailRefusesInvisibleCharacters(t *testing.T) {
	for _, email := range []string{"uniq@example.com\u200b", "uniq@exam\u00adple.com", "\u202euniq@example.com", "un\u200diq@example.com", "\ufeffuniq@example.com"} {
		t.Run(email, func(t *testing.T) {
			scenario(t).when(RegisterCustomer{CustomerID: customerID, Name: "A", Email: email}).thenFieldError("email")
			scenario(t).given(registered()).when(UpdateProfile{Email: &email}).thenFieldError("email")
		})
	}
}
