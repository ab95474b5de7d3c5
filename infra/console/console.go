// Package console serves Rapport's web console under /console/: pages for
// analysts (overview, work queues), auditors (a customer's authoritative
// history, state as of an instant, verification) and admins (projections).
//
// It is server-rendered html/template with its stylesheet embedded (no
// build step, no script: the Content-Security-Policy allows none), and it
// reads through the same query interfaces as the HTTP API (infra/http), in
// process, so that every figure on a page is the API's answer to the same
// query. A user signs in with an API key, which is exchanged for a session
// cookie; the key's roles decide which pages the menu shows and which the
// console serves.
//
// Goals, value and loyalty, and webhook health are parts of the overview,
// customer and operations pages (Config.Goals, Value, Webhooks); features
// that come later plug in through Config.Sections (a page of their own)
// and Config.Panels (a part of an existing page) without changing this
// package.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"time"

	rhttp "github.com/rapport-crm/rapport/infra/http"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the console reads and how its sessions behave. A nil
// query interface hides the pages that need it.
type Config struct {
	// Sessions keeps the sessions (required).
	Sessions *SessionStore
	// Keys authenticates the API keys users sign in with (required): the
	// same authenticator as the API's.
	Keys rhttp.Authenticator

	Analytics   rhttp.AnalyticsQueries
	Work        rhttp.WorkQueries
	Customers   rhttp.CustomerQueries
	Contacts    rhttp.ContactQueries
	Complaints  rhttp.ComplaintQueries
	Surveys     rhttp.SurveyQueries
	History     rhttp.HistoryQueries
	Auditor     rhttp.Auditor
	Projections rhttp.Projections
	// Goals shows the goals with their status on the overview (GET
	// /v1/goals), Value a customer's value and loyalty (GET
	// /v1/customers/{id} and …/loyalty), Webhooks the subscriptions and
	// their delivery health on operations (GET /v1/webhooks…).
	Goals    rhttp.GoalQueries
	Value    rhttp.ValueQueries
	Webhooks rhttp.WebhookAdmin

	// SessionIdle ends a session not used for this long (default 30 min);
	// SessionLifetime ends every session this long after sign-in (default
	// 8 h).
	SessionIdle     time.Duration
	SessionLifetime time.Duration
	// SecureCookies marks the cookies Secure. Requests that arrive over
	// TLS get Secure cookies anyway; set it when TLS ends at a proxy.
	SecureCookies bool

	// Sections are pages added by other features (goals, value, webhooks):
	// each gets a menu entry for the roles that may see it.
	Sections []Section
	// Panels are parts added to an existing page (the goals on the
	// overview, value and loyalty on a customer, webhook health on
	// operations).
	Panels []Panel

	// Now is the clock (default time.Now); tests move it.
	Now    func() time.Time
	Logger *slog.Logger
}

// Section is a page of its own under /console/<Path>, shown in the menu of
// the roles that may see it (empty Roles: every role; admin sees all).
type Section struct {
	Path  string
	Title string
	Roles []rhttp.Role
	// Render writes the page's content; the console wraps it in the
	// layout. It is given the signed-in principal.
	Render func(ctx context.Context, r *http.Request, p rhttp.Principal) (template.HTML, error)
}

// Page names the pages a Panel can be added to.
type Page string

const (
	PageOverview   Page = "overview"
	PageCustomer   Page = "customer"
	PageOperations Page = "operations"
)

// Panel is a part of an existing page, shown to the roles that may see it.
type Panel struct {
	Page  Page
	Title string
	Roles []rhttp.Role
	// Render writes the panel; r carries the page's query (filters,
	// customer id in the path).
	Render func(ctx context.Context, r *http.Request, p rhttp.Principal) (template.HTML, error)
}

// Console is the console's handler.
type Console struct {
	cfg      Config
	failures *rhttp.FailureLimiter
	log      *slog.Logger
	mux      *http.ServeMux
	pages    map[string]*template.Template
}

