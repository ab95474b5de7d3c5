package domain

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestFileComplaint(t *testing.T) {
	valid := func() FileComplaint {
		return FileComplaint{ComplaintID: complaintID, Category: " billing ", Severity: SeverityHigh, Description: " charged twice ", Channel: ChannelEmail}
	}

	t.Run("accepted", func(t *testing.T) {
		scenario(t).given(registered()).when(valid()).then(ComplaintFiled{
			ComplaintID: complaintID, Category: "billing", Severity: SeverityHigh, Description: "charged twice", Channel: ChannelEmail, OccurredAt: now,
		})
	})

	t.Run("the channel is optional", func(t *testing.T) {
		cmd := valid()
		cmd.Channel = ""
		scenario(t).given(registered()).when(cmd).then(ComplaintFiled{
			ComplaintID: complaintID, Category: "billing", Severity: SeverityHigh, Description: "charged twice", OccurredAt: now,
		})
	})

	t.Run("every severity is accepted", func(t *testing.T) {
		for _, severity := range Severities() {
			cmd := valid()
			cmd.Severity = severity
			scenario(t).given(registered()).when(cmd).then(ComplaintFiled{
				ComplaintID: complaintID, Category: "billing", Severity: severity, Description: "charged twice", Channel: ChannelEmail, OccurredAt: now,
			})
		}
	})

	t.Run("a complaint id is used once: again, it is a retry", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour))).when(valid()).thenAlreadyRecorded(complaintID)
	})

	t.Run("unregistered customer is not found", func(t *testing.T) {
		scenario(t).when(valid()).thenError(CodeNotFound, ReasonCustomerNotFound)
	})

	invalid := []struct {
		name   string
		change func(*FileComplaint)
		field  string
	}{
		{"complaint id missing", func(c *FileComplaint) { c.ComplaintID = uuid.Nil }, "complaint_id"},
		{"category missing", func(c *FileComplaint) { c.Category = "" }, "category"},
		{"category too long", func(c *FileComplaint) { c.Category = strings.Repeat("c", MaxShortTextLength+1) }, "category"},
		{"severity missing", func(c *FileComplaint) { c.Severity = "" }, "severity"},
		{"severity unknown", func(c *FileComplaint) { c.Severity = "urgent" }, "severity"},
		{"description missing", func(c *FileComplaint) { c.Description = "  " }, "description"},
		{"channel unknown", func(c *FileComplaint) { c.Channel = "letter" }, "channel"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			cmd := valid()
			tt.change(&cmd)
			scenario(t).given(registered()).when(cmd).thenFieldError(tt.field)
		})
	}
}

func TestAssignComplaint(t *testing.T) {
	t.Run("names an owner", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour))).
			when(AssignComplaint{ComplaintID: complaintID, Assignee: " kim "}).
			then(ComplaintAssigned{ComplaintID: complaintID, Assignee: "kim", OccurredAt: now})
	})

	t.Run("reassigns", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)),
			ComplaintAssigned{ComplaintID: complaintID, Assignee: "kim", OccurredAt: at(2 * time.Hour)}).
			when(AssignComplaint{ComplaintID: complaintID, Assignee: "lee"}).
			then(ComplaintAssigned{ComplaintID: complaintID, Assignee: "lee", OccurredAt: now})
	})

	t.Run("the current assignee is a no-op", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)),
			ComplaintAssigned{ComplaintID: complaintID, Assignee: "kim", OccurredAt: at(2 * time.Hour)}).
			when(AssignComplaint{ComplaintID: complaintID, Assignee: "kim"}).thenNothing()
	})

	t.Run("a resolved complaint can be assigned", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)), resolved(complaintID, at(2*time.Hour))).
			when(AssignComplaint{ComplaintID: complaintID, Assignee: "kim"}).
			then(ComplaintAssigned{ComplaintID: complaintID, Assignee: "kim", OccurredAt: now})
	})

	t.Run("assignee missing", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour))).
			when(AssignComplaint{ComplaintID: complaintID}).thenFieldError("assignee")
	})

	t.Run("unless owned: an unowned complaint is assigned", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour))).
			when(AssignComplaint{ComplaintID: complaintID, Assignee: "kim", UnlessOwned: true}).
			then(ComplaintAssigned{ComplaintID: complaintID, Assignee: "kim", OccurredAt: now})
	})

	t.Run("unless owned: an owner someone named is kept", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)),
			ComplaintAssigned{ComplaintID: complaintID, Assignee: "zoe", OccurredAt: at(2 * time.Hour)}).
			when(AssignComplaint{ComplaintID: complaintID, Assignee: "kim", UnlessOwned: true}).thenNothing()
	})

	t.Run("unless owned: still validated", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour))).
			when(AssignComplaint{ComplaintID: complaintID, UnlessOwned: true}).thenFieldError("assignee")
	})

	t.Run("unknown complaint", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour))).
			when(AssignComplaint{ComplaintID: otherID, Assignee: "kim"}).thenError(CodeNotFound, ReasonComplaintNotFound)
	})
}

