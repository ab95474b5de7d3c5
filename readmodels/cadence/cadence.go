package cadence

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cadence is how often a customer of each value tier should be contacted
// (PRODUCT.md, "Contact cadence"): a customer is due when its last
// contact, or its registration when there was none, is older than its
// tier's cadence. Zero fields take the defaults (SetDefaults).
type Cadence struct {
	A, B, C time.Duration
	// None is the cadence of a customer without a tier.
	None time.Duration
}

// Default is PRODUCT.md's: A 14 days, B 30, C 90, no tier 180.
func Default() Cadence {
	return Cadence{A: 14 * day, B: 30 * day, C: 90 * day, None: 180 * day}
}

const day = 24 * time.Hour

// SetDefaults fills the zero fields with the defaults.
func (c *Cadence) SetDefaults() {
	d := Default()
	for _, f := range []struct{ v, def *time.Duration }{{&c.A, &d.A}, {&c.B, &d.B}, {&c.C, &d.C}, {&c.None, &d.None}} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
}

// Days returns the cadence of a tier ("" for none) in whole days.
func (c Cadence) Days(tier string) int {
	var d time.Duration
	switch tier {
	case "A":
		d = c.A
	case "B":
		d = c.B
	case "C":
		d = c.C
	default:
		d = c.None
	}
	return int(d / day)
}

// Validate reports a cadence that is not a positive whole number of days.
func (c Cadence) Validate() error {
	for name, d := range map[string]time.Duration{"A": c.A, "B": c.B, "C": c.C, "none": c.None} {
		if d < day || d%day != 0 || d > 36500*day {
			return fmt.Errorf("cadence: %s=%s: want whole days from 1 to 36500", name, d)
		}
	}
	return nil
}

// String writes the cadence in the form Parse reads.
func (c Cadence) String() string {
	return fmt.Sprintf("A=%d,B=%d,C=%d,none=%d", c.Days("A"), c.Days("B"), c.Days("C"), c.Days(""))
}

// Parse reads "A=14,B=30,C=90,none=180" (days) over the defaults.
func Parse(s string) (Cadence, error) {
	c := Default()
	if strings.TrimSpace(s) == "" {
		return c, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || err != nil || n < 1 || n > 36500 {
			return Cadence{}, fmt.Errorf("cadence: %q: want tier=days, e.g. A=14", part)
		}
		d := time.Duration(n) * day
		switch strings.TrimSpace(k) {
		case "A":
			c.A = d
		case "B":
			c.B = d
		case "C":
			c.C = d
		case "none":
			c.None = d
		default:
			return Cadence{}, fmt.Errorf("cadence: %q: the tier is A, B, C or none", part)
		}
	}
	return c, nil
}
