package console_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestConsoleRolesSessionsAndCSRF runs the whole service and checks, per
// role, the menu and which pages open; the security headers; the session
// cookie's attributes; and that no state-changing form works without its
// session's CSRF token or from another origin.
func TestConsoleRolesSessionsAndCSRF(t *testing.T) {
	m := apptest.MustOpen(t)
	created := m.Post(t, "/v1/customers", map[string]any{"name": "Ada Lovelace", "email": "ada@example.com", "segment": "enterprise", "tier": "A"})
	if created.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", created.Status, created.Body)
	}
	var reg struct {
		ID       string      `json:"customer_id"`
		Position json.Number `json:"position"`
	}
	created.JSON(t, &reg)
	id := reg.ID
	waitForPosition(t, m, reg.Position)

	// Security headers, on every answer: no script may run at all.
	anon := newBrowser(t, m.URL)
	signInPage := anon.get("/console/sign-in")
	csp := signInPage.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'none'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP allows unsafe sources: %q", csp)
	}
	if signInPage.Header.Get("X-Frame-Options") != "DENY" || signInPage.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("framing/sniffing headers: %v", signInPage.Header)
	}
	if strings.Contains(strings.ToLower(signInPage.Body), "<script") || strings.Contains(signInPage.Body, " style=") {
		t.Error("the sign-in page has inline script or style")
	}
	// The stylesheet is served to anyone; the directory is not listed.
	if p := anon.get("/console/static/console.css"); p.Status != http.StatusOK || !strings.HasPrefix(p.Header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %s", p.Status, p.Header.Get("Content-Type"))
	}
	if p := anon.get("/console/static/"); p.Status != http.StatusNotFound {
		t.Errorf("static directory: %d", p.Status)
	}
	// Not signed in: every page sends to the sign-in form; a POST is refused.
	if p := anon.get("/console/overview"); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), "/console/sign-in?") {
		t.Errorf("anonymous overview: %d %s", p.Status, p.Header.Get("Location"))
	}
	if p := anon.post("/console/operations/customers/rebuild", url.Values{}); p.Status != http.StatusForbidden {
		t.Errorf("anonymous rebuild: %d", p.Status)
	}
	// Login CSRF: a sign-in posted without the form's cookie is refused.
	other := newBrowser(t, m.URL)
	if p := other.post("/console/sign-in", url.Values{"csrf": {csrf(t, signInPage)}, "api_key": {m.Keys["admin"]}}); p.Status != http.StatusForbidden {
		t.Errorf("sign-in without its form cookie: %d", p.Status)
	}
	// A bad key is refused without a session.
	if p := anon.signIn("rk_not-a-key"); p.Status != http.StatusUnauthorized || len(sessionCookies(p)) != 0 {
		t.Errorf("bad key: %d %v", p.Status, p.Header.Values("Set-Cookie"))
	}

	pages := map[string]string{
		"overview": "/console/overview", "work": "/console/work", "customers": "/console/customers",
		"customer": "/console/customers/" + id, "audit": "/console/audit/" + id, "operations": "/console/operations",
	}
	allowed := map[string][]string{
		"writer":  {"work", "customers", "customer"},
		"analyst": {"overview", "work", "customers", "customer"},
		"auditor": {"customers", "customer", "audit"},
		"admin":   {"overview", "work", "customers", "customer", "audit", "operations"},
	}
	wantMenu := map[string][]string{
		"writer":  {"work", "customers"},
		"analyst": {"overview", "work", "customers"},
		"auditor": {"customers", "audit"},
		"admin":   {"overview", "work", "customers", "audit", "operations"},
	}
	for _, role := range []string{"writer", "analyst", "auditor", "admin"} {
		b := newBrowser(t, m.URL)
		res := b.signIn(m.Keys[role])
		if res.Status != http.StatusSeeOther {
			t.Fatalf("%s: sign in: %d %.300s", role, res.Status, res.Body)
		}
		if strings.Contains(res.Header.Get("Location"), m.Keys[role]) {
			t.Errorf("%s: the key is in a URL", role)
		}
		cookies := sessionCookies(res)
		if len(cookies) != 1 {
			t.Fatalf("%s: session cookies %v", role, res.Header.Values("Set-Cookie"))
		}
		c := cookies[0]
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/console/" || c.Secure {
			t.Errorf("%s: cookie %+v (want HttpOnly, SameSite=Strict, Path=/console/, not Secure over plain http)", role, c)
		}
		if strings.Contains(c.Value, m.Keys[role]) {
			t.Errorf("%s: the cookie holds the key", role)
		}
		home := b.get("/console/")
		if home.Status != http.StatusSeeOther || home.Header.Get("Location") != "/console/"+wantMenu[role][0] {
			t.Errorf("%s: home → %d %s", role, home.Status, home.Header.Get("Location"))
		}
		for name, path := range pages {
			p := b.get(path)
			want := http.StatusForbidden
			if slices.Contains(allowed[role], name) {
				want = http.StatusOK
			}
			if p.Status != want {
				t.Errorf("%s: %s → %d, want %d: %.400s", role, path, p.Status, want, p.Body)
				continue
			}
			if got := menu(p); !slices.Equal(got, wantMenu[role]) {
				t.Errorf("%s: %s menu %v, want %v", role, path, got, wantMenu[role])
			}
			if p.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: %s is cacheable", role, path)
			}
			if strings.Contains(strings.ToLower(p.Body), "<script") || strings.Contains(p.Body, " style=") {
				t.Errorf("%s: %s has inline script or style", role, path)
			}
		}
		// The customer page shows the audit timeline and link only to auditors.
		if p := b.get(pages["customer"]); p.Status == http.StatusOK {
			if got, want := strings.Contains(p.Body, `id="history-h"`), slices.Contains(allowed[role], "audit"); got != want {
				t.Errorf("%s: timeline shown %v, want %v", role, got, want)
			}
		}
		// Value and loyalty are every role's (as GET /v1/customers/{id} and
		// …/loyalty are); the goals are on the analysts' overview, the
		// webhooks on the admins' operations page; the months CSV is the
		// overview's.
		if p := b.get(pages["customer"]); !strings.Contains(p.Body, `id="value-h"`) || !strings.Contains(p.Body, `id="loyalty-h"`) {
			t.Errorf("%s: the customer page lacks value or loyalty", role)
		}
		if p := b.get(pages["overview"]); p.Status == http.StatusOK && !strings.Contains(p.Body, `id="goals-h"`) {
			t.Errorf("%s: the overview lacks the goals", role)
		}
		if p := b.get(pages["operations"]); p.Status == http.StatusOK && !strings.Contains(p.Body, `id="webhooks-h"`) {
			t.Errorf("%s: operations lacks the webhooks", role)
		}
		months := b.get("/console/overview-months.csv?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z&group_by=segment&key=enterprise")
		if want := map[bool]int{true: http.StatusOK, false: http.StatusForbidden}[slices.Contains(allowed[role], "overview")]; months.Status != want {
			t.Errorf("%s: months CSV → %d, want %d", role, months.Status, want)
		} else if want == http.StatusOK && !strings.HasPrefix(months.Body, "month,segment,csat_pct,") || want == http.StatusOK && strings.Count(months.Body, "\r\n") != 3 {
			t.Errorf("%s: months CSV %q", role, months.Body)
		}
		// A state-changing form of a page the role may not use is refused
		// even with the right token.
		token := csrf(t, b.get(pages["customers"]))
		p := b.post("/console/operations/customers/rebuild", url.Values{"csrf": {token}})
		if want := map[bool]int{true: http.StatusSeeOther, false: http.StatusForbidden}[role == "admin"]; p.Status != want {
			t.Errorf("%s: rebuild → %d, want %d", role, p.Status, want)
		}
	}

	// CSRF: the admin's forms need the admin's own session token.
	admin := newBrowser(t, m.URL)
	admin.mustSignIn(m.Keys["admin"])
	ops := admin.get("/console/operations")
	token := csrf(t, ops)
	analyst := newBrowser(t, m.URL)
	analyst.mustSignIn(m.Keys["analyst"])
	foreign := csrf(t, analyst.get("/console/overview"))
	for name, form := range map[string]url.Values{
		"no token": {}, "empty token": {"csrf": {""}}, "wrong token": {"csrf": {strings.Repeat("A", len(token))}},
		"another session's token": {"csrf": {foreign}},
	} {
		if p := admin.post("/console/operations/customers/rebuild", form); p.Status != http.StatusForbidden {
			t.Errorf("rebuild with %s: %d", name, p.Status)
		}
	}
	if p := admin.post("/console/operations/customers/rebuild", url.Values{"csrf": {token}}, "Origin", "http://evil.example"); p.Status != http.StatusForbidden {
		t.Errorf("rebuild from another origin: %d", p.Status)
	}
	if p := admin.post("/console/operations/customers/rebuild", url.Values{"csrf": {token}}, "Sec-Fetch-Site", "cross-site"); p.Status != http.StatusForbidden {
		t.Errorf("rebuild cross-site: %d", p.Status)
	}
	if p := admin.post("/console/operations/customers/rebuild", url.Values{"csrf": {token}}, "Origin", m.URL); p.Status != http.StatusSeeOther ||
		!strings.HasPrefix(p.Header.Get("Location"), "/console/operations?done=rebuild") {
		t.Errorf("rebuild with the token: %d %s %.300s", p.Status, p.Header.Get("Location"), p.Body)
	}
	if p := admin.post("/console/operations/no-such/rebuild", url.Values{"csrf": {token}}); p.Status != http.StatusNotFound {
		t.Errorf("rebuild of an unknown projection: %d", p.Status)
	}
	if p := admin.post("/console/operations/customers/parked/customer-"+id+"/retry", url.Values{"csrf": {token}}); p.Status != http.StatusNotFound || !strings.Contains(p.Body, "no parked stream") {
		t.Errorf("retry of a stream that is not parked: %d %.300s", p.Status, p.Body)
	}
	// Sign-out is a form too: without the token the session lives on.
	if p := admin.post("/console/sign-out", url.Values{}); p.Status != http.StatusForbidden {
		t.Errorf("sign-out without token: %d", p.Status)
	}
	if p := admin.get("/console/operations"); p.Status != http.StatusOK {
		t.Errorf("after a refused sign-out: %d", p.Status)
	}
	if p := admin.post("/console/sign-out", url.Values{"csrf": {token}}); p.Status != http.StatusSeeOther {
		t.Errorf("sign-out: %d", p.Status)
	}
	if p := admin.get("/console/operations"); p.Status != http.StatusSeeOther {
		t.Errorf("after sign-out: %d", p.Status)
	}
	// Bad parameters are the API's 422, naming the parameter.
	if p := analyst.get("/console/overview?from=yesterday"); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, `data-field="from"`) {
		t.Errorf("bad from: %d %.300s", p.Status, p.Body)
	}
	if p := analyst.get("/console/work?queue=complaints&sla=late"); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, `data-field="sla"`) {
		t.Errorf("bad sla: %d", p.Status)
	}
	for param, path := range map[string]string{
		"group_by": "/console/overview-months.csv?group_by=month&key=x",
		"to":       "/console/overview-months.csv?to=soon",
	} {
		if p := analyst.get(path); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, `data-field="`+param+`"`) {
			t.Errorf("months CSV with a bad %s: %d %.300s", param, p.Status, p.Body)
		}
	}
	if p := analyst.get("/console/customers/not-a-uuid"); p.Status != http.StatusNotFound {
		t.Errorf("bad customer id: %d", p.Status)
	}
	// The sign-in's next never leaves the console.
	b := newBrowser(t, m.URL)
	form := b.get("/console/sign-in?next=//evil.example/")
	if p := b.post("/console/sign-in", url.Values{"csrf": {csrf(t, form)}, "api_key": {m.Keys["writer"]}, "next": {"//evil.example/"}}); p.Header.Get("Location") != "/console/" {
		t.Errorf("open redirect: %s", p.Header.Get("Location"))
	}
}

func sessionCookies(p page) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range (&http.Response{Header: p.Header}).Cookies() {
		if c.Name == "rapport_console" && c.MaxAge >= 0 && c.Value != "" {
			out = append(out, c)
		}
	}
	return out
}
