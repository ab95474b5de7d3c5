package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	rhttp "github.com/rapport-crm/rapport/infra/http"
)

const (
	// sessionCookie holds the session token, for every console path.
	sessionCookie = "rapport_console"
	// signInCookie holds the sign-in form's CSRF token (double submit):
	// before there is a session, it is what proves the form is ours.
	signInCookie = "rapport_console_signin"
	// maxFormBytes bounds every form the console takes.
	maxFormBytes = 8 << 10
)

// signedIn is the request's session: who, with which roles, and the
// session's CSRF token for the forms the page shows.
type signedIn struct {
	Principal rhttp.Principal
	CSRF      string
	hash      []byte
	menu      []menuItem
	active    string
}

// pageFunc serves a page for a signed-in user.
type pageFunc func(w http.ResponseWriter, r *http.Request, s *signedIn) error

// page wraps a page: it needs a live session whose key still
// authenticates, the CSRF token on every POST, and one of roles. Anything
// else is sent to the sign-in page or refused, before the page runs.
func (c *Console) page(active string, roles []rhttp.Role, h pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		s, reason, err := c.session(w, r)
		if err != nil {
			c.renderError(w, r, nil, http.StatusInternalServerError, "The console could not read your session.")
			c.log.ErrorContext(r.Context(), "console: session", "err", err)
			return
		}
		if s == nil {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				c.renderError(w, r, nil, http.StatusForbidden, "You are not signed in.")
				return
			}
			q := url.Values{"next": {r.URL.RequestURI()}}
			if reason != "" {
				q.Set("reason", reason)
			}
			http.Redirect(w, r, "/console/sign-in?"+q.Encode(), http.StatusSeeOther)
			return
		}
		s.active = active
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.CSRF)) != 1 {
				c.renderError(w, r, s, http.StatusForbidden, "The form's security token is missing or wrong: reload the page and try again.")
				return
			}
		}
		if !may(s.Principal, roles) {
			c.renderError(w, r, s, http.StatusForbidden, "Your API key's role may not open this page.")
			return
		}
		if err := h(w, r, s); err != nil {
			c.fail(w, r, s, err)
		}
	})
}

// session finds the request's session. nil with a reason ("expired",
// "revoked") when there is none to use; the cookie of an ended session is
// cleared and its row deleted.
func (c *Console) session(w http.ResponseWriter, r *http.Request) (*signedIn, string, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, "", nil
	}
	token, ok := parseToken(ck.Value)
	if !ok {
		c.clearCookie(w, r, sessionCookie, "/console/")
		return nil, "", nil
	}
	hash := tokenHash(token)
	ss, err := c.cfg.Sessions.get(r.Context(), hash)
	if errors.Is(err, errNoSession) {
		c.clearCookie(w, r, sessionCookie, "/console/")
		return nil, "expired", nil
	}
	if err != nil {
		return nil, "", err
	}
	now := c.cfg.Now()
	end := func(reason string) (*signedIn, string, error) {
		c.clearCookie(w, r, sessionCookie, "/console/")
		return nil, reason, c.cfg.Sessions.delete(r.Context(), hash)
	}
	if !now.Before(ss.expiresAt) || !now.Before(ss.lastSeen.Add(c.cfg.SessionIdle)) {
		return end("expired")
	}
	key, err := unseal(token, ss.sealedKey)
	if err != nil {
		return end("expired")
	}
	// The key is authenticated on every page, as the API does on every
	// request: a revoked key ends the session, a changed role shows at once.
	p, err := c.cfg.Keys.Authenticate(r.Context(), key)
	if errors.Is(err, rhttp.ErrUnauthenticated) {
		return end("revoked")
	}
	if err != nil {
		return nil, "", err
	}
	if now.Sub(ss.lastSeen) >= 15*time.Second {
		if err := c.cfg.Sessions.touch(r.Context(), hash, now); err != nil {
			return nil, "", err
		}
	}
	s := &signedIn{Principal: p, CSRF: csrfToken(token), hash: hash}
	for _, m := range c.menu() {
		if may(p, m.Roles) {
			s.menu = append(s.menu, m)
		}
	}
	return s, "", nil
}

// sameOrigin refuses a form posted from another origin when the browser
// says where it came from (Origin, or Sec-Fetch-Site); the CSRF token is
// the check that does not depend on the browser.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	switch origin {
	case "":
		return true
	case "null":
		// A browser sends "null" for a privacy-sensitive context; then
		// only its Sec-Fetch-Site can say the form is ours.
		return r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

func (c *Console) secure(r *http.Request) bool { return r.TLS != nil || c.cfg.SecureCookies }

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value, path string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: path, MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode})
}

