package domain

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Length limits, in characters (runes) after trimming. The product fixes the
// name (200) and classification labels (64); the others are generous bounds
// that keep a single event small.
const (
	MaxNameLength      = 200
	MaxLabelLength     = 64
	MaxShortTextLength = 200   // company, staff names, complaint category
	MaxLongTextLength  = 10000 // summaries, descriptions, notes, reasons, comments
	MaxEmailLength     = 254
	MaxPhoneLength     = 32
	MaxTags            = 50
	MaxTagLength       = 64
)

// NormalizeEmail trims and lower-cases an email address and checks that it is
// a bare address (no display name) that net/mail accepts. The application
// layer uses it too, so that its uniqueness check sees the same form as the
// events.
func NormalizeEmail(raw string) (string, bool) {
	email := strings.ToLower(strings.TrimSpace(raw))
	if email == "" || len(email) > MaxEmailLength {
		return "", false
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email {
		return "", false
	}
	return email, true
}

// validPhone accepts what people write for phone numbers: digits with
// optional +, spaces, dashes, dots, slashes and parentheses, and at least
// three digits. It rejects letters so that an email typed into the phone
// field is caught.
func validPhone(phone string) bool {
	digits := 0
	for _, r := range phone {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case strings.ContainsRune("+ -.()/", r):
		default:
			return false
		}
	}
	return digits >= 3 && utf8.RuneCountInString(phone) <= MaxPhoneLength
}

// fieldErrors collects every invalid field of a command, so that one answer
// names them all.
type fieldErrors []FieldError

