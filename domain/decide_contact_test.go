package domain

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func validContact() LogContact {
	return LogContact{
		ContactID: contactID,
		Channel:   ChannelPhone,
		Direction: DirectionOutbound,
		Summary:   "discussed renewal",
		By:        "maria",
	}
}

func TestLogContact(t *testing.T) {
	t.Run("occurred now by default", func(t *testing.T) {
		scenario(t).given(registered()).when(validContact()).then(ContactLogged{
			ContactID: contactID, Channel: ChannelPhone, Direction: DirectionOutbound,
			Summary: "discussed renewal", By: "maria", OccurredAt: now,
		})
	})

	t.Run("a past occurred_at is the business time", func(t *testing.T) {
		cmd := validContact()
		cmd.OccurredAt = ptr(at(time.Hour))
		cmd.Summary, cmd.By = "  discussed renewal ", " maria "
		scenario(t).given(registered()).when(cmd).then(ContactLogged{
			ContactID: contactID, Channel: ChannelPhone, Direction: DirectionOutbound,
			Summary: "discussed renewal", By: "maria", OccurredAt: at(time.Hour),
		})
	})

	t.Run("occurred_at may be exactly now", func(t *testing.T) {
		cmd := validContact()
		cmd.OccurredAt = ptr(now)
		scenario(t).given(registered()).when(cmd).then(ContactLogged{
			ContactID: contactID, Channel: ChannelPhone, Direction: DirectionOutbound,
			Summary: "discussed renewal", By: "maria", OccurredAt: now,
		})
	})

	t.Run("a churned customer can still be contacted", func(t *testing.T) {
		scenario(t).given(registered(), CustomerChurned{Reason: "budget", OccurredAt: at(time.Hour)}).
			when(validContact()).then(ContactLogged{
			ContactID: contactID, Channel: ChannelPhone, Direction: DirectionOutbound,
			Summary: "discussed renewal", By: "maria", OccurredAt: now,
		})
	})

	t.Run("every channel is accepted", func(t *testing.T) {
		for _, ch := range Channels() {
			cmd := validContact()
			cmd.Channel = ch
			scenario(t).given(registered()).when(cmd).then(ContactLogged{
				ContactID: contactID, Channel: ch, Direction: DirectionOutbound,
				Summary: "discussed renewal", By: "maria", OccurredAt: now,
			})
		}
	})

	t.Run("unregistered customer is not found", func(t *testing.T) {
		scenario(t).when(validContact()).thenError(CodeNotFound, ReasonCustomerNotFound)
	})

	invalid := []struct {
		name   string
		change func(*LogContact)
		field  string
	}{
		{"contact id missing", func(c *LogContact) { c.ContactID = uuid.Nil }, "contact_id"},
		{"channel missing", func(c *LogContact) { c.Channel = "" }, "channel"},
		{"channel unknown", func(c *LogContact) { c.Channel = "fax" }, "channel"},
		{"direction missing", func(c *LogContact) { c.Direction = "" }, "direction"},
		{"direction unknown", func(c *LogContact) { c.Direction = "sideways" }, "direction"},
		{"summary missing", func(c *LogContact) { c.Summary = " " }, "summary"},
		{"summary too long", func(c *LogContact) { c.Summary = strings.Repeat("s", MaxLongTextLength+1) }, "summary"},
		{"by missing", func(c *LogContact) { c.By = "" }, "by"},
		{"occurred_at in the future", func(c *LogContact) { c.OccurredAt = ptr(now.Add(time.Nanosecond)) }, "occurred_at"},
		{"occurred_at zero", func(c *LogContact) { c.OccurredAt = ptr(time.Time{}) }, "occurred_at"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			cmd := validContact()
			tt.change(&cmd)
			scenario(t).given(registered()).when(cmd).thenFieldError(tt.field)
		})
	}
}

func TestScheduleFollowUp(t *testing.T) {
	valid := func() ScheduleFollowUp {
		return ScheduleFollowUp{FollowUpID: followUpID, DueAt: now.Add(24 * time.Hour), By: "maria", Note: "send the quote"}
	}

	t.Run("accepted", func(t *testing.T) {
		scenario(t).given(registered()).when(valid()).then(FollowUpScheduled{
			FollowUpID: followUpID, DueAt: now.Add(24 * time.Hour), By: "maria", Note: "send the quote", OccurredAt: now,
		})
	})

	t.Run("the note is optional", func(t *testing.T) {
		cmd := valid()
		cmd.Note = ""
		scenario(t).given(registered()).when(cmd).then(FollowUpScheduled{
			FollowUpID: followUpID, DueAt: now.Add(24 * time.Hour), By: "maria", OccurredAt: now,
		})
	})

	t.Run("a follow-up id is used once: again, it is a retry", func(t *testing.T) {
		scenario(t).given(registered(), FollowUpScheduled{FollowUpID: followUpID, DueAt: now, By: "maria", OccurredAt: at(time.Hour)}).
			when(valid()).thenAlreadyRecorded(followUpID)
	})

	t.Run("unregistered customer is not found", func(t *testing.T) {
		scenario(t).when(valid()).thenError(CodeNotFound, ReasonCustomerNotFound)
	})

	invalid := []struct {
		name   string
		change func(*ScheduleFollowUp)
		field  string
	}{
		{"follow-up id missing", func(c *ScheduleFollowUp) { c.FollowUpID = uuid.Nil }, "follow_up_id"},
		{"due_at missing", func(c *ScheduleFollowUp) { c.DueAt = time.Time{} }, "due_at"},
		{"due_at in the past", func(c *ScheduleFollowUp) { c.DueAt = now.Add(-time.Hour) }, "due_at"},
		{"due_at exactly now", func(c *ScheduleFollowUp) { c.DueAt = now }, "due_at"},
		{"by missing", func(c *ScheduleFollowUp) { c.By = " " }, "by"},
		{"note too long", func(c *ScheduleFollowUp) { c.Note = strings.Repeat("n", MaxLongTextLength+1) }, "note"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			cmd := valid()
			tt.change(&cmd)
			scenario(t).given(registered()).when(cmd).thenFieldError(tt.field)
		})
	}
}

