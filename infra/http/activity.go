package http

// ActivityQueries reads contacts, follow-ups, complaints and surveys.
// Filled in by the read-model work.
type ActivityQueries interface{}

// activityRoutes lists the per-customer contacts, follow-ups, complaints
// and surveys.
func (s *Server) activityRoutes() []Route { return nil }
