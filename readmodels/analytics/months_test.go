package analytics_test

import (
	"slices"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/readmodels/analytics"
)

// TestMonthBounds: every calendar month (UTC) the period touches, clipped
// to the period, as many as Params.Months counts.
func TestMonthBounds(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		from, to string
		keys     []string
	}{
		{"2025-03-01T00:00:00Z", "2025-06-01T00:00:00Z", []string{"2025-03", "2025-04", "2025-05"}},
		{"2025-03-15T00:00:00Z", "2025-05-10T00:00:00Z", []string{"2025-03", "2025-04", "2025-05"}},
		{"2025-12-31T23:00:00Z", "2026-01-01T00:00:00.000001Z", []string{"2025-12", "2026-01"}},
		{"2026-01-01T01:00:00+02:00", "2026-01-02T00:00:00Z", []string{"2025-12", "2026-01"}},
		{"0001-01-01T00:00:00Z", "0001-02-01T00:00:00Z", []string{"0001-01"}},
	}
	for _, c := range cases {
		p := analytics.Params{From: at(c.from), To: at(c.to)}
		keys, from, to := analytics.MonthBounds(p)
		if !slices.Equal(keys, c.keys) || p.Months() != len(keys) {
			t.Errorf("%s..%s: %v (Months %d), want %v", c.from, c.to, keys, p.Months(), c.keys)
			continue
		}
		if !from[0].Equal(p.From) || !to[len(to)-1].Equal(p.To) {
			t.Errorf("%s..%s: not clipped to the period: %v %v", c.from, c.to, from, to)
		}
		for i := 1; i < len(keys); i++ {
			if !from[i].Equal(to[i-1]) || from[i].Day() != 1 || from[i].Hour() != 0 || from[i].Location() != time.UTC && from[i].UTC() != from[i] {
				t.Errorf("%s..%s: month %s starts %v after %v", c.from, c.to, keys[i], from[i], to[i-1])
			}
		}
	}
}
