package webhooks_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/webhooks"
)

// TestWebhookTargetsRefusePrivateAddresses: private, loopback,
// link-local, unspecified and shared addresses — literal, IPv4-mapped or
// behind a name — are refused, as are other schemes and credentials;
// configuration can allow a range.
func TestWebhookTargetsRefusePrivateAddresses(t *testing.T) {
	ctx := context.Background()
	var none webhooks.Targets
	for _, u := range []string{
		"http://127.0.0.1/hook", "http://localhost:8080/hook", "http://10.1.2.3/", "http://172.16.0.9/", "http://192.168.1.1/",
		"http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://[fe80::1]/", "http://[fc00::1]/",
		"http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://100.64.0.1/", "http://224.0.0.1/",
		"ftp://example.com/", "file:///etc/passwd", "gopher://example.com/", "http://user:pw@93.184.216.34/", "http:///nohost", "not a url at all\x7f",
	} {
		if err := none.CheckURL(ctx, u); !errors.Is(err, webhooks.ErrTargetRefused) {
			t.Errorf("%s: %v, want refused", u, err)
		}
	}
	for _, u := range []string{"http://93.184.216.34/hook", "https://[2606:4700::1111]/x"} {
		if err := none.CheckURL(ctx, u); err != nil {
			t.Errorf("%s: %v, want allowed", u, err)
		}
	}
	if err := (webhooks.Targets{Allow: loopback}).CheckURL(ctx, "http://127.0.0.1:9000/hook"); err != nil {
		t.Errorf("loopback allowed by configuration: %v", err)
	}
	if err := (webhooks.Targets{Allow: loopback}).CheckURL(ctx, "http://10.0.0.1/"); err == nil {
		t.Error("allowing loopback allowed a private address")
	}
}

// TestWebhookDeliveriesCheckTheAddressDialled: a subscription whose name
// resolved to an allowed address when it was made is still refused when
// the deliverer's configuration refuses the address it dials (DNS
// rebinding); the receiver sees nothing and the log says why.
func TestWebhookDeliveriesCheckTheAddressDialled(t *testing.T) {
	m := openService(t)
	r := newReceiver(t, nil)
	sub := subscribe(t, m, r)
	runDeliverer(t, m, func(c *webhooks.Config) { c.Targets = webhooks.Targets{} })
	m.Generate(t, 6, 5)
	ctx := context.Background()
	waitFor(t, 20*time.Second, "a refused attempt", func() bool {
		log, err := m.Webhooks.Deliveries(ctx, sub.ID, webhooks.DeliveryFilter{Limit: 10})
		return err == nil && len(log) > 0 && log[len(log)-1].Attempts > 0
	})
	log, _ := m.Webhooks.Deliveries(ctx, sub.ID, webhooks.DeliveryFilter{Limit: 10})
	first := log[len(log)-1]
	if first.LastError == nil || !strings.Contains(*first.LastError, "target refused") || first.State != "pending" {
		t.Fatalf("delivery %+v, want pending with a refused target", first)
	}
	if n := r.requests.Load(); n != 0 {
		t.Fatalf("the receiver got %d requests", n)
	}
}

// TestWebhookRedirectsAreNotFollowed: a receiver answering 307 to another
// address is a failed attempt; the other address is never contacted.
func TestWebhookRedirectsAreNotFollowed(t *testing.T) {
	m := openService(t)
	target := newReceiver(t, nil)
	var redirected atomic.Int64
	r := newReceiver(t, nil)
	r.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		redirected.Add(1)
		http.Redirect(w, req, target.srv.URL+"/elsewhere", http.StatusTemporaryRedirect)
	})
	sub := subscribe(t, m, r)
	runDeliverer(t, m, nil)
	m.Generate(t, 7, 5)
	ctx := context.Background()
	waitFor(t, 20*time.Second, "redirected attempts", func() bool { return redirected.Load() >= 3 })
	if n := target.requests.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
	log, _ := m.Webhooks.Deliveries(ctx, sub.ID, webhooks.DeliveryFilter{Limit: 10})
	first := log[len(log)-1]
	if first.State != "pending" || first.LastStatus == nil || *first.LastStatus != http.StatusTemporaryRedirect || !strings.Contains(*first.LastError, "not followed") {
		t.Fatalf("delivery %+v", first)
	}
}

// TestWebhookSecretRotation: after a rotation deliveries carry two
// signatures, so a receiver holding either secret accepts them; the new
// secret is a new value, shown once.
func TestWebhookSecretRotation(t *testing.T) {
	m := openService(t)
	oldReceiver := newReceiver(t, nil)
	sub := subscribe(t, m, oldReceiver)
	rotated, err := m.Webhooks.RotateSecret(context.Background(), sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Secret == sub.Secret || !strings.HasPrefix(rotated.Secret, "whsec_") {
		t.Fatalf("rotated secret %q (was %q)", rotated.Secret, sub.Secret)
	}
	// Two receivers at the same URL would be one; check both secrets on
	// what the old receiver gets.
	var bothValid atomic.Int64
	inner := oldReceiver.srv.Config.Handler
	oldReceiver.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sigs := req.Header.Get("webhook-signature")
		if len(strings.Fields(sigs)) == 2 {
			bothValid.Add(1)
		}
		inner.ServeHTTP(w, req)
	})
	runDeliverer(t, m, nil)
	m.Generate(t, 8, 10)
	want := feedEvents(t, m)
	waitFor(t, 20*time.Second, "delivered under the old secret", func() bool { return len(oldReceiver.received()) >= len(want) })
	if bothValid.Load() == 0 || oldReceiver.badSigs.Load() != 0 {
		t.Fatalf("two signatures on %d deliveries, %d bad", bothValid.Load(), oldReceiver.badSigs.Load())
	}
	// The new secret verifies the same messages.
	oldReceiver.secret.Store(rotated.Secret)
	if _, err := m.Webhooks.Replay(context.Background(), sub.ID, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "delivered under the new secret", func() bool { return len(oldReceiver.received()) >= 2*len(want) })
	if oldReceiver.badSigs.Load() != 0 {
		t.Fatalf("%d bad signatures under the new secret", oldReceiver.badSigs.Load())
	}
}
