package cadence

import (
	"strings"
	"testing"
	"time"
)

func TestCadence(t *testing.T) {
	d := Default()
	if d.String() != "A=14,B=30,C=90,none=180" || d.Days("A") != 14 || d.Days("") != 180 || d.Days("Z") != 180 || d.Validate() != nil {
		t.Fatalf("defaults %v", d)
	}
	var zero Cadence
	zero.SetDefaults()
	if zero != d {
		t.Errorf("SetDefaults %v", zero)
	}
	partial := Cadence{B: 7 * day}
	partial.SetDefaults()
	if partial.B != 7*day || partial.A != 14*day {
		t.Errorf("SetDefaults keeps what is set: %v", partial)
	}
	c, err := Parse(" A=7, none=365 ")
	if err != nil || c.A != 7*day || c.None != 365*day || c.B != 30*day {
		t.Errorf("parse: %v %v", c, err)
	}
	if back, err := Parse(c.String()); err != nil || back != c {
		t.Errorf("round trip: %v %v", back, err)
	}
	for _, bad := range []string{"A", "A=0", "A=x", "D=3", "A=36501", "A=1.5"} {
		if _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "cadence") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if (Cadence{A: time.Hour, B: day, C: day, None: day}).Validate() == nil {
		t.Error("a cadence of an hour")
	}
}
