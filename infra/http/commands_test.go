package http_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// register creates a customer over HTTP and returns its id.
func register(t *testing.T, m *apptest.Main, email string) string {
	t.Helper()
	resp := m.Post(t, "/v1/customers", map[string]any{"name": "Ada Lovelace", "email": email, "segment": "enterprise", "tier": "A"})
	if resp.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.Status, resp.Body)
	}
	return resp.Map(t)["customer_id"].(string)
}

func requireStatus(t *testing.T, resp *apptest.Response, status int) map[string]any {
	t.Helper()
	if resp.Status != status {
		t.Fatalf("got %d %s, want %d", resp.Status, resp.Body, status)
	}
	if status >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("error answer with Content-Type %q, want application/problem+json", resp.Header.Get("Content-Type"))
	}
	var body map[string]any
	if len(resp.Body) > 0 {
		body = resp.Map(t)
	}
	return body
}

// requireProblem checks a problem answer and the field it names, if any.
func requireProblem(t *testing.T, resp *apptest.Response, status int, reason, field string) {
	t.Helper()
	p := requireStatus(t, resp, status)
	if p["reason"] != reason {
		t.Fatalf("reason %v, want %s: %s", p["reason"], reason, resp.Body)
	}
	if field == "" {
		return
	}
	errs, _ := p["errors"].([]any)
	for _, e := range errs {
		if e.(map[string]any)["field"] == field {
			return
		}
	}
	t.Fatalf("problem does not name field %q: %s", field, resp.Body)
}

// TestEveryCommandOverHTTP drives each command of PRODUCT.md once, as an
// app would, and checks the answer's shape: status, ETag = revision,
// position growing, created ids.
func TestEveryCommandOverHTTP(t *testing.T) {
	t.Parallel()
	apptest.ForEachStore(t, testEveryCommandOverHTTP)
}