func TestAcknowledgeComplaint(t *testing.T) {
	ack := AcknowledgeComplaint{ComplaintID: complaintID, By: "sam", Note: "looking into it"}
	want := ComplaintAcknowledged{ComplaintID: complaintID, By: "sam", Note: "looking into it", OccurredAt: now}

	t.Run("a filed complaint", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour))).when(ack).then(want)
	})

	t.Run("the note is optional", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour))).
			when(AcknowledgeComplaint{ComplaintID: complaintID, By: "sam"}).
			then(ComplaintAcknowledged{ComplaintID: complaintID, By: "sam", OccurredAt: now})
	})

	t.Run("twice in one opening is a conflict", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)), acknowledged(complaintID, at(2*time.Hour))).
			when(ack).thenError(CodeConflict, ReasonComplaintAlreadyAcknowledged)
	})

	t.Run("an escalated complaint not yet acknowledged", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)), escalated(complaintID, at(2*time.Hour))).
			when(ack).then(want)
	})

	t.Run("acknowledged then escalated is still acknowledged", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)), acknowledged(complaintID, at(2*time.Hour)), escalated(complaintID, at(3*time.Hour))).
			when(ack).thenError(CodeConflict, ReasonComplaintAlreadyAcknowledged)
	})

	t.Run("a resolved complaint is not open", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)), resolved(complaintID, at(2*time.Hour))).
			when(ack).thenError(CodeConflict, ReasonComplaintNotOpen)
	})

	t.Run("again after a reopening", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)), acknowledged(complaintID, at(2*time.Hour)),
			resolved(complaintID, at(3*time.Hour)), reopened(complaintID, at(4*time.Hour))).
			when(ack).then(want)
	})

	t.Run("only once after a reopening too", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)), resolved(complaintID, at(3*time.Hour)),
			reopened(complaintID, at(4*time.Hour)), acknowledged(complaintID, at(5*time.Hour))).
			when(ack).thenError(CodeConflict, ReasonComplaintAlreadyAcknowledged)
	})

	t.Run("by missing", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour))).
			when(AcknowledgeComplaint{ComplaintID: complaintID, By: " "}).thenFieldError("by")
	})

	t.Run("unknown complaint", func(t *testing.T) {
		scenario(t).given(registered()).when(ack).thenError(CodeNotFound, ReasonComplaintNotFound)
	})
}