// New builds the console.
func New(cfg Config) (*Console, error) {
	if cfg.Sessions == nil || cfg.Keys == nil {
		return nil, errors.New("console: Sessions and Keys are required")
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 30 * time.Minute
	}
	if cfg.SessionLifetime <= 0 {
		cfg.SessionLifetime = 8 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// The API's defaults: one refused key per second per address, 20 at once.
	c := &Console{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), failures: rhttp.NewFailureLimiter(1, 20, 10_000)}
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

func (c *Console) parseTemplates() error {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	c.pages = map[string]*template.Template{}
	for _, name := range names {
		base := name[len("templates/") : len(name)-len(".html")]
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", name)
		if err != nil {
			return fmt.Errorf("console: template %s: %w", name, err)
		}
		c.pages[base] = t
	}
	return nil
}

// menuItem is one entry of the menu: a page and who may open it.
type menuItem struct {
	Key, Title, Path string
	Roles            []rhttp.Role
}

// menu lists the pages in menu order, those whose queries are configured.
func (c *Console) menu() []menuItem {
	var m []menuItem
	add := func(ok bool, key, title string, roles ...rhttp.Role) {
		if ok {
			m = append(m, menuItem{Key: key, Title: title, Path: "/console/" + key, Roles: roles})
		}
	}
	add(c.cfg.Analytics != nil, "overview", "Overview", rhttp.RoleAnalyst)
	add(c.cfg.Work != nil, "work", "Work", rhttp.RoleWriter, rhttp.RoleAnalyst)
	add(c.cfg.Customers != nil, "customers", "Customers")
	add(c.cfg.Auditor != nil, "audit", "Audit", rhttp.RoleAuditor)
	add(c.cfg.Projections != nil, "operations", "Operations", rhttp.RoleAdmin)
	for _, s := range c.cfg.Sections {
		m = append(m, menuItem{Key: s.Path, Title: s.Title, Path: "/console/" + s.Path, Roles: s.Roles})
	}
	return m
}

// may says whether a principal holds one of roles (empty: any role;
// admin: always), as the API decides.
func may(p rhttp.Principal, roles []rhttp.Role) bool {
	if len(roles) == 0 || slices.Contains(p.Roles, rhttp.RoleAdmin) {
		return true
	}
	for _, r := range p.Roles {
		if slices.Contains(roles, r) {
			return true
		}
	}
	return false
}

func (c *Console) routes() {
	static := http.StripPrefix("/console/", http.FileServerFS(staticFS))
	c.mux.HandleFunc("GET /console/static/{file}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		static.ServeHTTP(w, r)
	})
	c.mux.HandleFunc("GET /console/{$}", c.home)
	c.mux.HandleFunc("GET /console/sign-in", c.signInForm)
	c.mux.HandleFunc("POST /console/sign-in", c.signIn)
	c.mux.Handle("POST /console/sign-out", c.page("", nil, c.signOut))
	analyst := []rhttp.Role{rhttp.RoleAnalyst}
	if c.cfg.Analytics != nil {
		c.mux.Handle("GET /console/overview", c.page("overview", analyst, c.overview))
		c.mux.Handle("GET /console/overview.csv", c.page("overview", analyst, c.overviewCSV))
		c.mux.Handle("GET /console/overview-months.csv", c.page("overview", analyst, c.overviewMonthsCSV))
	}
	if c.cfg.Work != nil {
		c.mux.Handle("GET /console/work", c.page("work", []rhttp.Role{rhttp.RoleWriter, rhttp.RoleAnalyst}, c.work))
	}
	if c.cfg.Customers != nil {
		c.mux.Handle("GET /console/customers", c.page("customers", nil, c.customers))
		c.mux.Handle("GET /console/customers/{id}", c.page("customers", nil, c.customer))
	}
	auditor := []rhttp.Role{rhttp.RoleAuditor}
	if c.cfg.Auditor != nil {
		c.mux.Handle("GET /console/audit", c.page("audit", auditor, c.auditIndex))
		c.mux.Handle("GET /console/audit/{id}", c.page("audit", auditor, c.audit))
	}
	admin := []rhttp.Role{rhttp.RoleAdmin}
	if c.cfg.Projections != nil {
		c.mux.Handle("GET /console/operations", c.page("operations", admin, c.operations))
		c.mux.Handle("POST /console/operations/{name}/rebuild", c.page("operations", admin, c.rebuild))
		c.mux.Handle("POST /console/operations/{name}/parked/{stream}/retry", c.page("operations", admin, c.retryParked))
	}
	for _, s := range c.cfg.Sections {
		c.mux.Handle("GET /console/"+s.Path, c.page(s.Path, s.Roles, c.section(s)))
	}
	c.mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, nil, http.StatusNotFound, "There is no such page.")
	})
}

// ServeHTTP serves the console with its security headers: no script may
// run, styles and images only from the console itself, no framing, no
// referrer, nothing cached.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on the console's own forms.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	if r.TLS != nil || c.cfg.SecureCookies {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	c.mux.ServeHTTP(w, r)
}

// contentSecurityPolicy allows no script at all (the pages have none), and
// styles, images and form targets only from the console's origin.
const contentSecurityPolicy = "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
