package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// browser is a cookie-keeping HTTP client that does not follow redirects,
// so that tests see where the console sends them.
type browser struct {
	tb   testing.TB
	base string
	c    *http.Client
}

func newBrowser(tb testing.TB, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{tb: tb, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	Status int
	Header http.Header
	Body   string
}

func (b *browser) do(req *http.Request) page {
	b.tb.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.tb.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return page{Status: res.StatusCode, Header: res.Header, Body: string(body)}
}

func (b *browser) get(path string) page {
	b.tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values, header ...string) page {
	b.tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of a page's first form.
func csrf(tb testing.TB, p page) string {
	tb.Helper()
	m := csrfField.FindStringSubmatch(p.Body)
	if m == nil {
		tb.Fatalf("no csrf field in %d page: %.500s", p.Status, p.Body)
	}
	return m[1]
}

// signIn signs in with key and returns the answer to the sign-in POST.
func (b *browser) signIn(key string) page {
	b.tb.Helper()
	form := b.get("/console/sign-in")
	if form.Status != http.StatusOK {
		b.tb.Fatalf("sign-in form: %d", form.Status)
	}
	return b.post("/console/sign-in", url.Values{"csrf": {csrf(b.tb, form)}, "api_key": {key}, "next": {"/console/"}})
}

func (b *browser) mustSignIn(key string) {
	b.tb.Helper()
	if p := b.signIn(key); p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/console/" {
		b.tb.Fatalf("sign in: %d %s %.300s", p.Status, p.Header.Get("Location"), p.Body)
	}
}

var menuLink = regexp.MustCompile(`<li><a href="/console/([a-z-]+)"`)

// menu lists the page keys of a page's menu.
func menu(p page) []string {
	var out []string
	nav := p.Body
	if i := strings.Index(nav, `aria-label="Console pages"`); i >= 0 {
		nav = nav[i:]
		if j := strings.Index(nav, "</nav>"); j >= 0 {
			nav = nav[:j]
		}
	} else {
		return nil
	}
	for _, m := range menuLink.FindAllStringSubmatch(nav, -1) {
		out = append(out, m[1])
	}
	return out
}

// waitForPosition waits, up to 60 s, until every projector has applied
// the log up to a command's position: a loaded machine can take longer
// than min_position's bound.
func waitForPosition(tb testing.TB, m *apptest.Main, position json.Number) {
	tb.Helper()
	p, err := strconv.ParseUint(position.String(), 10, 64)
	if err != nil {
		tb.Fatalf("position %q: %v", position, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := m.Engine.WaitForPosition(ctx, eventstore.Position(p)); err != nil {
		tb.Fatal(err)
	}
}
