package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	rhttp "github.com/rapport-crm/rapport/infra/http"
)

// view is what the layout renders around a page.
type view struct {
	Title  string
	S      *signedIn
	Data   any
	Panels []panelView
	// Errors name the bad parameters of a 422.
	Errors  []rhttp.FieldError
	Message string
}

type panelView struct {
	Title string
	HTML  template.HTML
}

// Menu is the signed-in user's menu with the current page marked.
func (v *view) Menu() []menuItem {
	if v.S == nil {
		return nil
	}
	return v.S.menu
}

// Active is the current page's key.
func (v *view) Active() string {
	if v.S == nil {
		return ""
	}
	return v.S.active
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	t, ok := c.pages[page]
	if !ok {
		http.Error(w, "no template "+page, http.StatusInternalServerError)
		return
	}
	var b bytes.Buffer
	if err := t.Execute(&b, v); err != nil {
		c.log.ErrorContext(r.Context(), "console: render", "page", page, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func (c *Console) renderError(w http.ResponseWriter, r *http.Request, s *signedIn, status int, msg string) {
	c.render(w, r, status, "error", &view{Title: http.StatusText(status), S: s, Message: msg, Data: status})
}

// fail renders a page's error: a problem the API would answer (a 422
// naming the parameters, a 404, a 409) as that status; anything else as
// 500, logged.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *signedIn, err error) {
	var p *rhttp.Problem
	if errors.As(err, &p) && p.Status < 500 {
		c.render(w, r, p.Status, "error", &view{Title: http.StatusText(p.Status), S: s, Message: p.Detail, Errors: p.Errors, Data: p.Status})
		return
	}
	c.log.ErrorContext(r.Context(), "console: page failed", "path", r.URL.Path, "err", err)
	c.renderError(w, r, s, http.StatusInternalServerError, "The page could not be built; the error is logged.")
}

// panels renders the panels added to a page that the user may see.
func (c *Console) panels(r *http.Request, s *signedIn, page Page) ([]panelView, error) {
	var out []panelView
	for _, p := range c.cfg.Panels {
		if p.Page != page || !may(s.Principal, p.Roles) {
			continue
		}
		html, err := p.Render(r.Context(), r, s.Principal)
		if err != nil {
			return nil, fmt.Errorf("console: panel %q: %w", p.Title, err)
		}
		out = append(out, panelView{Title: p.Title, HTML: html})
	}
	return out, nil
}

func (c *Console) section(sec Section) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, s *signedIn) error {
		html, err := sec.Render(r.Context(), r, s.Principal)
		if err != nil {
			return err
		}
		c.render(w, r, http.StatusOK, "section", &view{Title: sec.Title, S: s, Data: html})
		return nil
	}
}

// funcs are the templates' formatting helpers.
var funcs = template.FuncMap{
	"figure":   figureDisplay,
	"exact":    rhttp.FigureText,
	"duration": durationText,
	"time":     timeText,
	"ptime": func(t *time.Time) string {
		if t == nil {
			return "—"
		}
		return timeText(*t)
	},
	"str": func(s *string) string {
		if s == nil {
			return "—"
		}
		return *s
	},
	"int": func(i *int) string {
		if i == nil {
			return "—"
		}
		return strconv.Itoa(*i)
	},
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"date":    func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
	// num formats a figure of a kind ("duration": seconds).
	"num": func(kind string, v *float64) string {
		if kind == "duration" {
			return durationText(v)
		}
		return figureDisplay(v)
	},
	"statusText": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
	"join":       strings.Join,
	"span":       spanText,
	"list":       func(v ...string) []string { return v },
	"sla":        rhttp.SLAOf,
	"has":        func(s *signedIn, roles ...string) bool { return s != nil && may(s.Principal, toRoles(roles)) },
}

func toRoles(names []string) []rhttp.Role {
	out := make([]rhttp.Role, len(names))
	for i, n := range names {
		out[i] = rhttp.Role(n)
	}
	return out
}

// figureDisplay is a figure for reading: a rate or score to one decimal,
// a count as it is, "—" when undefined (no denominator). The exact value
// (the API's) rides beside it in data-value.
func figureDisplay(v any) string {
	switch v := v.(type) {
	case *float64:
		if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
			return "—"
		}
		return strconv.FormatFloat(*v, 'f', 1, 64)
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	}
	return "—"
}

// durationText writes seconds as days, hours and minutes.
func durationText(v any) string {
	f, ok := v.(*float64)
	if !ok || f == nil || math.IsNaN(*f) {
		return "—"
	}
	d := time.Duration(*f * float64(time.Second)).Round(time.Minute)
	days, rest := d/(24*time.Hour), d%(24*time.Hour)
	h, m := rest/time.Hour, (rest%time.Hour)/time.Minute
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, h)
	case h > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%.0fs", *f)
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// spanText writes a session's duration for reading: "30 minutes", "8 hours".
func spanText(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + one + "s"
	}
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	}
	return d.String()
}