func testEveryCommandOverHTTP(t *testing.T, m *apptest.Main) {
	resp := m.Post(t, "/v1/customers", map[string]any{
		"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000", "company": "Analytical Engines",
		"segment": "enterprise", "tier": "A", "region": "emea", "industry": "computing", "tags": []string{"vip"},
	})
	body := requireStatus(t, resp, http.StatusCreated)
	id := body["customer_id"].(string)
	if resp.Header.Get("Location") != "/v1/customers/"+id || resp.Header.Get("ETag") != `"0"` {
		t.Fatalf("register headers: Location %q ETag %q", resp.Header.Get("Location"), resp.Header.Get("ETag"))
	}
	base := "/v1/customers/" + id
	lastPosition := body["position"].(float64)
	revision := 0
	step := func(method, path string, payload any, status int) map[string]any {
		t.Helper()
		resp := m.Do(t, apptest.Request{Method: method, Path: path, Key: m.Keys["writer"], Body: payload})
		body := requireStatus(t, resp, status)
		revision++
		if body["revision"].(float64) != float64(revision) || resp.Header.Get("ETag") != fmt.Sprintf(`"%d"`, revision) {
			t.Fatalf("%s %s: revision %v ETag %s, want %d", method, path, body["revision"], resp.Header.Get("ETag"), revision)
		}
		if body["position"].(float64) <= lastPosition {
			t.Fatalf("%s %s: position %v did not grow from %v", method, path, body["position"], lastPosition)
		}
		lastPosition = body["position"].(float64)
		return body
	}
	step(http.MethodPatch, base, map[string]any{"company": "Babbage & Co"}, http.StatusOK)
	step(http.MethodPut, base+"/classification", map[string]any{"segment": "smb", "tier": "B"}, http.StatusOK)
	step(http.MethodPut, base+"/team/account_manager", map[string]any{"member": "carol"}, http.StatusOK)
	c := step(http.MethodPost, base+"/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "asked about invoices", "by": "bob", "occurred_at": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, http.StatusCreated)
	if c["contact_id"] == nil {
		t.Fatalf("contact answer without contact_id: %v", c)
	}
	f := step(http.MethodPost, base+"/follow-ups", map[string]any{"due_at": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339), "by": "bob", "note": "call back"}, http.StatusCreated)
	if f["follow_up_id"] == nil {
		t.Fatalf("follow-up answer without follow_up_id: %v", f)
	}
	complaint := step(http.MethodPost, base+"/complaints", map[string]any{"category": "billing", "severity": "high", "description": "charged twice", "channel": "email"}, http.StatusCreated)
	cid, _ := complaint["complaint_id"].(string)
	if cid == "" {
		t.Fatalf("complaint answer without complaint_id: %v", complaint)
	}
	cbase := base + "/complaints/" + cid
	step(http.MethodPost, cbase+"/assignment", map[string]any{"assignee": "dave"}, http.StatusOK)
	step(http.MethodPost, cbase+"/acknowledgement", map[string]any{"by": "dave", "note": "looking into it"}, http.StatusOK)
	step(http.MethodPost, cbase+"/escalation", map[string]any{"to": "billing-team", "reason": "needs a refund"}, http.StatusOK)
	step(http.MethodPost, cbase+"/resolution", map[string]any{"by": "erin", "resolution": "refunded"}, http.StatusOK)
	step(http.MethodPost, cbase+"/reopening", map[string]any{"reason": "refund never arrived"}, http.StatusOK)
	s := step(http.MethodPost, base+"/surveys", map[string]any{"csat": 2, "nps": 3, "comment": "slow", "channel": "email", "complaint_id": cid}, http.StatusCreated)
	if s["survey_id"] == nil {
		t.Fatalf("survey answer without survey_id: %v", s)
	}
	step(http.MethodPost, base+"/churn", map[string]any{"reason": "moved to a competitor"}, http.StatusOK)
	step(http.MethodPost, base+"/reactivation", map[string]any{"reason": "won back"}, http.StatusOK)
	resp = m.Do(t, apptest.Request{Method: http.MethodPost, Path: base + "/erasure", Key: m.Keys["admin"], Body: map[string]any{"reason": "GDPR request 42"}})
	requireStatus(t, resp, http.StatusOK)
	requireProblem(t, m.Post(t, base+"/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "hello", "by": "bob"}), http.StatusGone, "customer_erased", "")
}

func TestCommandErrors(t *testing.T) {
	t.Parallel()
	apptest.ForEachStore(t, testCommandErrors)
}

func testCommandErrors(t *testing.T, m *apptest.Main) {
	id := register(t, m, "errors@example.com")
	base := "/v1/customers/" + id
	contact := map[string]any{"channel": "phone", "direction": "inbound", "summary": "hi", "by": "bob"}
	cases := []struct {
		name   string
		req    apptest.Request
		status int
		reason string
		field  string
	}{
		{"malformed JSON", apptest.Request{Body: `{"channel": "phone"`}, 400, "malformed_json", ""},
		{"not an object", apptest.Request{Body: `[1,2]`}, 400, "malformed_json", ""},
		{"unknown field", apptest.Request{Body: `{"channel":"phone","direction":"inbound","summary":"hi","by":"bob","mood":"happy"}`}, 400, "unknown_field", ""},
		{"trailing data", apptest.Request{Body: `{"channel":"phone","direction":"inbound","summary":"hi","by":"bob"} {}`}, 400, "trailing_data", ""},
		{"empty body", apptest.Request{Body: ``}, 400, "malformed_json", ""},
		{"not JSON content type", apptest.Request{Body: `channel=phone`, Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415, "unsupported_media_type", ""},
		{"body too large", apptest.Request{Body: `{"channel":"phone","summary":"` + strings.Repeat("x", 1<<20) + `"}`}, 413, "body_too_large", ""},
		{"wrong type", apptest.Request{Body: `{"channel":"phone","direction":"inbound","summary":42,"by":"bob"}`}, 422, "invalid_fields", "summary"},
		{"unknown enum value", apptest.Request{Body: map[string]any{"channel": "pigeon", "direction": "inbound", "summary": "hi", "by": "bob"}}, 422, "invalid_fields", "channel"},
		{"missing required field", apptest.Request{Body: map[string]any{"channel": "phone", "direction": "inbound", "summary": "hi"}}, 422, "invalid_fields", "by"},
		{"bad time", apptest.Request{Body: map[string]any{"channel": "phone", "direction": "inbound", "summary": "hi", "by": "bob", "occurred_at": "yesterday"}}, 422, "invalid_fields", "occurred_at"},
		{"future time", apptest.Request{Body: map[string]any{"channel": "phone", "direction": "inbound", "summary": "hi", "by": "bob", "occurred_at": time.Now().Add(time.Hour).Format(time.RFC3339)}}, 422, "invalid_fields", "occurred_at"},
		{"unknown customer", apptest.Request{Path: "/v1/customers/7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f/contacts", Body: contact}, 404, "customer_not_found", ""},
		{"not an id", apptest.Request{Path: "/v1/customers/nope/contacts", Body: contact}, 404, "customer_not_found", ""},
		{"stale If-Match", apptest.Request{Body: contact, Header: map[string]string{"If-Match": `"7"`}}, 412, "revision_mismatch", ""},
		{"bad If-Match", apptest.Request{Body: contact, Header: map[string]string{"If-Match": `yesterday`}}, 422, "invalid_fields", "If-Match"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := c.req
			req.Method, req.Key = http.MethodPost, m.Keys["writer"]
			if req.Path == "" {
				req.Path = base + "/contacts"
			}
			requireProblem(t, m.Do(t, req), c.status, c.reason, c.field)
		})
	}
	// Rule broken: 409, and the email conflict names the holder.
	requireProblem(t, m.Post(t, base+"/reactivation", map[string]any{"reason": "?"}), 409, "not_churned", "")
	resp := m.Post(t, "/v1/customers", map[string]any{"name": "Copy", "email": "ERRORS@example.com"})
	requireProblem(t, resp, 409, "email_taken", "")
	if resp.Map(t)["existing_customer_id"] != id {
		t.Fatalf("email_taken does not name %s: %s", id, resp.Body)
	}
	// Unknown complaint.
	requireProblem(t, m.Post(t, base+"/complaints/7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f/resolution", map[string]any{"by": "x", "resolution": "y"}), 404, "complaint_not_found", "")
	// Unknown route and wrong method.
	requireProblem(t, m.Get(t, "writer", "/v1/nothing"), 404, "route_not_found", "")
}

func TestIdempotentRetryOverHTTP(t *testing.T) {
	t.Parallel()
	apptest.ForEachStore(t, testIdempotentRetryOverHTTP)
}

func testIdempotentRetryOverHTTP(t *testing.T, m *apptest.Main) {
	id := register(t, m, "retry@example.com")
	req := apptest.Request{Method: http.MethodPost, Path: "/v1/customers/" + id + "/complaints", Key: m.Keys["writer"],
		Body:   map[string]any{"category": "delivery", "severity": "low", "description": "late"},
		Header: map[string]string{"Idempotency-Key": "ticket-1234"}}
	first := m.Do(t, req)
	requireStatus(t, first, http.StatusCreated)
	again := m.Do(t, req)
	requireStatus(t, again, http.StatusCreated)
	if string(again.Body) != string(first.Body) || again.Header.Get("ETag") != first.Header.Get("ETag") || again.Header.Get("Location") != first.Header.Get("Location") {
		t.Fatalf("retry answered %s %s, first %s %s", again.Body, again.Header.Get("ETag"), first.Body, first.Header.Get("ETag"))
	}
	req.Body = map[string]any{"category": "delivery", "severity": "high", "description": "late"}
	requireProblem(t, m.Do(t, req), 422, "idempotency_key_reused", "Idempotency-Key")
	// A registration retried with its key is the same customer.
	reg := apptest.Request{Method: http.MethodPost, Path: "/v1/customers", Key: m.Keys["writer"], Body: map[string]any{"name": "Bo", "phone": "+1 555 0100"}, Header: map[string]string{"Idempotency-Key": "signup-77"}}
	a, b := m.Do(t, reg), m.Do(t, reg)
	if a.Status != http.StatusCreated || string(a.Body) != string(b.Body) {
		t.Fatalf("registration retry: %d %s then %d %s", a.Status, a.Body, b.Status, b.Body)
	}
}

// TestConcurrentCommandsOverHTTP sends conditional and unconditional
// commands to one customer at once: every command is accepted exactly once
// or refused with 409/412, and the final revision counts the accepted.
func TestConcurrentCommandsOverHTTP(t *testing.T) {
	t.Parallel()
	apptest.ForEachStore(t, testConcurrentCommandsOverHTTP)
}

func testConcurrentCommandsOverHTTP(t *testing.T, m *apptest.Main) {
	id := register(t, m, "busy@example.com")
	const clients, each = 8, 10
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
		refused  int
	)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				req := apptest.Request{Method: http.MethodPost, Path: "/v1/customers/" + id + "/contacts", Key: m.Keys["writer"],
					Body: map[string]any{"channel": "chat", "direction": "inbound", "summary": fmt.Sprintf("c%d-%d", c, i), "by": "bot"}}
				if c%2 == 0 {
					// Conditional: the revision this client last saw.
					mu.Lock()
					req.Header = map[string]string{"If-Match": fmt.Sprintf(`"%d"`, accepted)}
					mu.Unlock()
				}
				resp := m.Do(t, req)
				mu.Lock()
				switch resp.Status {
				case http.StatusCreated:
					accepted++
				case http.StatusPreconditionFailed, http.StatusConflict:
					refused++
				default:
					t.Errorf("unexpected %d %s", resp.Status, resp.Body)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	resp := m.Do(t, apptest.Request{Method: http.MethodPatch, Path: "/v1/customers/" + id, Key: m.Keys["writer"], Body: map[string]any{"company": "Final"}})
	body := requireStatus(t, resp, http.StatusOK)
	if got, want := body["revision"].(float64), float64(accepted+1); got != want {
		t.Fatalf("final revision %v, want %v (%d accepted, %d refused)", got, want, accepted, refused)
	}
}

func TestEmailUniquenessRaceOverHTTP(t *testing.T) {
	t.Parallel()
	apptest.ForEachStore(t, testEmailUniquenessRaceOverHTTP)
}

func testEmailUniquenessRaceOverHTTP(t *testing.T, m *apptest.Main) {
	const racers = 6
	var wg sync.WaitGroup
	statuses := make(chan *apptest.Response, racers)
	start := make(chan struct{})
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			email := []string{"Same@Example.com", "same@example.COM", " same@example.com"}[i%3]
			<-start
			statuses <- m.Post(t, "/v1/customers", map[string]any{"name": fmt.Sprint("racer ", i), "email": email})
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)
	var winner string
	var losers []*apptest.Response
	for resp := range statuses {
		switch resp.Status {
		case http.StatusCreated:
			if winner != "" {
				t.Fatal("two registrations with the same email succeeded")
			}
			winner = resp.Map(t)["customer_id"].(string)
		case http.StatusConflict:
			losers = append(losers, resp)
		default:
			t.Fatalf("unexpected %d %s", resp.Status, resp.Body)
		}
	}
	for _, l := range losers {
		if l.Map(t)["existing_customer_id"] != winner {
			t.Fatalf("loser names %v, winner is %s", l.Map(t)["existing_customer_id"], winner)
		}
	}
}
