package domain

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func validRegistration() RegisterCustomer {
	return RegisterCustomer{
		CustomerID: customerID,
		Name:       "Ada Lovelace",
		Email:      "ada@example.com",
		Phone:      "+44 20 7946 0958",
		Company:    "Analytical Engines",
		Tags:       []string{"vip"},
		Segment:    "enterprise",
		Tier:       "A",
		Region:     "emea",
		Industry:   "computing",
	}
}

func TestRegisterCustomer(t *testing.T) {
	t.Run("accepted", func(t *testing.T) {
		want := registered()
		want.OccurredAt = now
		scenario(t).when(validRegistration()).then(want)
	})

	t.Run("input is trimmed and normalised", func(t *testing.T) {
		scenario(t).when(RegisterCustomer{
			CustomerID: customerID,
			Name:       "  Ada Lovelace ",
			Email:      " Ada@Example.COM ",
			Tags:       []string{" vip ", "vip", "beta"},
			Segment:    " enterprise ",
			Tier:       " B ",
			Region:     "   ",
		}).then(CustomerRegistered{
			CustomerID: customerID,
			Name:       "Ada Lovelace",
			Email:      "ada@example.com",
			Tags:       []string{"vip", "beta"},
			Segment:    "enterprise",
			Tier:       "B",
			OccurredAt: now,
		})
	})

	t.Run("a phone alone is enough", func(t *testing.T) {
		scenario(t).when(RegisterCustomer{CustomerID: customerID, Name: "Ada", Phone: "(020) 7946-0958"}).
			then(CustomerRegistered{CustomerID: customerID, Name: "Ada", Phone: "(020) 7946-0958", OccurredAt: now})
	})

	t.Run("an email alone is enough", func(t *testing.T) {
		scenario(t).when(RegisterCustomer{CustomerID: customerID, Name: "Ada", Email: "ada@example.com"}).
			then(CustomerRegistered{CustomerID: customerID, Name: "Ada", Email: "ada@example.com", OccurredAt: now})
	})

	t.Run("name length counts characters, not bytes", func(t *testing.T) {
		name := strings.Repeat("é", MaxNameLength)
		scenario(t).when(RegisterCustomer{CustomerID: customerID, Name: name, Email: "a@example.com"}).
			then(CustomerRegistered{CustomerID: customerID, Name: name, Email: "a@example.com", OccurredAt: now})
	})

	t.Run("registered again with its own id, it is a retry", func(t *testing.T) {
		scenario(t).given(registered()).when(validRegistration()).thenAlreadyRecorded(customerID)
	})

	t.Run("already registered under another id is a conflict", func(t *testing.T) {
		cmd := validRegistration()
		cmd.CustomerID = otherID
		scenario(t).given(registered()).when(cmd).thenError(CodeConflict, ReasonAlreadyRegistered)
	})

	t.Run("an erased customer is gone", func(t *testing.T) {
		scenario(t).given(registered(), erased(at(time.Hour))).when(validRegistration()).thenError(CodeGone, ReasonCustomerErased)
	})
}

func TestRegisterCustomerValidation(t *testing.T) {
	tests := []struct {
		name   string
		change func(*RegisterCustomer)
		fields []string
	}{
		{"customer id missing", func(c *RegisterCustomer) { c.CustomerID = uuid.Nil }, []string{"customer_id"}},
		{"name missing", func(c *RegisterCustomer) { c.Name = "  " }, []string{"name"}},
		{"name too long", func(c *RegisterCustomer) { c.Name = strings.Repeat("x", MaxNameLength+1) }, []string{"name"}},
		{"email malformed", func(c *RegisterCustomer) { c.Email = "ada@" }, []string{"email"}},
		{"email with a display name", func(c *RegisterCustomer) { c.Email = "Ada <ada@example.com>" }, []string{"email"}},
		{"neither email nor phone", func(c *RegisterCustomer) { c.Email, c.Phone = "", " " }, []string{"email", "phone"}},
		{"phone with letters", func(c *RegisterCustomer) { c.Phone = "call me maybe" }, []string{"phone"}},
		{"phone too short", func(c *RegisterCustomer) { c.Phone = "12" }, []string{"phone"}},
		{"company too long", func(c *RegisterCustomer) { c.Company = strings.Repeat("x", MaxShortTextLength+1) }, []string{"company"}},
		{"empty tag", func(c *RegisterCustomer) { c.Tags = []string{"vip", " "} }, []string{"tags"}},
		{"tag too long", func(c *RegisterCustomer) { c.Tags = []string{strings.Repeat("t", MaxTagLength+1)} }, []string{"tags"}},
		{"too many tags", func(c *RegisterCustomer) { c.Tags = make([]string, MaxTags+1) }, []string{"tags"}},
		{"tier unknown", func(c *RegisterCustomer) { c.Tier = "D" }, []string{"tier"}},
		{"segment too long", func(c *RegisterCustomer) { c.Segment = strings.Repeat("s", MaxLabelLength+1) }, []string{"segment"}},
		{"region too long", func(c *RegisterCustomer) { c.Region = strings.Repeat("r", MaxLabelLength+1) }, []string{"region"}},
		{"industry too long", func(c *RegisterCustomer) { c.Industry = strings.Repeat("i", MaxLabelLength+1) }, []string{"industry"}},
		{"every bad field is named at once", func(c *RegisterCustomer) { c.Name, c.Email, c.Tier = "", "nope", "Z" }, []string{"name", "email", "tier"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := validRegistration()
			tt.change(&cmd)
			scenario(t).when(cmd).thenFieldError(tt.fields...)
		})
	}
}

