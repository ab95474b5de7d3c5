package main

import (
	"testing"

	"github.com/rapport-crm/rapport/domain"
)

func TestLoyaltyFlags(t *testing.T) {
	for _, tc := range []struct {
		perUnit, months int
		want            domain.LoyaltyPolicy
		bad             bool
	}{
		{1, 12, domain.LoyaltyPolicy{PointsPerUnit: 1, ValidityMonths: 12}, false},
		{0, 6, domain.LoyaltyPolicy{PointsPerUnit: -1, ValidityMonths: 6}, false}, // 0 earns nothing
		{1001, 12, domain.LoyaltyPolicy{}, true},
		{-1, 12, domain.LoyaltyPolicy{}, true},
		{1, 0, domain.LoyaltyPolicy{}, true},
	} {
		f := serviceFlags{loyaltyPointsPerUnit: tc.perUnit, loyaltyValidityMonths: tc.months}
		got, err := f.loyalty()
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("%d, %d: %+v, %v", tc.perUnit, tc.months, got, err)
		}
	}
}
