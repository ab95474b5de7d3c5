package http

// AnalyticsQueries answers /v1/analytics/*. Filled in by the read-model
// work.
type AnalyticsQueries interface{}

// analyticsRoutes lists /v1/analytics/*.
func (s *Server) analyticsRoutes() []Route { return nil }
