package console_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/console"
	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// keyAuth adapts the real key store as infra/app does.
type keyAuth struct{ keys *postgres.APIKeys }

func (a keyAuth) Authenticate(ctx context.Context, secret string) (rhttp.Principal, error) {
	k, err := a.keys.Authenticate(ctx, secret)
	if errors.Is(err, postgres.ErrInvalidAPIKey) {
		return rhttp.Principal{}, rhttp.ErrUnauthenticated
	}
	if err != nil {
		return rhttp.Principal{}, err
	}
	p := rhttp.Principal{Name: k.Name}
	for _, r := range k.Roles {
		p.Roles = append(p.Roles, rhttp.Role(r))
	}
	return p, nil
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestConsoleSessionsEndAndKeepNoKey checks that a session ends on
// sign-out, after its idle time, after its lifetime and when its key is
// revoked, and that the database never holds the API key or the session
// token in any form a reader could use.
func TestConsoleSessionsEndAndKeepNoKey(t *testing.T) {
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	if err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	keys := postgres.NewAPIKeys(pool)
	_, secret, err := keys.Create(ctx, "alice", []string{"analyst"})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	open := func(secure bool) *httptest.Server {
		c, err := console.New(console.Config{
			Sessions: console.NewSessionStore(pool), Keys: keyAuth{keys}, Now: clk.Now,
			SessionIdle: 30 * time.Minute, SessionLifetime: 8 * time.Hour, SecureCookies: secure,
			// A section added as goals, value or webhooks will add theirs.
			Sections: []console.Section{{Path: "hello", Title: "Hello", Roles: []rhttp.Role{rhttp.RoleAnalyst},
				Render: func(ctx context.Context, r *http.Request, p rhttp.Principal) (template.HTML, error) {
					return template.HTML("<p id=hello>Hello " + template.HTMLEscapeString(p.Name) + "</p>"), nil
				}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(c)
		t.Cleanup(srv.Close)
		return srv
	}
	srv := open(false)
	rows := func() []string {
		t.Helper()
		r, err := pool.Query(ctx, `SELECT row_to_json(s)::text FROM rapport.console_sessions s`)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var out []string
		for r.Next() {
			var s string
			if err := r.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	signedIn := func(b *browser) bool {
		t.Helper()
		p := b.get("/console/hello")
		return p.Status == http.StatusOK && strings.Contains(p.Body, "Hello alice")
	}

	b := newBrowser(t, srv.URL)
	res := b.signIn(secret)
	cookies := sessionCookies(res)
	if len(cookies) != 1 {
		t.Fatalf("sign in: %d %v", res.Status, res.Header.Values("Set-Cookie"))
	}
	token := cookies[0].Value
	if !signedIn(b) {
		t.Fatal("not signed in")
	}
	// The section added through Config.Sections is in the menu.
	if got := menu(b.get("/console/hello")); len(got) != 1 || got[0] != "hello" {
		t.Errorf("menu %v", got)
	}

	// Nothing stored is the key or the token, in clear, base64 or hex, nor
	// contains them.
	stored := rows()
	if len(stored) != 1 {
		t.Fatalf("sessions: %v", stored)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(token)
	for _, secretForm := range []string{secret, token, hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw),
		hex.EncodeToString([]byte(secret)), base64.StdEncoding.EncodeToString([]byte(secret))} {
		if strings.Contains(stored[0], secretForm) {
			t.Errorf("the session row holds a secret %q: %s", secretForm, stored[0])
		}
	}
	var sealed, hash []byte
	if err := pool.QueryRow(ctx, `SELECT sealed_key, token_hash FROM rapport.console_sessions`).Scan(&sealed, &hash); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(secret)) || bytes.Equal(hash, raw) || bytes.Contains(sealed, raw) {
		t.Error("the sealed key or the hash is the secret itself")
	}
	// A cookie made from what is stored does not open a session.
	forged := newBrowser(t, srv.URL)
	u, _ := url.Parse(srv.URL)
	forged.c.Jar.SetCookies(u, []*http.Cookie{{Name: "rapport_console", Value: base64.RawURLEncoding.EncodeToString(hash), Path: "/console/"}})
	if signedIn(forged) {
		t.Error("the stored hash opens the session")
	}

	// Sign-out ends the session: the old cookie, replayed, opens nothing.
	form := b.get("/console/hello")
	if p := b.post("/console/sign-out", url.Values{"csrf": {csrf(t, form)}}); p.Status != http.StatusSeeOther {
		t.Fatalf("sign out: %d", p.Status)
	}
	if len(rows()) != 0 {
		t.Error("the session row outlived sign-out")
	}
	replay := newBrowser(t, srv.URL)
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: "rapport_console", Value: token, Path: "/console/"}})
	if signedIn(replay) {
		t.Error("a signed-out cookie still opens the console")
	}

	// Idle: 29 minutes between pages keep it; 31 end it.
	b = newBrowser(t, srv.URL)
	b.mustSignIn(secret)
	clk.Add(29 * time.Minute)
	if !signedIn(b) {
		t.Error("ended before its idle time")
	}
	clk.Add(31 * time.Minute)
	if p := b.get("/console/hello"); p.Status != http.StatusSeeOther || !strings.Contains(p.Header.Get("Location"), "reason=expired") {
		t.Errorf("idle session: %d %s", p.Status, p.Header.Get("Location"))
	}
	if len(rows()) != 0 {
		t.Error("an idle session's row is kept")
	}

	// Lifetime: busy all day, it still ends 8 h after sign-in.
	b = newBrowser(t, srv.URL)
	b.mustSignIn(secret)
	for i := 0; i < 23; i++ { // 23 × 20 min = 7 h 40 min
		clk.Add(20 * time.Minute)
		if !signedIn(b) {
			t.Fatalf("ended after %d min", (i+1)*20)
		}
	}
	clk.Add(20 * time.Minute)
	if p := b.get("/console/hello"); p.Status != http.StatusSeeOther || !strings.Contains(p.Header.Get("Location"), "reason=expired") {
		t.Errorf("session past its lifetime: %d %s", p.Status, p.Header.Get("Location"))
	}

	// Sweeping: a sign-in deletes the sessions that ended unseen.
	stale := newBrowser(t, srv.URL)
	stale.mustSignIn(secret)
	clk.Add(time.Hour)
	newBrowser(t, srv.URL).mustSignIn(secret)
	if n := len(rows()); n != 1 {
		t.Errorf("%d sessions after the sweep, want 1", n)
	}

	// Revocation: the next page ends the session.
	b = newBrowser(t, srv.URL)
	b.mustSignIn(secret)
	if err := keys.Revoke(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if p := b.get("/console/hello"); p.Status != http.StatusSeeOther || !strings.Contains(p.Header.Get("Location"), "reason=revoked") {
		t.Errorf("revoked key: %d %s", p.Status, p.Header.Get("Location"))
	}
	if p := newBrowser(t, srv.URL).signIn(secret); p.Status != http.StatusUnauthorized {
		t.Errorf("sign in with a revoked key: %d", p.Status)
	}

	// A flood of bad keys from one address is refused before the key store
	// is asked, as the API does (20 at once, then one a second).
	flood := newBrowser(t, srv.URL)
	statuses := map[int]int{}
	for range 25 {
		statuses[flood.signIn("rk_guess").Status]++
	}
	if statuses[http.StatusUnauthorized] > 21 || statuses[http.StatusTooManyRequests] < 3 {
		t.Errorf("25 bad keys: %v", statuses)
	}

	// Secure cookies when configured (TLS at a proxy).
	_, secret2, err := keys.Create(ctx, "bob", []string{"analyst"})
	if err != nil {
		t.Fatal(err)
	}
	secureSrv := open(true)
	res = newBrowser(t, secureSrv.URL).signIn(secret2)
	if c := sessionCookies(res); len(c) != 1 || !c[0].Secure || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("secure config: %v", res.Header.Values("Set-Cookie"))
	}
	if res.Header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS behind TLS")
	}
}
