package http

// valueRoutes lists the purchase, loyalty and value endpoints.
func (s *Server) valueRoutes() []Route {
	return s.valueCommandRoutes()
}
