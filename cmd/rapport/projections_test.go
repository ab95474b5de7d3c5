package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/projections"
)

// TestProjectionsRetry: `rapport projections retry` names what is wrong
// with a stream that is not parked, and needs both arguments.
func TestProjectionsRetry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	writeDevSettings(t, dir)
	t.Setenv("RAPPORT_DATA_DIR", dir)
	for _, name := range []string{"DATABASE_URL", "RAPPORT_MASTER_KEY", "RAPPORT_EVENT_STORE"} {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"migrate"}, &stdout, &stderr); err != nil {
		t.Fatalf("migrate: %v\n%s", err, stderr.String())
	}
	err := run(t.Context(), []string{"projections", "retry", "customers", "customer-" + uuid.NewString()}, &stdout, &stderr)
	if !errors.Is(err, projections.ErrNotParked) {
		t.Fatalf("retry of a stream not parked: %v\n%s", err, stderr.String())
	}
	err = run(t.Context(), []string{"projections", "retry", "customers"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "parked stream") {
		t.Fatalf("retry without a stream: %v", err)
	}
}
