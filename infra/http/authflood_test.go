package http_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// TestUnknownKeysAreRateLimitedPerAddress: a flood of unknown keys from
// one address costs at most the burst of database lookups; then 429 with
// Retry-After, without asking the database.
func TestUnknownKeysAreRateLimitedPerAddress(t *testing.T) {
	m := apptest.MustOpen(t, func(c *app.Config) { c.RunProjections = false })
	before := m.APIKeys.Lookups()
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	retryAfter := ""
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				resp, _ := rawDo(t, m, http.MethodGet, "/v1/customers", fmt.Sprintf("rpk_bad_%d_%d", w, i), nil, "")
				mu.Lock()
				statuses[resp.StatusCode]++
				if resp.StatusCode == http.StatusTooManyRequests {
					retryAfter = resp.Header.Get("Retry-After")
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	lookups := m.APIKeys.Lookups() - before
	t.Logf("400 bad keys: statuses %v, %d database lookups", statuses, lookups)
	if lookups > 40 || statuses[http.StatusTooManyRequests] < 300 || retryAfter == "" {
		t.Fatalf("400 unknown keys from one address: %d database lookups, statuses %v, Retry-After %q", lookups, statuses, retryAfter)
	}
	resp := m.Do(t, apptest.Request{Method: http.MethodGet, Path: "/v1/customers", Key: "rpk_bad_again"})
	requireProblem(t, resp, http.StatusTooManyRequests, "rate_limited", "")
}

// TestUnknownKeyLookupsAreRemembered: a secret the database did not know
// is answered from memory afterwards (secrets are random, so a remembered
// miss never hides a key created later).
func TestUnknownKeyLookupsAreRemembered(t *testing.T) {
	m := apptest.MustOpen(t, func(c *app.Config) { c.RunProjections = false })
	ctx := context.Background()
	before := m.APIKeys.Lookups()
	for range 5 {
		if _, err := m.APIKeys.Authenticate(ctx, "rpk_never_issued"); !errors.Is(err, postgres.ErrInvalidAPIKey) {
			t.Fatalf("unknown key: %v", err)
		}
	}
	if n := m.APIKeys.Lookups() - before; n != 1 {
		t.Fatalf("5 lookups of one unknown key asked the database %d times, want 1", n)
	}
	// A key revoked after it was used is refused at once in this process.
	_, secret, err := m.APIKeys.Create(ctx, "short-lived", []string{"writer"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.APIKeys.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if err := m.APIKeys.Revoke(ctx, "short-lived"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.APIKeys.Authenticate(ctx, secret); !errors.Is(err, postgres.ErrInvalidAPIKey) {
		t.Fatalf("revoked key: %v", err)
	}
}

// TestAFloodOfBadKeysSparesTheAddressesGoodKeys: behind a shared address
// (a NAT, a proxy) one misconfigured client must not lock out the others.
// A key that authenticated recently is still served while the address is
// refused for bad keys; only unknown keys wait.
func TestAFloodOfBadKeysSparesTheAddressesGoodKeys(t *testing.T) {
	m := apptest.MustOpen(t, func(c *app.Config) { c.RunProjections = false })
	_, good, err := m.APIKeys.Create(t.Context(), "neighbour", []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	requireStatus(t, m.Do(t, apptest.Request{Method: http.MethodGet, Path: "/v1/projections", Key: good}), http.StatusOK)
	limited := false
	for i := range 200 {
		resp, _ := rawDo(t, m, http.MethodGet, "/v1/customers", fmt.Sprintf("rpk_flood_%d", i), nil, "")
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("200 unknown keys from one address were never limited")
	}
	requireStatus(t, m.Do(t, apptest.Request{Method: http.MethodGet, Path: "/v1/projections", Key: good}), http.StatusOK)
	requireProblem(t, m.Do(t, apptest.Request{Method: http.MethodGet, Path: "/v1/customers", Key: "rpk_flood_more"}), http.StatusTooManyRequests, "rate_limited", "")
}