func TestEscalateComplaint(t *testing.T) {
	escalate := EscalateComplaint{ComplaintID: complaintID, To: "billing-lead", Reason: "refund above limit"}
	want := ComplaintEscalated{ComplaintID: complaintID, To: "billing-lead", Reason: "refund above limit", OccurredAt: now}

	open := map[string][]Event{
		"filed":        {registered(), filed(complaintID, at(time.Hour))},
		"acknowledged": {registered(), filed(complaintID, at(time.Hour)), acknowledged(complaintID, at(2*time.Hour))},
		"escalated":    {registered(), filed(complaintID, at(time.Hour)), escalated(complaintID, at(2*time.Hour))},
		"reopened":     {registered(), filed(complaintID, at(time.Hour)), resolved(complaintID, at(2*time.Hour)), reopened(complaintID, at(3*time.Hour))},
	}
	for status, history := range open {
		t.Run("while "+status, func(t *testing.T) {
			scenario(t).given(history...).when(escalate).then(want)
		})
	}

	t.Run("a resolved complaint is not open", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)), resolved(complaintID, at(2*time.Hour))).
			when(escalate).thenError(CodeConflict, ReasonComplaintNotOpen)
	})

	t.Run("to missing", func(t *testing.T) {
		scenario(t).given(open["filed"]...).when(EscalateComplaint{ComplaintID: complaintID, Reason: "slow"}).thenFieldError("to")
	})

	t.Run("reason missing", func(t *testing.T) {
		scenario(t).given(open["filed"]...).when(EscalateComplaint{ComplaintID: complaintID, To: "lead"}).thenFieldError("reason")
	})

	t.Run("unknown complaint", func(t *testing.T) {
		scenario(t).given(open["filed"]...).when(EscalateComplaint{ComplaintID: otherID, To: "lead", Reason: "slow"}).
			thenError(CodeNotFound, ReasonComplaintNotFound)
	})
}

func TestResolveComplaint(t *testing.T) {
	resolve := ResolveComplaint{ComplaintID: complaintID, By: "sam", Resolution: " refunded "}
	want := ComplaintResolved{ComplaintID: complaintID, By: "sam", Resolution: "refunded", OccurredAt: now}

	open := map[string][]Event{
		"filed":        {registered(), filed(complaintID, at(time.Hour))},
		"acknowledged": {registered(), filed(complaintID, at(time.Hour)), acknowledged(complaintID, at(2*time.Hour))},
		"escalated":    {registered(), filed(complaintID, at(time.Hour)), escalated(complaintID, at(2*time.Hour))},
		"reopened":     {registered(), filed(complaintID, at(time.Hour)), resolved(complaintID, at(2*time.Hour)), reopened(complaintID, at(3*time.Hour))},
	}
	for status, history := range open {
		t.Run("while "+status, func(t *testing.T) {
			scenario(t).given(history...).when(resolve).then(want)
		})
	}

	t.Run("resolving twice is a conflict", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)), resolved(complaintID, at(2*time.Hour))).
			when(resolve).thenError(CodeConflict, ReasonComplaintNotOpen)
	})

	t.Run("resolution missing", func(t *testing.T) {
		scenario(t).given(open["filed"]...).when(ResolveComplaint{ComplaintID: complaintID, By: "sam"}).thenFieldError("resolution")
	})

	t.Run("by missing", func(t *testing.T) {
		scenario(t).given(open["filed"]...).when(ResolveComplaint{ComplaintID: complaintID, Resolution: "done"}).thenFieldError("by")
	})

	t.Run("unknown complaint", func(t *testing.T) {
		scenario(t).given(registered()).when(resolve).thenError(CodeNotFound, ReasonComplaintNotFound)
	})
}

func TestReopenComplaint(t *testing.T) {
	reopen := ReopenComplaint{ComplaintID: complaintID, Reason: "charged again"}

	t.Run("a resolved complaint", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)), resolved(complaintID, at(2*time.Hour))).
			when(reopen).then(ComplaintReopened{ComplaintID: complaintID, Reason: "charged again", OccurredAt: now})
	})

	t.Run("resolved a second time", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)), resolved(complaintID, at(2*time.Hour)),
			reopened(complaintID, at(3*time.Hour)), resolved(complaintID, at(4*time.Hour))).
			when(reopen).then(ComplaintReopened{ComplaintID: complaintID, Reason: "charged again", OccurredAt: now})
	})

	open := map[string][]Event{
		"filed":        {registered(), filed(complaintID, at(time.Hour))},
		"acknowledged": {registered(), filed(complaintID, at(time.Hour)), acknowledged(complaintID, at(2*time.Hour))},
		"escalated":    {registered(), filed(complaintID, at(time.Hour)), escalated(complaintID, at(2*time.Hour))},
		"reopened":     {registered(), filed(complaintID, at(time.Hour)), resolved(complaintID, at(2*time.Hour)), reopened(complaintID, at(3*time.Hour))},
	}
	for status, history := range open {
		t.Run("not while "+status, func(t *testing.T) {
			scenario(t).given(history...).when(reopen).thenError(CodeConflict, ReasonComplaintNotResolved)
		})
	}

	t.Run("reason missing", func(t *testing.T) {
		scenario(t).given(registered(), filed(complaintID, at(time.Hour)), resolved(complaintID, at(2*time.Hour))).
			when(ReopenComplaint{ComplaintID: complaintID}).thenFieldError("reason")
	})

	t.Run("unknown complaint", func(t *testing.T) {
		scenario(t).given(registered()).when(reopen).thenError(CodeNotFound, ReasonComplaintNotFound)
	})
}