func TestRecordSurvey(t *testing.T) {
	t.Run("csat only, answered now by default", func(t *testing.T) {
		scenario(t).given(registered()).when(RecordSurvey{SurveyID: surveyID, CSAT: ptr(4), Comment: " great ", Channel: ChannelEmail}).
			then(SurveyRecorded{SurveyID: surveyID, CSAT: ptr(4), Comment: "great", Channel: ChannelEmail, OccurredAt: now})
	})

	t.Run("nps only, answered_at is the business time", func(t *testing.T) {
		scenario(t).given(registered()).when(RecordSurvey{SurveyID: surveyID, NPS: ptr(9), AnsweredAt: ptr(at(time.Hour))}).
			then(SurveyRecorded{SurveyID: surveyID, NPS: ptr(9), OccurredAt: at(time.Hour)})
	})

	t.Run("the boundaries of both scales", func(t *testing.T) {
		for _, answer := range []struct{ csat, nps int }{{1, 0}, {5, 10}} {
			scenario(t).given(registered()).when(RecordSurvey{SurveyID: surveyID, CSAT: ptr(answer.csat), NPS: ptr(answer.nps)}).
				then(SurveyRecorded{SurveyID: surveyID, CSAT: ptr(answer.csat), NPS: ptr(answer.nps), OccurredAt: now})
		}
	})

	t.Run("following a complaint of this customer", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour))).
			when(RecordSurvey{SurveyID: surveyID, CSAT: ptr(2), ComplaintID: ptr(complaintID)}).
			then(SurveyRecorded{SurveyID: surveyID, CSAT: ptr(2), ComplaintID: ptr(complaintID), OccurredAt: now})
	})

	t.Run("a complaint this customer does not have", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour))).
			when(RecordSurvey{SurveyID: surveyID, CSAT: ptr(2), ComplaintID: ptr(otherID)}).thenFieldError("complaint_id")
	})

	t.Run("the event does not share memory with the command", func(t *testing.T) {
		csat := 3
		events, err := Decide(Fold(registered()), RecordSurvey{SurveyID: surveyID, CSAT: &csat}, now)
		if err != nil {
			t.Fatal(err)
		}
		csat = 1
		if got := *events[0].(SurveyRecorded).CSAT; got != 3 {
			t.Fatalf("changing the command changed the event: csat %d", got)
		}
	})

	t.Run("unregistered customer is not found", func(t *testing.T) {
		scenario(t).when(RecordSurvey{SurveyID: surveyID, CSAT: ptr(3)}).thenError(CodeNotFound, ReasonCustomerNotFound)
	})

	invalid := []struct {
		name   string
		cmd    RecordSurvey
		fields []string
	}{
		{"neither csat nor nps", RecordSurvey{SurveyID: surveyID, Comment: "meh"}, []string{"csat", "nps"}},
		{"csat below 1", RecordSurvey{SurveyID: surveyID, CSAT: ptr(0)}, []string{"csat"}},
		{"csat above 5", RecordSurvey{SurveyID: surveyID, CSAT: ptr(6)}, []string{"csat"}},
		{"nps below 0", RecordSurvey{SurveyID: surveyID, NPS: ptr(-1)}, []string{"nps"}},
		{"nps above 10", RecordSurvey{SurveyID: surveyID, NPS: ptr(11)}, []string{"nps"}},
		{"answered_at in the future", RecordSurvey{SurveyID: surveyID, CSAT: ptr(3), AnsweredAt: ptr(now.Add(time.Minute))}, []string{"answered_at"}},
		{"channel unknown", RecordSurvey{SurveyID: surveyID, CSAT: ptr(3), Channel: "pigeon"}, []string{"channel"}},
		{"comment too long", RecordSurvey{SurveyID: surveyID, CSAT: ptr(3), Comment: strings.Repeat("c", MaxLongTextLength+1)}, []string{"comment"}},
		{"survey id missing", RecordSurvey{CSAT: ptr(3)}, []string{"survey_id"}},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			scenario(t).given(registered()).when(tt.cmd).thenFieldError(tt.fields...)
		})
	}
}
