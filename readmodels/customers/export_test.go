package customers

import (
	"time"

	"github.com/google/uuid"
)

// CursorAt is a cursor that starts a list at registration time t, for
// benchmarks that page from anywhere.
func CursorAt(t time.Time) string { return encodeCursor(t, uuid.Nil) }
