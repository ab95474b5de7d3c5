package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// TestKeysCommand checks and rotates the master key of a running service
// through the CLI: afterwards the new key checks, the old one is refused,
// and the service (which learned the new key) goes on.
func TestKeysCommand(t *testing.T) {
	m := apptest.MustOpen(t)
	for i := range 3 {
		if resp := m.Post(t, "/v1/customers", map[string]any{"name": "Ada", "phone": "+1 555 010" + string(rune('0'+i))}); resp.Status != http.StatusCreated {
			t.Fatalf("register: %d %s", resp.Status, resp.Body)
		}
	}
	t.Setenv("RAPPORT_MASTER_KEY", "")
	t.Setenv("RAPPORT_NEW_MASTER_KEY", "")
	oldKey := base64.StdEncoding.EncodeToString(m.Config.MasterKey)
	newKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{5}, 32))
	keys := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := runKeys(context.Background(), append(args, "--database-url", m.DatabaseURL), &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}
	if out, err := keys("check", "--master-key", oldKey); err != nil {
		t.Fatalf("check the service's own key: %v\n%s", err, out)
	}
	out, err := keys("rotate", "--master-key", oldKey, "--new-key", newKey, "--grace", "2500ms")
	if err != nil || !strings.Contains(out, "rotated: 3 data keys re-wrapped") {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	if _, err := keys("check", "--master-key", oldKey); !errors.Is(err, postgres.ErrMasterKeyMismatch) {
		t.Fatalf("the old key after the rotation: %v", err)
	}
	if out, err := keys("check", "--master-key", newKey); err != nil {
		t.Fatalf("the new key after the rotation: %v\n%s", err, out)
	}
	if resp := m.Post(t, "/v1/customers", map[string]any{"name": "After", "phone": "+1 555 0199"}); resp.Status != http.StatusCreated {
		t.Fatalf("the running service after the rotation: %d %s", resp.Status, resp.Body)
	}
}
