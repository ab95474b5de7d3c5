package progress_test

import (
	"bytes"
	"testing"

	"github.com/rapport-crm/rapport/cmd/rapport/internal/progress"
)

// TestProgressBar draws the CLI's bar.
func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	report, finish := progress.Rebuild(&buf, "rebuilding customers")
	report(0, 100)
	report(50, 100)
	report(120, 150)
	finish()
	if !bytes.Contains(buf.Bytes(), []byte("rebuilding customers")) {
		t.Fatalf("bar: %q", buf.String())
	}
}
