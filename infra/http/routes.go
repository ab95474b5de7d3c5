package http

import (
	_ "embed"
	"net/http"
)

//go:embed openapi.json
var openAPIDocument []byte

// routeTable is every endpoint with who may call it. Tests walk it to check
// the whole role matrix and the OpenAPI document against it.
func (s *Server) routeTable() []Route {
	routes := []Route{
		{Name: "healthz", Method: http.MethodGet, Path: "/healthz", Public: true, handler: s.healthz},
		{Name: "readyz", Method: http.MethodGet, Path: "/readyz", Public: true, handler: s.readyz},
		{Name: "metrics", Method: http.MethodGet, Path: "/metrics", Public: s.cfg.PublicMetrics, Roles: []Role{RoleAdmin}, handler: s.metricsHandler()},
		{Name: "openapi", Method: http.MethodGet, Path: "/openapi.json", handler: serveOpenAPI},
	}
	routes = append(routes, s.commandRoutes()...)
	routes = append(routes, s.customerRoutes()...)
	routes = append(routes, s.activityRoutes()...)
	routes = append(routes, s.analyticsRoutes()...)
	routes = append(routes, s.workRoutes()...)
	routes = append(routes, s.auditRoutes()...)
	routes = append(routes, s.historyRoutes()...)
	routes = append(routes, s.projectionRoutes()...)
	routes = append(routes, s.goalRoutes()...)
	routes = append(routes, s.valueRoutes()...)
	routes = append(routes, s.staffRoutes()...)
	routes = append(routes, s.feedRoutes()...)
	routes = append(routes, s.routingRoutes()...)
	routes = append(routes, s.webhookRoutes()...)
	return routes
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(openAPIDocument)
	return err
}