func TestUpdateProfile(t *testing.T) {
	t.Run("records only the fields that changed", func(t *testing.T) {
		scenario(t).given(registered()).when(UpdateProfile{
			Name:    ptr("Ada Lovelace"),
			Email:   ptr(" ADA@analytical.example "),
			Company: ptr("Analytical Engines"),
		}).then(CustomerProfileUpdated{Email: ptr("ada@analytical.example"), OccurredAt: now})
	})

	t.Run("nothing changed is a no-op", func(t *testing.T) {
		scenario(t).given(registered()).when(UpdateProfile{
			Name:  ptr(" Ada Lovelace "),
			Email: ptr("ADA@example.com"),
			Tags:  &[]string{"vip", " vip"},
		}).thenNothing()
	})

	t.Run("tags are replaced", func(t *testing.T) {
		scenario(t).given(registered()).when(UpdateProfile{Tags: &[]string{"vip", "beta"}}).
			then(CustomerProfileUpdated{Tags: &[]string{"vip", "beta"}, OccurredAt: now})
	})

	t.Run("an empty tag list clears the tags", func(t *testing.T) {
		scenario(t).given(registered()).when(UpdateProfile{Tags: &[]string{}}).
			then(CustomerProfileUpdated{Tags: &[]string{}, OccurredAt: now})
	})

	t.Run("the phone can be cleared while an email remains", func(t *testing.T) {
		scenario(t).given(registered()).when(UpdateProfile{Phone: ptr("")}).
			then(CustomerProfileUpdated{Phone: ptr(""), OccurredAt: now})
	})

	t.Run("the email can be swapped for a phone", func(t *testing.T) {
		given := registered()
		given.Phone = ""
		scenario(t).given(given).when(UpdateProfile{Email: ptr(""), Phone: ptr("555 0100")}).
			then(CustomerProfileUpdated{Email: ptr(""), Phone: ptr("555 0100"), OccurredAt: now})
	})

	t.Run("the customer must keep an email or a phone", func(t *testing.T) {
		scenario(t).given(registered()).when(UpdateProfile{Email: ptr(""), Phone: ptr(" ")}).thenFieldError("email", "phone")
	})

	t.Run("clearing the only contact field is refused", func(t *testing.T) {
		given := registered()
		given.Phone = ""
		scenario(t).given(given).when(UpdateProfile{Email: ptr("")}).thenFieldError("email")
	})

	t.Run("unregistered customer is not found", func(t *testing.T) {
		scenario(t).when(UpdateProfile{Name: ptr("Ada")}).thenError(CodeNotFound, ReasonCustomerNotFound)
	})

	t.Run("erased customer is gone", func(t *testing.T) {
		scenario(t).given(registered(), erased(at(time.Hour))).when(UpdateProfile{Name: ptr("Ada")}).thenError(CodeGone, ReasonCustomerErased)
	})
}