// Commands on a complaint of an unregistered customer name the customer, not
// the complaint, as missing.
func TestComplaintCommandsOnUnregisteredCustomer(t *testing.T) {
	for _, cmd := range []Command{
		AssignComplaint{ComplaintID: complaintID, Assignee: "kim"},
		AcknowledgeComplaint{ComplaintID: complaintID, By: "sam"},
		EscalateComplaint{ComplaintID: complaintID, To: "lead", Reason: "slow"},
		ResolveComplaint{ComplaintID: complaintID, By: "sam", Resolution: "done"},
		ReopenComplaint{ComplaintID: complaintID, Reason: "again"},
	} {
		t.Run(typeName(cmd), func(t *testing.T) {
			scenario(t).when(cmd).thenError(CodeNotFound, ReasonCustomerNotFound)
		})
	}
}

// The whole life of one complaint, decided step by step from the events the
// previous steps produced.
func TestComplaintLifecycleEndToEnd(t *testing.T) {
	steps := []struct {
		cmd        Command
		wantStatus ComplaintStatus
	}{
		{FileComplaint{ComplaintID: complaintID, Category: "billing", Severity: SeverityCritical, Description: "charged twice"}, ComplaintStatusFiled},
		{AssignComplaint{ComplaintID: complaintID, Assignee: "kim"}, ComplaintStatusFiled},
		{AcknowledgeComplaint{ComplaintID: complaintID, By: "kim"}, ComplaintStatusAcknowledged},
		{EscalateComplaint{ComplaintID: complaintID, To: "lead", Reason: "refund above limit"}, ComplaintStatusEscalated},
		{ResolveComplaint{ComplaintID: complaintID, By: "lead", Resolution: "refunded"}, ComplaintStatusResolved},
		{ReopenComplaint{ComplaintID: complaintID, Reason: "charged again"}, ComplaintStatusReopened},
		{AcknowledgeComplaint{ComplaintID: complaintID, By: "kim"}, ComplaintStatusAcknowledged},
		{ResolveComplaint{ComplaintID: complaintID, By: "kim", Resolution: "refunded again"}, ComplaintStatusResolved},
	}
	state := Fold(registered())
	clock := t0
	for i, step := range steps {
		clock = clock.Add(time.Hour)
		events, err := Decide(state, step.cmd, clock)
		if err != nil || len(events) != 1 {
			t.Fatalf("step %d (%s): events %v, error %v", i, typeName(step.cmd), events, err)
		}
		state = Evolve(state, events[0])
		complaint, _ := state.Complaint(complaintID)
		if complaint.Status != step.wantStatus {
			t.Fatalf("step %d (%s): status %s, want %s", i, typeName(step.cmd), complaint.Status, step.wantStatus)
		}
	}
	complaint, _ := state.Complaint(complaintID)
	if complaint.Openings != 2 || complaint.Escalations != 1 || complaint.Assignee != "kim" {
		t.Fatalf("complaint %+v", complaint)
	}
	if state.OpenComplaints() != 0 {
		t.Fatalf("open complaints %d, want 0", state.OpenComplaints())
	}
}
