package http

// CustomerQueries reads the customer directory (readmodels/customers) and
// scores churn risk. Filled in by the read-model work.
type CustomerQueries interface{}

// customerRoutes lists GET /v1/customers and GET /v1/customers/{id}.
func (s *Server) customerRoutes() []Route { return nil }