func TestUpdateProfileValidation(t *testing.T) {
	tests := []struct {
		name   string
		cmd    UpdateProfile
		fields []string
	}{
		{"no field given", UpdateProfile{}, []string{"name", "email", "phone", "company", "tags"}},
		{"name cannot become empty", UpdateProfile{Name: ptr("  ")}, []string{"name"}},
		{"name too long", UpdateProfile{Name: ptr(strings.Repeat("n", MaxNameLength+1))}, []string{"name"}},
		{"email malformed", UpdateProfile{Email: ptr("not-an-email")}, []string{"email"}},
		{"phone malformed", UpdateProfile{Phone: ptr("ada@example.com")}, []string{"phone"}},
		{"company too long", UpdateProfile{Company: ptr(strings.Repeat("c", MaxShortTextLength+1))}, []string{"company"}},
		{"empty tag", UpdateProfile{Tags: &[]string{""}}, []string{"tags"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scenario(t).given(registered()).when(tt.cmd).thenFieldError(tt.fields...)
		})
	}
}

func TestClassifyCustomer(t *testing.T) {
	t.Run("records only the labels that changed", func(t *testing.T) {
		scenario(t).given(registered()).when(ClassifyCustomer{
			Segment: ptr(" smb "),
			Tier:    ptr("A"),
			Region:  ptr("emea"),
		}).then(CustomerClassified{Segment: ptr("smb"), OccurredAt: now})
	})

	t.Run("every label at once", func(t *testing.T) {
		scenario(t).given(registered()).when(ClassifyCustomer{
			Segment: ptr("consumer"), Tier: ptr("C"), Region: ptr("apac"), Industry: ptr("retail"),
		}).then(CustomerClassified{Segment: ptr("consumer"), Tier: ptr("C"), Region: ptr("apac"), Industry: ptr("retail"), OccurredAt: now})
	})

	t.Run("nothing changed is a no-op", func(t *testing.T) {
		scenario(t).given(registered()).when(ClassifyCustomer{Tier: ptr("A"), Industry: ptr("computing")}).thenNothing()
	})

	t.Run("unregistered customer is not found", func(t *testing.T) {
		scenario(t).when(ClassifyCustomer{Tier: ptr("A")}).thenError(CodeNotFound, ReasonCustomerNotFound)
	})

	t.Run("erased customer is gone", func(t *testing.T) {
		scenario(t).given(registered(), erased(at(time.Hour))).when(ClassifyCustomer{Tier: ptr("B")}).thenError(CodeGone, ReasonCustomerErased)
	})

	invalid := []struct {
		name   string
		cmd    ClassifyCustomer
		fields []string
	}{
		{"no label given", ClassifyCustomer{}, []string{"segment", "tier", "region", "industry"}},
		{"empty segment", ClassifyCustomer{Segment: ptr("  ")}, []string{"segment"}},
		{"segment too long", ClassifyCustomer{Segment: ptr(strings.Repeat("s", MaxLabelLength+1))}, []string{"segment"}},
		{"empty region", ClassifyCustomer{Region: ptr("")}, []string{"region"}},
		{"industry too long", ClassifyCustomer{Industry: ptr(strings.Repeat("i", MaxLabelLength+1))}, []string{"industry"}},
		{"tier unknown", ClassifyCustomer{Tier: ptr("a")}, []string{"tier"}},
		{"tier empty", ClassifyCustomer{Tier: ptr("")}, []string{"tier"}},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			scenario(t).given(registered()).when(tt.cmd).thenFieldError(tt.fields...)
		})
	}

	t.Run("a label of exactly 64 characters is accepted", func(t *testing.T) {
		label := strings.Repeat("l", MaxLabelLength)
		scenario(t).given(registered()).when(ClassifyCustomer{Region: ptr(label)}).
			then(CustomerClassified{Region: ptr(label), OccurredAt: now})
	})
}

