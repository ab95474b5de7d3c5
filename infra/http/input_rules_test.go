package http_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/projections"
)

// TestInputRules checks PRODUCT.md "Input rules (every endpoint)" end to
// end: each refusal names its field, and whatever is accepted every read
// model can store (no projector stops).
func TestInputRules(t *testing.T) {
	m := apptest.MustOpen(t)
	id := register(t, m, "rules@example.com")
	base := "/v1/customers/" + id
	complaint := requireStatus(t, m.Post(t, base+"/complaints", map[string]any{"category": "billing", "severity": "low", "description": "d"}), http.StatusCreated)
	cbase := base + "/complaints/" + complaint["complaint_id"].(string)
	// Erasure is tried on a customer of its own: on code that accepted the
	// bad reason it would end every other case.
	erasable := "/v1/customers/" + register(t, m, "erasable@example.com")
	post := func(method, path string, body any) *apptest.Response {
		return m.Do(t, apptest.Request{Method: method, Path: path, Key: m.Keys["admin"], Body: body})
	}
	t.Run("control characters", func(t *testing.T) {
		// Every text field of every command body, with NUL and with the
		// other refused control characters.
		due := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		cases := []struct {
			method, path string
			body         map[string]any
			field        string
		}{
			{"POST", "/v1/customers", map[string]any{"name": "X", "email": "c1@example.com"}, "name"},
			{"POST", "/v1/customers", map[string]any{"name": "X", "phone": "+44 1 2"}, "company"},
			{"POST", "/v1/customers", map[string]any{"name": "X", "phone": "+44 1 2"}, "segment"},
			{"POST", "/v1/customers", map[string]any{"name": "X", "phone": "+44 1 2"}, "region"},
			{"POST", "/v1/customers", map[string]any{"name": "X", "phone": "+44 1 2"}, "industry"},
			{"POST", "/v1/customers", map[string]any{"name": "X", "phone": "+44 1 2"}, "tier"},
			{"POST", "/v1/customers", map[string]any{"name": "X", "phone": "+44 1 2"}, "email"},
			{"POST", "/v1/customers", map[string]any{"name": "X", "email": "c2@example.com"}, "phone"},
			{"POST", "/v1/customers", map[string]any{"name": "X", "email": "c3@example.com"}, "tags"},
			{"PATCH", base, map[string]any{}, "name"},
			{"PATCH", base, map[string]any{}, "company"},
			{"PATCH", base, map[string]any{}, "email"},
			{"PATCH", base, map[string]any{}, "tags"},
			{"PUT", base + "/classification", map[string]any{}, "segment"},
			{"PUT", base + "/classification", map[string]any{}, "region"},
			{"PUT", base + "/classification", map[string]any{}, "industry"},
			{"PUT", base + "/team/account_manager", map[string]any{}, "member"},
			{"POST", base + "/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "s", "by": "b"}, "summary"},
			{"POST", base + "/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "s", "by": "b"}, "by"},
			{"POST", base + "/follow-ups", map[string]any{"due_at": due, "by": "b"}, "by"},
			{"POST", base + "/follow-ups", map[string]any{"due_at": due, "by": "b"}, "note"},
			{"POST", base + "/complaints", map[string]any{"category": "c", "severity": "low", "description": "d"}, "category"},
			{"POST", base + "/complaints", map[string]any{"category": "c", "severity": "low", "description": "d"}, "description"},
			{"POST", cbase + "/assignment", map[string]any{}, "assignee"},
			{"POST", cbase + "/acknowledgement", map[string]any{"by": "b"}, "by"},
			{"POST", cbase + "/acknowledgement", map[string]any{"by": "b"}, "note"},
			{"POST", cbase + "/escalation", map[string]any{"to": "t", "reason": "r"}, "to"},
			{"POST", cbase + "/escalation", map[string]any{"to": "t", "reason": "r"}, "reason"},
			{"POST", cbase + "/resolution", map[string]any{"by": "b", "resolution": "r"}, "by"},
			{"POST", cbase + "/resolution", map[string]any{"by": "b", "resolution": "r"}, "resolution"},
			{"POST", cbase + "/reopening", map[string]any{}, "reason"},
			{"POST", base + "/surveys", map[string]any{"csat": 4}, "comment"},
			{"POST", base + "/churn", map[string]any{"reason": "r"}, "reason"},
			{"POST", base + "/reactivation", map[string]any{}, "reason"},
			{"POST", erasable + "/erasure", map[string]any{}, "reason"},
		}
		for _, bad := range []string{"\x00", "\x07", "\x1b", "\x7f", "\u0085", "\u009b"} {
			for _, c := range cases {
				body := map[string]any{}
				for k, v := range c.body {
					body[k] = v
				}
				switch c.field {
				case "tags":
					body["tags"] = []string{"ok", "t" + bad + "g"}
				case "tier":
					body["tier"] = "A" + bad
				case "email":
					body["email"] = "c" + bad + "x@example.com"
				case "phone":
					body["phone"] = "+44 1" + bad + "2"
				default:
					body[c.field] = "Nul" + bad + "Name"
				}
				t.Run(c.method+" "+c.path[strings.LastIndex(c.path, "/")+1:]+" "+c.field+" "+strings.ToValidUTF8(bad, "?"), func(t *testing.T) {
					requireProblem(t, post(c.method, c.path, body), http.StatusUnprocessableEntity, "invalid_fields", c.field)
				})
			}
		}
		// Tab, line feed and carriage return stay allowed.
		requireStatus(t, post("POST", base+"/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "a\tb\r\nc", "by": "b"}), http.StatusCreated)
	})
	t.Run("times", func(t *testing.T) {
		cases := []struct {
			path  string
			body  map[string]any
			field string
		}{
			{base + "/follow-ups", map[string]any{"by": "b", "due_at": "9999-12-31T23:59:59-14:00"}, "due_at"},
			{base + "/follow-ups", map[string]any{"by": "b", "due_at": "10000-01-01T00:00:00Z"}, "due_at"},
			{base + "/surveys", map[string]any{"csat": 3, "answered_at": "0000-01-01T00:00:00+01:00"}, "answered_at"},
			{base + "/surveys", map[string]any{"csat": 3, "answered_at": "0000-01-01T00:00:00Z"}, "answered_at"},
			{base + "/surveys", map[string]any{"csat": 3, "answered_at": "1899-12-31T23:59:59Z"}, "answered_at"},
			{base + "/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "s", "by": "b", "occurred_at": "0000-01-01T00:00:00+01:00"}, "occurred_at"},
			{base + "/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "s", "by": "b", "occurred_at": "1900-01-01T00:30:00+01:00"}, "occurred_at"},
			{base + "/churn", map[string]any{"reason": "r", "churned_at": "0000-01-01T00:00:00+01:00"}, "churned_at"},
		}
		for _, c := range cases {
			t.Run(c.field+" "+c.body[c.field].(string), func(t *testing.T) {
				requireProblem(t, post("POST", c.path, c.body), http.StatusUnprocessableEntity, "invalid_fields", c.field)
			})
		}
		// The first instant allowed is accepted.
		requireStatus(t, post("POST", base+"/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "s", "by": "b", "occurred_at": "1900-01-01T01:00:00+01:00"}), http.StatusCreated)
		for _, q := range []struct{ role, path, field string }{
			{"analyst", "/v1/analytics/kpis?from=0000-01-01T00:00:00%2B01:00", "from"},
			{"analyst", "/v1/analytics/kpis?to=9999-12-31T23:59:59-14:00", "to"},
			{"auditor", base + "/history?from=0000-01-01T00:00:00%2B01:00", "from"},
			{"auditor", base + "/history?to=9999-12-31T23:59:59-14:00", "to"},
			{"auditor", base + "/state?as_of=0000-01-01T00:00:00%2B01:00", "as_of"},
			{"auditor", base + "/state?as_of=9999-12-31T23:59:59-14:00", "as_of"},
		} {
			t.Run(q.path, func(t *testing.T) {
				requireProblem(t, m.Get(t, q.role, q.path), http.StatusUnprocessableEntity, "invalid_fields", q.field)
			})
		}
	})
	t.Run("strict JSON", func(t *testing.T) {
		contact := base + "/contacts"
		for name, body := range map[string]string{
			"invalid UTF-8":        "{\"channel\":\"phone\",\"direction\":\"inbound\",\"summary\":\"a\xffb\",\"by\":\"b\"}",
			"lone surrogate":       `{"channel":"phone","direction":"inbound","summary":"a\ud800b","by":"b"}`,
			"lone low surrogate":   `{"channel":"phone","direction":"inbound","summary":"a\udc00","by":"b"}`,
			"duplicate key":        `{"channel":"phone","direction":"inbound","summary":"a","summary":"b","by":"b"}`,
			"case-folded key":      `{"channel":"phone","direction":"inbound","SUMMARY":"a","by":"b"}`,
			"invalid UTF-8 in key": "{\"channel\":\"phone\",\"direction\":\"inbound\",\"summary\":\"a\",\"by\":\"b\",\"\xff\":1}",
		} {
			t.Run(name, func(t *testing.T) {
				resp := post("POST", contact, body)
				requireStatus(t, resp, http.StatusBadRequest)
			})
		}
		requireStatus(t, post("POST", "/v1/customers", `{"name":"Case","NAME":"x","phone":"+44 1 2"}`), http.StatusBadRequest)
		requireStatus(t, post("POST", "/v1/customers", `{"name":"Dup","phone":"+44 1 2","tags":["a"],"tags":["b"]}`), http.StatusBadRequest)
		// A proper surrogate pair is one character and welcome.
		requireStatus(t, post("POST", contact, `{"channel":"phone","direction":"inbound","summary":"\ud83d\ude00","by":"b"}`), http.StatusCreated)
	})
	t.Run("emails", func(t *testing.T) {
		register(t, m, "uniq@example.com")
		for _, email := range []string{"uniq@example.com\u200b", "uniq@exam\u00adple.com", "\u202euniq@example.com", "uniq\u2060@example.com", "uniq@example.com\ufeff"} {
			t.Run(strings.ToValidUTF8(email, "?"), func(t *testing.T) {
				requireProblem(t, post("POST", "/v1/customers", map[string]any{"name": "Twin", "email": email}), http.StatusUnprocessableEntity, "invalid_fields", "email")
				requireProblem(t, post("PATCH", base, map[string]any{"email": email}), http.StatusUnprocessableEntity, "invalid_fields", "email")
			})
		}
		for _, email := range []string{"\uff55\uff4e\uff49\uff51@example.com", "UNIQ@EXAMPLE.COM", "uniq@\uff45xample.com"} {
			t.Run(email, func(t *testing.T) {
				requireProblem(t, post("POST", "/v1/customers", map[string]any{"name": "Twin", "email": email}), http.StatusConflict, "email_taken", "")
				requireProblem(t, post("PATCH", base, map[string]any{"email": email}), http.StatusConflict, "email_taken", "")
			})
		}
	})
	t.Run("an email rewritten in another form stays taken", func(t *testing.T) {
		// The customer keeps the same key: releasing the old form would
		// free the address for a twin.
		own := "/v1/customers/" + register(t, m, "keep@example.com")
		requireStatus(t, post("PATCH", own, map[string]any{"email": "\uff4b\uff45\uff45\uff50@example.com"}), http.StatusOK)
		requireProblem(t, post("POST", "/v1/customers", map[string]any{"name": "Twin", "email": "keep@example.com"}), http.StatusConflict, "email_taken", "")
		requireStatus(t, post("PATCH", own, map[string]any{"email": "moved@example.com"}), http.StatusOK)
		register(t, m, "keep@example.com") // released once the key changed
	})
	// Whatever was accepted, every projector still runs.
	requireProjectorsRunning(t, m)
}

// requireProjectorsRunning waits for every projector to reach the store's
// head and fails if any has stopped or parked a stream: either way an
// event the API accepted could not be stored by a read model.
func requireProjectorsRunning(tb testing.TB, m *apptest.Main) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		statuses, err := m.Engine.Status(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		caughtUp := true
		for _, s := range statuses {
			if s.State == projections.StateStopped {
				tb.Fatalf("projector %s stopped: %+v", s.Name, s)
			}
			if len(s.Parked) > 0 {
				tb.Fatalf("projector %s parked streams: %+v", s.Name, s.Parked)
			}
			caughtUp = caughtUp && s.Checkpoint >= s.Head
		}
		if caughtUp {
			for _, s := range statuses {
				if s.State != projections.StateRunning {
					tb.Fatalf("projector %s is %s after catching up: %+v", s.Name, s.State, s)
				}
			}
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("projectors did not catch up: %+v", statuses)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