func (f *fieldErrors) add(field, format string, args ...any) {
	*f = append(*f, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (f fieldErrors) has(field string) bool {
	return slices.ContainsFunc(f, func(e FieldError) bool { return e.Field == field })
}

func (f fieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return invalid(f)
}

// required trims a mandatory text and checks its length.
func (f *fieldErrors) required(field, value string, max int) string {
	value = strings.TrimSpace(value)
	if value == "" {
		f.add(field, "is required")
		return value
	}
	return f.optional(field, value, max)
}

// optional trims a text that may be empty and checks its length.
func (f *fieldErrors) optional(field, value string, max int) string {
	// Controls are looked for before trimming: NEL (U+0085), vertical tab
	// and form feed are white space to TrimSpace, but refused all the same.
	control := HasRefusedControl(value)
	value = strings.TrimSpace(value)
	switch {
	case control:
		f.add(field, "must not hold control characters other than tab, line feed and carriage return")
	case utf8.RuneCountInString(value) > max:
		f.add(field, "must be at most %d characters", max)
	}
	return value
}

// label checks a classification label that was given: 1–64 characters.
func (f *fieldErrors) label(field, value string) string {
	return f.required(field, value, MaxLabelLength)
}

// tier checks a value tier that was given.
func (f *fieldErrors) tier(field, value string) string {
	control := HasRefusedControl(value)
	value = strings.TrimSpace(value)
	if control || !ValidTier(value) {
		f.add(field, "must be one of A, B, C")
	}
	return value
}

// email normalises an email; the empty string means "none".
func (f *fieldErrors) email(field, value string) string {
	if strings.TrimSpace(value) == "" {
		return ""
	}
	if hasInvisible(value) {
		f.add(field, "must not hold invisible, format or control characters")
		return ""
	}
	email, ok := NormalizeEmail(value)
	if !ok {
		f.add(field, "must be a valid email address")
	}
	return email
}

// phone trims a phone number; the empty string means "none".
func (f *fieldErrors) phone(field, value string) string {
	value = strings.TrimSpace(value)
	if value != "" && !validPhone(value) {
		f.add(field, "must be a phone number of at most %d characters with at least 3 digits", MaxPhoneLength)
	}
	return value
}

// tags trims each tag and drops repeats, keeping the first occurrence's
// order; an empty list becomes nil.
func (f *fieldErrors) tags(field string, tags []string) []string {
	if len(tags) > MaxTags {
		f.add(field, "must have at most %d tags", MaxTags)
		return nil
	}
	var clean []string
	for _, tag := range tags {
		control := HasRefusedControl(tag)
		tag = strings.TrimSpace(tag)
		if control {
			f.add(field, "each tag must be free of control characters other than tab, line feed and carriage return")
			return nil
		}
		if tag == "" || utf8.RuneCountInString(tag) > MaxTagLength {
			f.add(field, "each tag must be 1 to %d characters", MaxTagLength)
			return nil
		}
		if !slices.Contains(clean, tag) {
			clean = append(clean, tag)
		}
	}
	return clean
}

func (f *fieldErrors) channel(field string, ch Channel, required bool) {
	switch {
	case ch == "" && required:
		f.add(field, "is required")
	case ch != "" && !ch.Valid():
		f.add(field, "must be one of %s", join(Channels()))
	}
}

// notAfterNow resolves an optional business time: nil means now, and a given
// time must not lie in the future.
func (f *fieldErrors) notAfterNow(field string, t *time.Time, now time.Time) time.Time {
	switch {
	case t == nil:
		return now
	case t.IsZero():
		f.add(field, "must be a valid time")
	case !TimeInRange(*t):
		f.add(field, "must lie between 1900-01-01 and 9999-12-31 UTC")
	case t.After(now):
		f.add(field, "must not be in the future")
	}
	return t.UTC()
}

// id checks an id the application layer was meant to set.
func (f *fieldErrors) id(field string, id uuid.UUID) {
	if id == uuid.Nil {
		f.add(field, "is required")
	}
}

func join[T ~string](values []T) string {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// Each command's normalized method trims and normalises its input and checks
// everything that does not depend on the customer's state, naming every
// invalid field at once.

func (cmd RegisterCustomer) normalized() (RegisterCustomer, error) {
	var f fieldErrors
	f.id("customer_id", cmd.CustomerID)
	cmd.Name = f.required("name", cmd.Name, MaxNameLength)
	cmd.Email = f.email("email", cmd.Email)
	cmd.Phone = f.phone("phone", cmd.Phone)
	if cmd.Email == "" && cmd.Phone == "" && !f.has("email") && !f.has("phone") {
		f.add("email", "email or phone is required")
		f.add("phone", "email or phone is required")
	}
	cmd.Company = f.optional("company", cmd.Company, MaxShortTextLength)
	cmd.Tags = f.tags("tags", cmd.Tags)
	optionalLabel := func(field, value string, check func(string, string) string) string {
		if strings.TrimSpace(value) == "" {
			return ""
		}
		return check(field, value)
	}
	cmd.Segment = optionalLabel("segment", cmd.Segment, f.label)
	cmd.Tier = optionalLabel("tier", cmd.Tier, f.tier)
	cmd.Region = optionalLabel("region", cmd.Region, f.label)
	cmd.Industry = optionalLabel("industry", cmd.Industry, f.label)
	return cmd, f.err()
}

func (cmd UpdateProfile) normalized() (UpdateProfile, error) {
	var f fieldErrors
	if cmd.Name == nil && cmd.Email == nil && cmd.Phone == nil && cmd.Company == nil && cmd.Tags == nil {
		for _, field := range []string{"name", "email", "phone", "company", "tags"} {
			f.add(field, "at least one of name, email, phone, company, tags is required")
		}
		return cmd, f.err()
	}
	var out UpdateProfile
	if cmd.Name != nil {
		out.Name = ptr(f.required("name", *cmd.Name, MaxNameLength))
	}
	if cmd.Email != nil {
		out.Email = ptr(f.email("email", *cmd.Email))
	}
	if cmd.Phone != nil {
		out.Phone = ptr(f.phone("phone", *cmd.Phone))
	}
	if cmd.Company != nil {
		out.Company = ptr(f.optional("company", *cmd.Company, MaxShortTextLength))
	}
	if cmd.Tags != nil {
		tags := f.tags("tags", *cmd.Tags)
		if tags == nil {
			tags = []string{} // given and empty: clear the tags
		}
		out.Tags = &tags
	}
	return out, f.err()
}

func (cmd ClassifyCustomer) normalized() (ClassifyCustomer, error) {
	var f fieldErrors
	if cmd.Segment == nil && cmd.Tier == nil && cmd.Region == nil && cmd.Industry == nil {
		for _, field := range []string{"segment", "tier", "region", "industry"} {
			f.add(field, "at least one of segment, tier, region, industry is required")
		}
		return cmd, f.err()
	}
	var out ClassifyCustomer
	if cmd.Segment != nil {
		out.Segment = ptr(f.label("segment", *cmd.Segment))
	}
	if cmd.Tier != nil {
		out.Tier = ptr(f.tier("tier", *cmd.Tier))
	}
	if cmd.Region != nil {
		out.Region = ptr(f.label("region", *cmd.Region))
	}
	if cmd.Industry != nil {
		out.Industry = ptr(f.label("industry", *cmd.Industry))
	}
	return out, f.err()
}

func (cmd AssignTeamMember) normalized() (AssignTeamMember, error) {
	var f fieldErrors
	if !cmd.Role.Valid() {
		f.add("role", "must be one of %s", join(Roles()))
	}
	cmd.Member = f.required("member", cmd.Member, MaxShortTextLength)
	return cmd, f.err()
}

// The commands with an optional business time (contact, survey, churn) also
// return it resolved: nil becomes now.

func (cmd LogContact) normalized(now time.Time) (LogContact, time.Time, error) {
	var f fieldErrors
	f.id("contact_id", cmd.ContactID)
	f.channel("channel", cmd.Channel, true)
	if !cmd.Direction.Valid() {
		if cmd.Direction == "" {
			f.add("direction", "is required")
		} else {
			f.add("direction", "must be one of inbound, outbound")
		}
	}
	cmd.Summary = f.required("summary", cmd.Summary, MaxLongTextLength)
	cmd.By = f.required("by", cmd.By, MaxShortTextLength)
	occurredAt := f.notAfterNow("occurred_at", cmd.OccurredAt, now)
	return cmd, occurredAt, f.err()
}

func (cmd ScheduleFollowUp) normalized(now time.Time) (ScheduleFollowUp, error) {
	var f fieldErrors
	f.id("follow_up_id", cmd.FollowUpID)
	switch {
	case cmd.DueAt.IsZero():
		f.add("due_at", "is required")
	case !TimeInRange(cmd.DueAt):
		f.add("due_at", "must lie between 1900-01-01 and 9999-12-31 UTC")
	case !cmd.DueAt.After(now):
		f.add("due_at", "must be in the future")
	}
	cmd.DueAt = cmd.DueAt.UTC()
	cmd.By = f.required("by", cmd.By, MaxShortTextLength)
	cmd.Note = f.optional("note", cmd.Note, MaxLongTextLength)
	return cmd, f.err()
}

func (cmd FileComplaint) normalized() (FileComplaint, error) {
	var f fieldErrors
	f.id("complaint_id", cmd.ComplaintID)
	cmd.Category = f.required("category", cmd.Category, MaxShortTextLength)
	switch {
	case cmd.Severity == "":
		f.add("severity", "is required")
	case !cmd.Severity.Valid():
		f.add("severity", "must be one of %s", join(Severities()))
	}
	cmd.Description = f.required("description", cmd.Description, MaxLongTextLength)
	f.channel("channel", cmd.Channel, false)
	return cmd, f.err()
}

func (cmd AssignComplaint) normalized() (AssignComplaint, error) {
	var f fieldErrors
	cmd.Assignee = f.required("assignee", cmd.Assignee, MaxShortTextLength)
	return cmd, f.err()
}

func (cmd AcknowledgeComplaint) normalized() (AcknowledgeComplaint, error) {
	var f fieldErrors
	cmd.By = f.required("by", cmd.By, MaxShortTextLength)
	cmd.Note = f.optional("note", cmd.Note, MaxLongTextLength)
	return cmd, f.err()
}

func (cmd EscalateComplaint) normalized() (EscalateComplaint, error) {
	var f fieldErrors
	cmd.To = f.required("to", cmd.To, MaxShortTextLength)
	cmd.Reason = f.required("reason", cmd.Reason, MaxLongTextLength)
	return cmd, f.err()
}

func (cmd ResolveComplaint) normalized() (ResolveComplaint, error) {
	var f fieldErrors
	cmd.By = f.required("by", cmd.By, MaxShortTextLength)
	cmd.Resolution = f.required("resolution", cmd.Resolution, MaxLongTextLength)
	return cmd, f.err()
}

func (cmd ReopenComplaint) normalized() (ReopenComplaint, error) {
	var f fieldErrors
	cmd.Reason = f.required("reason", cmd.Reason, MaxLongTextLength)
	return cmd, f.err()
}

func (cmd RecordSurvey) normalized(now time.Time) (RecordSurvey, time.Time, error) {
	var f fieldErrors
	f.id("survey_id", cmd.SurveyID)
	if cmd.CSAT == nil && cmd.NPS == nil {
		f.add("csat", "csat or nps is required")
		f.add("nps", "csat or nps is required")
	}
	if cmd.CSAT != nil && (*cmd.CSAT < 1 || *cmd.CSAT > 5) {
		f.add("csat", "must be between 1 and 5")
	}
	if cmd.NPS != nil && (*cmd.NPS < 0 || *cmd.NPS > 10) {
		f.add("nps", "must be between 0 and 10")
	}
	cmd.Comment = f.optional("comment", cmd.Comment, MaxLongTextLength)
	f.channel("channel", cmd.Channel, false)
	answeredAt := f.notAfterNow("answered_at", cmd.AnsweredAt, now)
	return cmd, answeredAt, f.err()
}

func (cmd MarkChurned) normalized(now time.Time) (MarkChurned, time.Time, error) {
	var f fieldErrors
	cmd.Reason = f.required("reason", cmd.Reason, MaxLongTextLength)
	churnedAt := f.notAfterNow("churned_at", cmd.ChurnedAt, now)
	return cmd, churnedAt, f.err()
}

func (cmd Reactivate) normalized() (Reactivate, error) {
	var f fieldErrors
	cmd.Reason = f.optional("reason", cmd.Reason, MaxLongTextLength)
	return cmd, f.err()
}

func (cmd EraseCustomerData) normalized() (EraseCustomerData, error) {
	var f fieldErrors
	cmd.Reason = f.required("reason", cmd.Reason, MaxLongTextLength)
	return cmd, f.err()
}

func ptr[T any](v T) *T { return &v }
