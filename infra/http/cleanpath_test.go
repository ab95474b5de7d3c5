package http_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestDoubleSlashIsNotRedirectedForPOST: a redirect would turn a POST into
// a GET in most clients; an unclean path is 404 for anything but GET and
// HEAD, which keep the redirect to the clean path.
func TestDoubleSlashIsNotRedirectedForPOST(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	id := register(t, m, "slash@example.com")
	resp, body := rawDo(t, m, http.MethodPost, "/v1/customers//"+id+"/churn", m.Keys["writer"], nil, `{"reason":"price"}`)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(resp.Header.Get("Content-Type"), "problem+json") {
		t.Errorf("POST with //: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	resp, _ = rawDo(t, m, http.MethodGet, "/v1//customers/"+id, m.Keys["writer"], nil, "")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/v1/customers/"+id {
		t.Errorf("GET with //: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