func TestAssignTeamMember(t *testing.T) {
	t.Run("fills a vacant role", func(t *testing.T) {
		scenario(t).given(registered()).when(AssignTeamMember{Role: RoleAccountManager, Member: " maria "}).
			then(TeamMemberAssigned{Role: RoleAccountManager, Member: "maria", OccurredAt: now})
	})

	t.Run("replaces the current member and names them", func(t *testing.T) {
		scenario(t).given(registered(), TeamMemberAssigned{Role: RoleSupport, Member: "sam", OccurredAt: at(time.Hour)}).
			when(AssignTeamMember{Role: RoleSupport, Member: "kim"}).
			then(TeamMemberAssigned{Role: RoleSupport, Member: "kim", PreviousMember: "sam", OccurredAt: now})
	})

	t.Run("the member the role already has is a no-op", func(t *testing.T) {
		scenario(t).given(registered(), TeamMemberAssigned{Role: RoleSales, Member: "lee", OccurredAt: at(time.Hour)}).
			when(AssignTeamMember{Role: RoleSales, Member: "lee"}).thenNothing()
	})

	t.Run("one member per role: other roles are independent", func(t *testing.T) {
		scenario(t).given(registered(), TeamMemberAssigned{Role: RoleSales, Member: "lee", OccurredAt: at(time.Hour)}).
			when(AssignTeamMember{Role: RoleSupport, Member: "lee"}).
			then(TeamMemberAssigned{Role: RoleSupport, Member: "lee", OccurredAt: now})
	})

	t.Run("unknown role", func(t *testing.T) {
		scenario(t).given(registered()).when(AssignTeamMember{Role: "owner", Member: "lee"}).thenFieldError("role")
	})

	t.Run("member missing", func(t *testing.T) {
		scenario(t).given(registered()).when(AssignTeamMember{Role: RoleSales, Member: " "}).thenFieldError("member")
	})

	t.Run("unregistered customer is not found", func(t *testing.T) {
		scenario(t).when(AssignTeamMember{Role: RoleSales, Member: "lee"}).thenError(CodeNotFound, ReasonCustomerNotFound)
	})
}

func TestMarkChurned(t *testing.T) {
	t.Run("churned now by default", func(t *testing.T) {
		scenario(t).given(registered()).when(MarkChurned{Reason: " moved to a competitor "}).
			then(CustomerChurned{Reason: "moved to a competitor", OccurredAt: now})
	})

	t.Run("churned_at is the business time", func(t *testing.T) {
		scenario(t).given(registered()).when(MarkChurned{Reason: "budget", ChurnedAt: ptr(at(time.Hour))}).
			then(CustomerChurned{Reason: "budget", OccurredAt: at(time.Hour)})
	})

	t.Run("times are recorded in UTC", func(t *testing.T) {
		paris := time.FixedZone("CET", 3600)
		scenario(t).given(registered()).when(MarkChurned{Reason: "budget", ChurnedAt: ptr(at(time.Hour).In(paris))}).
			then(CustomerChurned{Reason: "budget", OccurredAt: at(time.Hour)})
	})

	t.Run("already churned is a conflict", func(t *testing.T) {
		scenario(t).given(registered(), CustomerChurned{Reason: "budget", OccurredAt: at(time.Hour)}).
			when(MarkChurned{Reason: "again"}).thenError(CodeConflict, ReasonAlreadyChurned)
	})

	t.Run("a reactivated customer can churn again", func(t *testing.T) {
		scenario(t).given(registered(),
			CustomerChurned{Reason: "budget", OccurredAt: at(time.Hour)},
			CustomerReactivated{OccurredAt: at(2 * time.Hour)},
		).when(MarkChurned{Reason: "again"}).then(CustomerChurned{Reason: "again", OccurredAt: now})
	})

	t.Run("reason missing", func(t *testing.T) {
		scenario(t).given(registered()).when(MarkChurned{Reason: " "}).thenFieldError("reason")
	})

	t.Run("churned_at in the future", func(t *testing.T) {
		scenario(t).given(registered()).when(MarkChurned{Reason: "budget", ChurnedAt: ptr(now.Add(time.Second))}).thenFieldError("churned_at")
	})

	t.Run("unregistered customer is not found", func(t *testing.T) {
		scenario(t).when(MarkChurned{Reason: "budget"}).thenError(CodeNotFound, ReasonCustomerNotFound)
	})
}

func TestReactivate(t *testing.T) {
	t.Run("a churned customer comes back", func(t *testing.T) {
		scenario(t).given(registered(), CustomerChurned{Reason: "budget", OccurredAt: at(time.Hour)}).
			when(Reactivate{Reason: "new contract"}).
			then(CustomerReactivated{Reason: "new contract", OccurredAt: now})
	})

	t.Run("the reason is optional", func(t *testing.T) {
		scenario(t).given(registered(), CustomerChurned{Reason: "budget", OccurredAt: at(time.Hour)}).
			when(Reactivate{}).then(CustomerReactivated{OccurredAt: now})
	})

	t.Run("an active customer is a conflict", func(t *testing.T) {
		scenario(t).given(registered()).when(Reactivate{}).thenError(CodeConflict, ReasonNotChurned)
	})

	t.Run("reason too long", func(t *testing.T) {
		scenario(t).given(registered(), CustomerChurned{Reason: "budget", OccurredAt: at(time.Hour)}).
			when(Reactivate{Reason: strings.Repeat("r", MaxLongTextLength+1)}).thenFieldError("reason")
	})

	t.Run("unregistered customer is not found", func(t *testing.T) {
		scenario(t).when(Reactivate{}).thenError(CodeNotFound, ReasonCustomerNotFound)
	})
}

