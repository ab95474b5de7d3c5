package sla_test

import (
	"testing"
	"time"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/sla"
)

func TestParse(t *testing.T) {
	got, err := sla.Parse("high=2h/3d, low=48h/20d")
	if err != nil {
		t.Fatal(err)
	}
	if got[domain.SeverityHigh] != (sla.Target{FirstResponse: 2 * time.Hour, Resolution: 72 * time.Hour}) {
		t.Errorf("high: %+v", got[domain.SeverityHigh])
	}
	if got[domain.SeverityLow].Resolution != 20*24*time.Hour {
		t.Errorf("low: %+v", got[domain.SeverityLow])
	}
	if got[domain.SeverityCritical] != sla.Defaults()[domain.SeverityCritical] {
		t.Errorf("critical should keep its default: %+v", got[domain.SeverityCritical])
	}
	round, err := sla.Parse(got.String())
	if err != nil || round.String() != got.String() {
		t.Errorf("round trip: %v %v", round, err)
	}
	for _, bad := range []string{"urgent=1h/2h", "high=1h", "high=x/2h", "high=0s/2h"} {
		if _, err := sla.Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
