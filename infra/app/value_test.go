package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

func registerBuyer(t *testing.T, m *apptest.Main, email string) string {
	t.Helper()
	resp := m.Post(t, "/v1/customers", map[string]any{"name": "Grace Hopper", "email": email, "segment": "smb", "tier": "A"})
	if resp.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.Status, resp.Body)
	}
	return resp.Map(t)["customer_id"].(string)
}

func buy(t *testing.T, m *apptest.Main, id, ref, amount string, at time.Time) *apptest.Response {
	t.Helper()
	return m.Post(t, "/v1/customers/"+id+"/purchases", map[string]any{
		"amount": amount, "currency": "EUR", "occurred_at": at.UTC().Format(time.RFC3339), "reference": ref, "channel": "web"})
}

func TestPurchaseCommandsEndToEnd(t *testing.T) {
	m := apptest.MustOpen(t)
	id := registerBuyer(t, m, "grace@example.com")
	when := time.Now().Add(-time.Hour)

	first := buy(t, m, id, "ORD-1", "129.90", when)
	if first.Status != http.StatusCreated {
		t.Fatalf("purchase: %d %s", first.Status, first.Body)
	}
	purchase := first.Map(t)["purchase_id"].(string)
	// The same reference again, even with another body, is the first
	// purchase: 200 with its answer.
	again := buy(t, m, id, "ORD-1", "5.00", when)
	if again.Status != http.StatusOK || again.Map(t)["purchase_id"] != purchase || again.Map(t)["revision"] != first.Map(t)["revision"] {
		t.Fatalf("repeat: %d %s, first %s", again.Status, again.Body, first.Body)
	}
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"amount": "12.345", "currency": "EUR", "occurred_at": when.Format(time.RFC3339), "reference": "x"}, "amount"},
		{map[string]any{"amount": 12.5, "currency": "EUR", "occurred_at": when.Format(time.RFC3339), "reference": "x"}, "amount"},
		{map[string]any{"amount": "12.50", "currency": "USD", "occurred_at": when.Format(time.RFC3339), "reference": "x"}, "currency"},
		{map[string]any{"amount": "12.50", "currency": "EUR", "reference": "x"}, "occurred_at"},
	} {
		resp := m.Post(t, "/v1/customers/"+id+"/purchases", tc.body)
		if resp.Status != http.StatusUnprocessableEntity || !containsField(resp, tc.field) {
			t.Errorf("%v: %d %s, want 422 naming %s", tc.body, resp.Status, resp.Body, tc.field)
		}
	}
	if resp := m.Post(t, "/v1/customers/"+id+"/purchases/"+purchase+"/refund", map[string]any{"amount": "200.00"}); resp.Status != http.StatusConflict {
		t.Fatalf("refund above the purchase: %d %s", resp.Status, resp.Body)
	}
	if resp := m.Post(t, "/v1/customers/"+id+"/purchases/"+purchase+"/refund", map[string]any{"amount": "29.90"}); resp.Status != http.StatusOK || resp.Map(t)["refund_id"] == nil {
		t.Fatalf("refund: %d %s", resp.Status, resp.Body)
	}
	if resp := m.Post(t, "/v1/customers/"+id+"/loyalty/awards", map[string]any{"points": 5, "reason": "welcome"}); resp.Status != http.StatusCreated {
		t.Fatalf("award: %d %s", resp.Status, resp.Body)
	}
	// 129 earned, 29 taken back by the refund, 5 awarded: 105.
	if resp := m.Post(t, "/v1/customers/"+id+"/loyalty/redemptions", map[string]any{"points": 106, "reason": "voucher"}); resp.Status != http.StatusConflict || resp.Map(t)["reason"] != "insufficient_points" {
		t.Fatalf("redemption above the balance: %d %s", resp.Status, resp.Body)
	}
	if resp := m.Post(t, "/v1/customers/"+id+"/loyalty/redemptions", map[string]any{"points": 105, "reason": "voucher"}); resp.Status != http.StatusCreated {
		t.Fatalf("redemption: %d %s", resp.Status, resp.Body)
	}
}

func containsField(resp *apptest.Response, field string) bool {
	var problem struct {
		Errors []struct {
			Field string `json:"field"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(resp.Body, &problem)
	for _, f := range problem.Errors {
		if f.Field == field {
			return true
		}
	}
	return false
}

// Two service processes on one database (each with its own state cache)
// take redemptions of the same balance at once: the balance is decided on
// the stream, and an append expects the revision it was decided on, so no
// more points are spent than there were.
func TestConcurrentRedemptionsCannotOverspend(t *testing.T) {
	m := apptest.MustOpen(t)
	second := m.Config
	second.Addr, second.RunProjections = "127.0.0.1:0", false
	other, err := app.New(second)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close(context.Background()) })
	urls := []string{m.URL, other.HTTP.URL()}

	id := registerBuyer(t, m, "grace@example.com")
	if resp := buy(t, m, id, "ORD-1", "100.00", time.Now().Add(-time.Minute)); resp.Status != http.StatusCreated {
		t.Fatalf("purchase: %d %s", resp.Status, resp.Body)
	}
	const attempts, each = 16, 30 // 100 points: three redemptions of 30 fit
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
	)
	start := make(chan struct{})
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"points": %d, "reason": "r%d"}`, each, i)
			req, _ := http.NewRequest(http.MethodPost, urls[i%2]+"/v1/customers/"+id+"/loyalty/redemptions", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+m.Keys["writer"])
			<-start
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	if statuses[http.StatusCreated] != 3 || statuses[http.StatusConflict] != attempts-3 {
		t.Fatalf("answers by status %v: want 3 redemptions of %d out of 100 points to pass and the rest 409", statuses, each)
	}
}