func TestEraseCustomerData(t *testing.T) {
	t.Run("accepted", func(t *testing.T) {
		scenario(t).given(registered()).when(EraseCustomerData{Reason: "GDPR art. 17 request"}).
			then(CustomerDataErased{Reason: "GDPR art. 17 request", OccurredAt: now})
	})

	t.Run("a churned customer can be erased", func(t *testing.T) {
		scenario(t).given(registered(), CustomerChurned{Reason: "budget", OccurredAt: at(time.Hour)}).
			when(EraseCustomerData{Reason: "request"}).then(CustomerDataErased{Reason: "request", OccurredAt: now})
	})

	t.Run("reason missing", func(t *testing.T) {
		scenario(t).given(registered()).when(EraseCustomerData{}).thenFieldError("reason")
	})

	t.Run("unregistered customer is not found", func(t *testing.T) {
		scenario(t).when(EraseCustomerData{Reason: "request"}).thenError(CodeNotFound, ReasonCustomerNotFound)
	})
}

// After erasure no command is accepted, whatever it is.
func TestEveryCommandAfterErasureIsGone(t *testing.T) {
	commands := []Command{
		validRegistration(),
		UpdateProfile{Name: ptr("Ada")},
		ClassifyCustomer{Tier: ptr("B")},
		AssignTeamMember{Role: RoleSales, Member: "lee"},
		LogContact{ContactID: contactID, Channel: ChannelPhone, Direction: DirectionInbound, Summary: "call", By: "sam"},
		ScheduleFollowUp{FollowUpID: followUpID, DueAt: now.Add(time.Hour), By: "sam"},
		FileComplaint{ComplaintID: otherID, Category: "billing", Severity: SeverityLow, Description: "late"},
		AssignComplaint{ComplaintID: complaintID, Assignee: "kim"},
		AcknowledgeComplaint{ComplaintID: complaintID, By: "sam"},
		EscalateComplaint{ComplaintID: complaintID, To: "lead", Reason: "slow"},
		ResolveComplaint{ComplaintID: complaintID, By: "sam", Resolution: "refunded"},
		ReopenComplaint{ComplaintID: complaintID, Reason: "again"},
		RecordSurvey{SurveyID: surveyID, CSAT: ptr(5)},
		MarkChurned{Reason: "gone"},
		Reactivate{},
		EraseCustomerData{Reason: "again"},
	}
	for _, cmd := range commands {
		t.Run(typeName(cmd), func(t *testing.T) {
			scenario(t).given(registered(), filed(complaintID, at(time.Hour)), erased(at(2*time.Hour))).
				when(cmd).thenError(CodeGone, ReasonCustomerErased)
		})
	}
}

// Validation comes before the state checks: a malformed command is named as
// such even when the customer is unknown or erased.
func TestValidationComesBeforeStateChecks(t *testing.T) {
	scenario(t).when(MarkChurned{}).thenFieldError("reason")
	scenario(t).given(registered(), erased(at(time.Hour))).when(MarkChurned{}).thenFieldError("reason")
}

func TestPointerCommandsAreDecidedLikeValues(t *testing.T) {
	scenario(t).given(registered()).when(&MarkChurned{Reason: "budget"}).then(CustomerChurned{Reason: "budget", OccurredAt: now})
}

func TestNilCommandIsAProgrammingError(t *testing.T) {
	_, err := Decide(Customer{}, nil, now)
	if err == nil {
		t.Fatal("want an error")
	}
	if _, isDomain := err.(*Error); isDomain {
		t.Fatalf("a nil command is not a rejection the client caused: %v", err)
	}
	var nilCmd *MarkChurned
	if _, err := Decide(Customer{}, nilCmd, now); err == nil {
		t.Fatal("want an error for a nil pointer command")
	}
}
