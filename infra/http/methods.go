package http

import (
	"net/http"
	"path"
	"strings"

	"github.com/gorilla/mux"
)

// routeMethods are the methods a route may take, in the order Allow lists
// them.
var routeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// methodNotAllowed answers 405 with the Allow header RFC 9110 §15.5.6
// requires: the methods some route takes at this path.
func (s *Server) methodNotAllowed() http.Handler {
	problem := s.fallback(http.StatusMethodNotAllowed, "method_not_allowed", "this endpoint does not take this method; Allow lists those it takes")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allowed := s.allowedMethods(r); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
		}
		problem.ServeHTTP(w, r)
	})
}

// allowedMethods matches the request's path against the routes with each
// method in turn.
func (s *Server) allowedMethods(r *http.Request) []string {
	var allowed []string
	for _, method := range routeMethods {
		probe := r.Clone(r.Context())
		probe.Method = method
		var match mux.RouteMatch
		if s.router.Match(probe, &match) && match.MatchErr == nil {
			allowed = append(allowed, method)
		}
	}
	return allowed
}

// cleanPaths serves only clean paths. A GET or HEAD of an unclean one
// (double slashes, . or .. segments) is redirected to the clean path, as
// is safe for a read; any other method is 404: redirecting a command
// would make most clients resend it as a GET, or not at all, and running
// it on a path the client did not send would guess at what it meant.
func (s *Server) cleanPaths(next http.Handler) http.Handler {
	notFound := s.fallback(http.StatusNotFound, "route_not_found", "no such endpoint: the path is not clean (double slash or a . or .. segment)")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clean := cleanPath(r.URL.Path)
		if clean == r.URL.Path {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			notFound.ServeHTTP(w, r)
			return
		}
		target := clean
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusMovedPermanently)
	})
}

// cleanPath is path.Clean that keeps a trailing slash, as mux cleans.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	clean := path.Clean(p)
	if p[len(p)-1] == '/' && clean != "/" {
		clean += "/"
	}
	return clean
}
