package http_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// rawDo sends a request without the OpenAPI-validating client and without
// following redirects: the edges tested here (HEAD, 405, redirects) are
// about HTTP itself, not about documented operations.
func rawDo(t *testing.T, m *apptest.Main, method, path, key string, header map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, m.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, raw
}
