package http

// queryRoutes lists the query endpoints.
func (s *Server) queryRoutes() []Route {
	return nil
}
