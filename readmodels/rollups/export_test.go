package rollups

// NewProjectorWithoutRekey is a projector that leaves a reclassified
// customer's sums under its old keys: the agreement test must catch it.
func NewProjectorWithoutRekey() Projector { return Projector{noRekey: true} }
