package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rapport-crm/rapport/infra/pgtest"
)

// TestWebhooksCLI drives `rapport webhooks` through a subscription's life:
// create (the secret printed once), list, rotate, disable, enable, delete;
// and the SSRF check refusing a loopback target unless allowed.
func TestWebhooksCLI(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	common := []string{"--database-url", pgtest.NewDatabase(t), "--master-key", base64.StdEncoding.EncodeToString(key)}
	rapport := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), append(args, common...), &stdout, &stderr)
		return stdout.String(), err
	}
	if out, err := rapport("webhooks", "create", "--url", "http://127.0.0.1:9/hook"); err == nil || !strings.Contains(out+err.Error(), "loopback") {
		t.Fatalf("a loopback target was accepted: %s %v", out, err)
	}
	out, err := rapport("webhooks", "create", "--url", "http://127.0.0.1:9/hook", "--types", "complaint.filed.v1", "--allow-targets", "127.0.0.0/8")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	var created struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("create printed %s (%v)", out, err)
	}
	if out, err := rapport("webhooks", "list"); err != nil || !strings.Contains(out, created.ID) || !strings.Contains(out, "complaint.filed.v1") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := rapport("webhooks", "list"); err != nil || strings.Contains(out, created.Secret) {
		t.Fatalf("list shows the secret: %v %s", err, out)
	}
	out, err = rapport("webhooks", "rotate", created.ID)
	if err != nil || !strings.Contains(out, "whsec_") || strings.Contains(out, created.Secret) {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	for _, sub := range []string{"disable", "enable"} {
		if out, err := rapport("webhooks", sub, created.ID); err != nil {
			t.Fatalf("%s: %v\n%s", sub, err, out)
		}
	}
	if out, err := rapport("webhooks", "delete", created.ID); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if _, err := rapport("webhooks", "delete", created.ID); err == nil {
		t.Fatal("deleting it twice succeeded")
	}
}
