package work

import (
	"time"

	"github.com/rapport-crm/rapport/readmodels/cadence"
)

// Cadence is the contact cadence by tier; package cadence defines it and
// the SQL that judges it, shared with the customer directory and the
// contacts figures.
type Cadence = cadence.Cadence

// DefaultCadence is PRODUCT.md's: A 14 days, B 30, C 90, no tier 180.
func DefaultCadence() Cadence { return cadence.Default() }

// ParseCadence reads "A=14,B=30,C=90,none=180" (days) over the defaults.
func ParseCadence(s string) (Cadence, error) { return cadence.Parse(s) }

const day = 24 * time.Hour
