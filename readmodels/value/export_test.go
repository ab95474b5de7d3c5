package value

// NewProjectorWithoutRekey is a deliberately wrong projector that leaves a
// reclassified customer's day sums under its old keys: the agreement test
// must fail with it.
func NewProjectorWithoutRekey() Projector { return Projector{noRekey: true} }
