package domain

import (
	"strings"

	"github.com/google/uuid"
)

// Code classifies why Decide rejected a command. The HTTP layer maps each
// code to one status (invalid 422, not_found 404, conflict 409, gone 410), so
// the domain decides the class of a failure and the transport only renders it.
type Code string

const (
	// CodeInvalid: a field is missing, out of range or of an unknown value.
	CodeInvalid Code = "invalid"
	// CodeNotFound: the customer, or the complaint a command names, does not exist.
	CodeNotFound Code = "not_found"
	// CodeConflict: the command is well-formed but the customer's state forbids it.
	CodeConflict Code = "conflict"
	// CodeGone: the customer's personal data was erased; no command is accepted.
	CodeGone Code = "gone"
)

// Reasons are stable, machine-readable refinements of a Code. Clients may
// branch on them, so they never change once published.
const (
	ReasonInvalidFields                = "invalid_fields"
	ReasonCustomerNotFound             = "customer_not_found"
	ReasonComplaintNotFound            = "complaint_not_found"
	ReasonAlreadyRegistered            = "already_registered"
	ReasonEmailTaken                   = "email_taken"
	ReasonCustomerErased               = "customer_erased"
	ReasonAlreadyChurned               = "already_churned"
	ReasonNotChurned                   = "not_churned"
	ReasonComplaintNotOpen             = "complaint_not_open"
	ReasonComplaintAlreadyAcknowledged = "complaint_already_acknowledged"
	ReasonComplaintNotResolved         = "complaint_not_resolved"
	// ReasonComplaintExists and ReasonFollowUpExists are no longer given:
	// a complaint or follow-up id seen again is a retry, answered with the
	// first outcome (AlreadyRecordedError). Kept because published.
	ReasonComplaintExists = "complaint_exists"
	ReasonFollowUpExists  = "follow_up_exists"
)

// FieldError names one invalid field of a command by the snake_case name it
// has in the HTTP request body, so that a 422 answer can point at it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is the only error type Decide returns for a rejected command. Any
// other error from this package is a programming error (for example a nil
// command), which the caller should treat as an internal failure.
type Error struct {
	Code Code
	// Reason is a stable machine-readable name, one of the Reason constants.
	Reason string
	// Message is a human explanation, free of personal data so that it can be
	// logged.
	Message string
	// Fields lists every invalid field when Code is CodeInvalid.
	Fields []FieldError
	// ExistingCustomerID names the customer that already uses an email when
	// Reason is ReasonEmailTaken.
	ExistingCustomerID uuid.UUID
}

// Error renders the message with the "domain: " prefix and, for invalid
// commands, every field error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("domain: ")
	b.WriteString(e.Message)
	for i, f := range e.Fields {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Field)
		b.WriteString(" ")
		b.WriteString(f.Message)
	}
	return b.String()
}

// Is lets errors.Is match an *Error against a template: the codes must be
// equal and, when the template has a Reason, the reasons too. The sentinels
// ErrInvalid, ErrNotFound, ErrConflict and ErrGone are such templates.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok || t == nil {
		return false
	}
	return t.Code == e.Code && (t.Reason == "" || t.Reason == e.Reason)
}

// HasField reports whether field is among the invalid fields.
func (e *Error) HasField(field string) bool {
	for _, f := range e.Fields {
		if f.Field == field {
			return true
		}
	}
	return false
}

// Sentinels for errors.Is(err, domain.ErrNotFound) and the like. They match
// any *Error of their code whatever its reason.
var (
	ErrInvalid  = &Error{Code: CodeInvalid, Message: "invalid command"}
	ErrNotFound = &Error{Code: CodeNotFound, Message: "not found"}
	ErrConflict = &Error{Code: CodeConflict, Message: "conflict"}
	ErrGone     = &Error{Code: CodeGone, Message: "gone"}
)

// EmailTaken is the conflict the application layer reports when another
// customer already uses an email. Uniqueness spans streams, so Decide (which
// sees one customer) cannot check it; the error lives here so that every
// rejection has the same shape. The message names the customer but not the
// email, which is personal data.
func EmailTaken(existing uuid.UUID) *Error {
	return &Error{
		Code:               CodeConflict,
		Reason:             ReasonEmailTaken,
		Message:            "email is already used by customer " + existing.String(),
		ExistingCustomerID: existing,
	}
}

func notFound(reason, message string) *Error {
	return &Error{Code: CodeNotFound, Reason: reason, Message: message}
}

func conflict(reason, message string) *Error {
	return &Error{Code: CodeConflict, Reason: reason, Message: message}
}

func invalid(fields []FieldError) *Error {
	return &Error{Code: CodeInvalid, Reason: ReasonInvalidFields, Message: "invalid fields", Fields: fields}
}
