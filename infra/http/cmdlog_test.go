package http_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestRefusedCommandLogsTheCustomer: a refused or failed command's log
// line names the customer of the path, not the zero id.
func TestRefusedCommandLogsTheCustomer(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	m := apptest.MustOpen(t, func(c *app.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	id := register(t, m, "logged@example.com")
	resp := m.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/customers/" + id + "/contacts", Key: m.Keys["writer"],
		Body: map[string]any{"channel": "chat", "direction": "inbound", "summary": "x", "by": "bot"}, Header: map[string]string{"If-Match": `"9"`}})
	requireProblem(t, resp, http.StatusPreconditionFailed, "revision_mismatch", "")
	found := false
	for _, line := range bytes.Split(buf.Bytes(), []byte("\n")) {
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil || rec["msg"] != "command refused" {
			continue
		}
		found = true
		if rec["customer_id"] != id {
			t.Errorf("refused command logged customer_id %v, want %s", rec["customer_id"], id)
		}
	}
	if !found {
		t.Fatal("no command refused line logged")
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
