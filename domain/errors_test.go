package domain

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestErrorsMatchSentinelsByCode(t *testing.T) {
	_, err := Decide(Customer{}, MarkChurned{Reason: "x"}, now)
	wrapped := fmt.Errorf("handling: %w", err)
	if !errors.Is(wrapped, ErrNotFound) {
		t.Fatal("want ErrNotFound")
	}
	if errors.Is(wrapped, ErrConflict) || errors.Is(wrapped, ErrGone) || errors.Is(wrapped, ErrInvalid) {
		t.Fatal("matched another code")
	}
	if !errors.Is(wrapped, &Error{Code: CodeNotFound, Reason: ReasonCustomerNotFound}) {
		t.Fatal("a template with a reason must match that reason")
	}
	if errors.Is(wrapped, &Error{Code: CodeNotFound, Reason: ReasonComplaintNotFound}) {
		t.Fatal("a template with another reason must not match")
	}
}

func TestErrorMessage(t *testing.T) {
	_, err := Decide(Fold(registered()), RecordSurvey{SurveyID: surveyID, CSAT: ptr(9), Channel: "fax"}, now)
	msg := err.Error()
	if !strings.HasPrefix(msg, "domain: ") || !strings.Contains(msg, "csat must be between 1 and 5") || !strings.Contains(msg, "channel must be one of") {
		t.Fatalf("message %q", msg)
	}
	var domainErr *Error
	if !errors.As(err, &domainErr) || len(domainErr.Fields) != 2 {
		t.Fatalf("want both fields named: %v", err)
	}
}

func TestEmailTaken(t *testing.T) {
	existing := uuid.MustParse("11111111-2222-4333-8444-555555555555")
	err := EmailTaken(existing)
	if !errors.Is(err, ErrConflict) || err.Reason != ReasonEmailTaken || err.ExistingCustomerID != existing {
		t.Fatalf("%+v", err)
	}
	if !strings.Contains(err.Error(), existing.String()) {
		t.Fatalf("the message must name the existing customer: %q", err)
	}
}

func TestNormalizeEmail(t *testing.T) {
	for raw, want := range map[string]string{
		" Ada@Example.COM ":    "ada@example.com",
		"first.last@sub.x.org": "first.last@sub.x.org",
	} {
		if got, ok := NormalizeEmail(raw); !ok || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v", raw, got, ok)
		}
	}
	for _, raw := range []string{"", "ada", "ada@", "@example.com", "Ada <ada@example.com>", "a b@example.com", strings.Repeat("a", 250) + "@x.com"} {
		if got, ok := NormalizeEmail(raw); ok {
			t.Errorf("NormalizeEmail(%q) accepted as %q", raw, got)
		}
	}
}
