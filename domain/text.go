package domain

import (
	"strings"
	"time"
	"unicode"
)

// The input rules of PRODUCT.md that hold whatever adapter carries the
// command: what the domain accepts, every event store and read model must
// be able to store and every encoder must be able to write.

// Bounds of a business time, in UTC: before 1900 is a typo rather than a
// customer's history, and after 9999 is beyond what RFC 3339 and JSON can
// write (Time.MarshalJSON fails outside years 0–9999).
var (
	MinTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// TimeInRange reports whether t lies within MinTime..MaxTime once
// converted to UTC.
func TimeInRange(t time.Time) bool {
	return !t.Before(MinTime) && !t.After(MaxTime)
}

// refusedControl reports whether r is a C0 or C1 control character other
// than tab, line feed and carriage return: NUL cannot be stored in a
// PostgreSQL text column (SQLSTATE 22021), and the others have no place
// in what people type.
func refusedControl(r rune) bool {
	return (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || (r >= 0x7f && r <= 0x9f)
}

// HasRefusedControl reports whether s holds a refused control character.
func HasRefusedControl(s string) bool {
	return strings.ContainsFunc(s, refusedControl)
}

// hasInvisible reports whether s holds a format character (Unicode
// category Cf: zero-width space and joiners, soft hyphen, bidi controls,
// byte order mark) or a refused control: in an email such a character
// makes a look-alike of another address.
func hasInvisible(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return refusedControl(r) || unicode.Is(unicode.Cf, r) })
}