func (c *Console) clearCookie(w http.ResponseWriter, r *http.Request, name, path string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1,
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode})
}

// safeNext is where to go after signing in: a console path of ours, never
// another site (no open redirect).
func safeNext(next string) string {
	if strings.HasPrefix(next, "/console/") && !strings.HasPrefix(next, "//") && !strings.ContainsAny(next, "\\\r\n") &&
		!strings.HasPrefix(next, "/console/sign-") {
		return next
	}
	return "/console/"
}

type signInView struct {
	CSRF, Next, Message string
	Idle, Lifetime      time.Duration
}

func (c *Console) signInForm(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	msg := ""
	switch r.URL.Query().Get("reason") {
	case "expired":
		msg = "Your session has ended. Sign in again."
	case "revoked":
		msg = "Your API key is no longer valid. Sign in with another key."
	case "signed-out":
		msg = "You are signed out."
	}
	c.showSignIn(w, r, http.StatusOK, safeNext(r.URL.Query().Get("next")), msg)
}

func (c *Console) showSignIn(w http.ResponseWriter, r *http.Request, status int, next, msg string) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		c.renderError(w, r, nil, http.StatusInternalServerError, "No randomness.")
		return
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	c.setCookie(w, r, signInCookie, token, "/console/sign-in", 15*time.Minute)
	c.render(w, r, status, "signin", &view{Title: "Sign in", Data: signInView{CSRF: token, Next: next, Message: msg,
		Idle: c.cfg.SessionIdle, Lifetime: c.cfg.SessionLifetime}})
}

// signIn exchanges an API key, posted in the form's body (never in a URL),
// for a session cookie.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	next := safeNext(r.PostFormValue("next"))
	ck, err := r.Cookie(signInCookie)
	if err != nil || !sameOrigin(r) || ck.Value == "" ||
		subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		c.showSignIn(w, r, http.StatusForbidden, next, "The sign-in form expired or did not come from this console. Try again.")
		return
	}
	key := strings.TrimSpace(r.PostFormValue("api_key"))
	if key == "" {
		c.showSignIn(w, r, http.StatusUnprocessableEntity, next, "Enter your API key.")
		return
	}
	// As the API does: an address that sent too many bad keys waits
	// before its next key is even looked up.
	if wait, ok := c.failures.Exhausted(r); ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		c.showSignIn(w, r, http.StatusTooManyRequests, next, "Too many unknown keys from your address: wait a moment and try again.")
		return
	}
	p, err := c.cfg.Keys.Authenticate(r.Context(), key)
	if errors.Is(err, rhttp.ErrUnauthenticated) {
		c.failures.Spend(r)
		c.showSignIn(w, r, http.StatusUnauthorized, next, "That API key is unknown or revoked.")
		return
	}
	if err != nil {
		c.log.ErrorContext(r.Context(), "console: sign in", "err", err)
		c.renderError(w, r, nil, http.StatusInternalServerError, "The console could not check the key.")
		return
	}
	tokenText, token, err := newToken()
	if err == nil {
		var sealed []byte
		if sealed, err = seal(token, key); err == nil {
			now := c.cfg.Now()
			_ = c.cfg.Sessions.sweep(r.Context(), now, c.cfg.SessionIdle)
			err = c.cfg.Sessions.create(r.Context(), tokenHash(token), session{sealedKey: sealed, keyName: p.Name,
				createdAt: now, expiresAt: now.Add(c.cfg.SessionLifetime), lastSeen: now})
		}
	}
	if err != nil {
		c.log.ErrorContext(r.Context(), "console: create session", "err", err)
		c.renderError(w, r, nil, http.StatusInternalServerError, "The console could not start a session.")
		return
	}
	c.clearCookie(w, r, signInCookie, "/console/sign-in")
	c.setCookie(w, r, sessionCookie, tokenText, "/console/", c.cfg.SessionLifetime)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	if err := c.cfg.Sessions.delete(r.Context(), s.hash); err != nil {
		return err
	}
	c.clearCookie(w, r, sessionCookie, "/console/")
	http.Redirect(w, r, "/console/sign-in?reason=signed-out", http.StatusSeeOther)
	return nil
}

// home opens the first page the user may see.
func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	c.page("", nil, func(w http.ResponseWriter, r *http.Request, s *signedIn) error {
		if len(s.menu) == 0 {
			c.renderError(w, r, s, http.StatusForbidden, "Your API key's role has no page in the console.")
			return nil
		}
		http.Redirect(w, r, s.menu[0].Path, http.StatusSeeOther)
		return nil
	}).ServeHTTP(w, r)
}
