package customers

import (
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// CursorAt is a cursor that starts a list at registration time t, for
// benchmarks that page from anywhere.
func CursorAt(t time.Time) string { return Cursor.Encode(readmodel.Key{At: t, ID: uuid.Nil}) }
