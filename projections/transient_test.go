package projections

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestIsTransientSparesTheEvent: errors that say nothing about the event
// (the server is out of disk or memory, its I/O fails, a conflict with
// another transaction) are retried; errors in the event's data park its
// stream.
func TestIsTransientSparesTheEvent(t *testing.T) {
	for code, want := range map[string]bool{
		"40001": true, "40P01": true, "55P03": true, "53100": true, "53200": true, "53300": true, "58030": true, "08006": true,
		"22021": false, "23505": false, "23514": false, "22012": false, "42703": false,
	} {
		err := fmt.Errorf("apply: %w", &applyError{&pgconn.PgError{Code: code}})
		if got := IsTransient(err); got != want {
			t.Errorf("IsTransient(SQLSTATE %s) = %v, want %v", code, got, want)
		}
	}
	if IsTransient(errors.New("projector panicked")) {
		t.Error("a panic is not transient")
	}
}
