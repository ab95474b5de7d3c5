package webhooks_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/infra/webhooks"
)

// TestTheREADMEReceiverVerifiesSignatures runs the receiver of the
// README's "Receiving webhooks" as it is written and sends it messages
// signed as the deliverer signs them: it accepts those (one or two
// signatures, the README's own secret rotation case) and refuses a
// tampered body, a wrong secret and an old timestamp.
func TestTheREADMEReceiverVerifiesSignatures(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a program")
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	at := strings.Index(text, "\n### Receiving webhooks\n")
	if at < 0 {
		t.Fatal("README.md has no \"### Receiving webhooks\" section")
	}
	block := regexp.MustCompile("(?s)\n```go\n(.*?)\n```").FindStringSubmatch(text[at:])
	if block == nil {
		t.Fatal("no go block under \"### Receiving webhooks\"")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(block[1]), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "receiver")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(dir, "main.go")).CombinedOutput(); err != nil {
		t.Fatalf("the README's receiver does not build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	secret, _ := webhooks.NewSecret()
	other, _ := webhooks.NewSecret()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+secret, "PORT="+port)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	url := "http://127.0.0.1:" + port + "/hook"
	send := func(sigSecrets []string, ts time.Time, body, signed []byte) int {
		id := uuid.NewString()
		var sigs []string
		for _, s := range sigSecrets {
			sig, err := webhooks.Sign(s, id, ts, signed)
			if err != nil {
				t.Fatal(err)
			}
			sigs = append(sigs, sig)
		}
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", fmt.Sprint(ts.Unix()))
		req.Header.Set("webhook-signature", strings.Join(sigs, " "))
		for range 100 {
			resp, err := http.DefaultClient.Do(req.Clone(context.Background()))
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			time.Sleep(50 * time.Millisecond) // still starting
			req.Body = nopBody(body)
		}
		t.Fatal("the README's receiver does not answer")
		return 0
	}
	body := []byte(`{"id":"x","type":"complaint.filed.v1"}`)
	now := time.Now()
	for _, c := range []struct {
		name    string
		secrets []string
		ts      time.Time
		signed  []byte
		want    int
	}{
		{"signed", []string{secret}, now, body, http.StatusOK},
		{"two signatures, the new one second", []string{other, secret}, now, body, http.StatusOK},
		{"tampered body", []string{secret}, now, []byte(`{"id":"y"}`), http.StatusUnauthorized},
		{"another secret", []string{other}, now, body, http.StatusUnauthorized},
		{"ten minutes old", []string{secret}, now.Add(-10 * time.Minute), body, http.StatusUnauthorized},
	} {
		if got := send(c.secrets, c.ts, body, c.signed); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}
