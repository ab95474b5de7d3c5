package readmodel

import (
	"time"

	"github.com/rapport-crm/rapport/domain/eventcodec"
)

// Personal is a personal text as a projector stores it: NULL when empty,
// or when the customer's key was destroyed (the text is unreadable for
// good, so a rebuild after erasure cannot bring it back).
func Personal(d *eventcodec.Decoded, s string) any {
	if d.Erased || s == "" {
		return nil
	}
	return s
}

// SmallInt is an optional score as stored (smallint): NULL for nil.
func SmallInt(v *int) any {
	if v == nil {
		return nil
	}
	return int16(*v)
}

// Int is an optional smallint as read: nil for NULL.
func Int(v *int16) *int {
	if v == nil {
		return nil
	}
	i := int(*v)
	return &i
}

// NullTime is an optional time as stored: NULL for the zero time.
func NullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// UTC is an optional time as read, in UTC: nil for NULL.
func UTC(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Deref is an optional text as the domain holds it: "" for NULL.
func Deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
