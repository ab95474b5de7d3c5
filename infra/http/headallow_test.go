package http_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestHeadAndAllow: HEAD answers like GET without a body on every GET
// route; 405 says which methods the route takes (RFC 9110 §15.5.6).
func TestHeadAndAllow(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	id := register(t, m, "head@example.com")
	// The customer's GET must answer 200 before GET and HEAD are compared:
	// the directory catches up with the registration asynchronously.
	for deadline := time.Now().Add(10 * time.Second); m.Get(t, "admin", "/v1/customers/"+id).Status != http.StatusOK; {
		if time.Now().After(deadline) {
			t.Fatal("the registration never reached the directory")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json", "/v1/customers/" + id} {
		get, getBody := rawDo(t, m, http.MethodGet, path, m.Keys["admin"], nil, "")
		head, headBody := rawDo(t, m, http.MethodHead, path, m.Keys["admin"], nil, "")
		if head.StatusCode != get.StatusCode || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") || len(headBody) != 0 {
			t.Errorf("HEAD %s: %d %q body %q; GET %d %q (%d bytes)", path, head.StatusCode, head.Header.Get("Content-Type"), headBody, get.StatusCode, get.Header.Get("Content-Type"), len(getBody))
		}
	}
	for path, want := range map[string]string{
		"/healthz":                       "GET, HEAD",
		"/v1/customers/" + id:            "GET, HEAD, PATCH",
		"/v1/customers/" + id + "/churn": "POST",
	} {
		resp, body := rawDo(t, m, http.MethodDelete, path, m.Keys["admin"], nil, "")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != want || !strings.Contains(resp.Header.Get("Content-Type"), "problem+json") {
			t.Errorf("DELETE %s: %d Allow %q (want %q) %s", path, resp.StatusCode, resp.Header.Get("Allow"), want, body)
		}
	}
}
