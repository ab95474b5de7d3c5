package http_test

import (
	"net/http"
	"testing"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestBearerSchemeIsCaseInsensitive: RFC 9110 §11.1, the auth scheme is
// case-insensitive.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t, func(c *app.Config) { c.RunProjections = false })
	for _, scheme := range []string{"bearer", "BEARER", "Bearer"} {
		resp := m.Do(t, apptest.Request{Method: http.MethodGet, Path: "/openapi.json", Header: map[string]string{"Authorization": scheme + " " + m.Keys["writer"]}})
		if resp.Status != http.StatusOK {
			t.Errorf("%s scheme: %d %s", scheme, resp.Status, resp.Body)
		}
	}
}
