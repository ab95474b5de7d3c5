package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// refuseKeyDestruction makes the database refuse to destroy data keys
// until the returned function runs: the state a crash between an
// erasure's event and its key's destruction leaves.
func refuseKeyDestruction(t *testing.T, m *apptest.Main) (pool *pgxpool.Pool, restore func()) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), m.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(context.Background(), `
		CREATE FUNCTION public.refuse_key_destruction() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'test: key destruction refused'; END $$;
		CREATE TRIGGER refuse_key_destruction BEFORE INSERT OR UPDATE ON rapport.customer_keys
		FOR EACH ROW WHEN (NEW.wrapped_key IS NULL) EXECUTE FUNCTION public.refuse_key_destruction();`); err != nil {
		t.Fatal(err)
	}
	return pool, func() {
		if _, err := pool.Exec(context.Background(), `DROP TRIGGER refuse_key_destruction ON rapport.customer_keys; DROP FUNCTION public.refuse_key_destruction();`); err != nil {
			t.Fatal(err)
		}
	}
}

func keyExists(t *testing.T, pool *pgxpool.Pool, customerID string) bool {
	t.Helper()
	var exists bool
	if err := pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM rapport.customer_keys WHERE customer_id = $1 AND wrapped_key IS NOT NULL)`, customerID).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}

func eraseRequest(m *apptest.Main, customerID, key string) apptest.Request {
	return apptest.Request{Method: http.MethodPost, Path: "/v1/customers/" + customerID + "/erasure", Key: m.Keys["admin"],
		Body: map[string]any{"reason": "GDPR art. 17 request"}, Header: map[string]string{"Idempotency-Key": key}}
}

func registerAda(t *testing.T, m *apptest.Main) string {
	t.Helper()
	resp := m.Post(t, "/v1/customers", map[string]any{"name": "Ada Lovelace", "email": "ada@example.com"})
	if resp.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.Status, resp.Body)
	}
	id := resp.Map(t)["customer_id"].(string)
	if resp := m.Post(t, "/v1/customers/"+id+"/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "Ada's secret plans", "by": "agent"}); resp.Status != http.StatusCreated {
		t.Fatalf("contact: %d %s", resp.Status, resp.Body)
	}
	return id
}

// requireErased checks that the customer's personal data is unreadable
// everywhere an auditor looks and that its email is free again.
func requireErased(t *testing.T, m *apptest.Main, pool *pgxpool.Pool, id string) {
	t.Helper()
	if keyExists(t, pool, id) {
		t.Error("the data key still exists")
	}
	for _, path := range []string{"/events", "/state?as_of=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339)} {
		resp := m.Get(t, "auditor", "/v1/customers/"+id+path)
		if resp.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.Status, resp.Body)
		}
		if strings.Contains(string(resp.Body), "Ada Lovelace") || strings.Contains(string(resp.Body), "secret plans") {
			t.Errorf("%s shows personal data after the erasure: %s", path, resp.Body)
		}
	}
	resp := m.Post(t, "/v1/customers", map[string]any{"name": "Another Ada", "email": "ada@example.com"})
	if resp.Status != http.StatusCreated {
		t.Errorf("the erased customer's email is still taken: %d %s", resp.Status, resp.Body)
	}
}

// TestErasureAnswers503UntilTheKeyIsDestroyed: an erasure whose key cannot
// be destroyed answers 503 with Retry-After, never 2xx, and so does its
// retry; once destruction works, the retry with the same Idempotency-Key
// completes it and answers 200.
func TestErasureAnswers503UntilTheKeyIsDestroyed(t *testing.T) {
	m := apptest.MustOpen(t)
	id := registerAda(t, m)
	pool, restore := refuseKeyDestruction(t, m)
	for attempt := range 2 {
		resp := m.Do(t, eraseRequest(m, id, "erase-ada"))
		if resp.Status != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("erasure attempt %d with the key surviving: %d %v %s, want 503 problem with Retry-After", attempt+1, resp.Status, resp.Header, resp.Body)
		}
	}
	if !keyExists(t, pool, id) {
		t.Fatal("the key is gone despite the trigger: the test proves nothing")
	}
	restore()
	resp := m.Do(t, eraseRequest(m, id, "erase-ada"))
	if resp.Status != http.StatusOK || resp.Header.Get("ETag") != `"2"` {
		t.Fatalf("retry once destruction works: %d %s (ETag %s), want 200 at revision 2", resp.Status, resp.Body, resp.Header.Get("ETag"))
	}
	requireErased(t, m, pool, id)
}

// TestInterruptedErasureIsCompletedAtStart: the process stops after the
// erasure's event is stored but before its key is destroyed. The next
// start completes the erasure by itself, and a retry of the erasure then
// answers 200.
func TestInterruptedErasureIsCompletedAtStart(t *testing.T) {
	m := apptest.MustOpen(t)
	id := registerAda(t, m)
	pool, restore := refuseKeyDestruction(t, m)
	m.Do(t, eraseRequest(m, id, "erase-ada")) // the event is stored, the key survives
	if !keyExists(t, pool, id) {
		t.Fatal("the key is gone despite the trigger: the test proves nothing")
	}
	restore()
	m.Restart(t)
	requireErased(t, m, pool, id)
	resp := m.Do(t, eraseRequest(m, id, "erase-ada"))
	if resp.Status != http.StatusOK || resp.Header.Get("ETag") != `"2"` {
		t.Fatalf("retry after the restart: %d %s (ETag %s), want 200 at revision 2", resp.Status, resp.Body, resp.Header.Get("ETag"))
	}
}
