package complaints

import (
	"testing"
	"time"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/sla"
)

// TestJudge checks the SLA state of a last opening against PRODUCT.md's
// rule: a target breaches when it passes without its step.
func TestJudge(t *testing.T) {
	opened := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := opened.Add(d); return &v }
	targets := sla.Defaults() // high: 4 h / 72 h
	cases := []struct {
		name                      string
		ack, resolved             *time.Time
		now                       time.Duration
		firstResponse, resolution bool
	}{
		{"fresh", nil, nil, time.Hour, false, false},
		{"target exactly now", nil, nil, 4 * time.Hour, false, false},
		{"first response overdue", nil, nil, 4*time.Hour + time.Second, true, false},
		{"acknowledged on the target", at(4 * time.Hour), nil, 100 * time.Hour, false, true},
		{"acknowledged late", at(5 * time.Hour), nil, 6 * time.Hour, true, false},
		{"resolved in time without acknowledgement", nil, at(3 * time.Hour), 1000 * time.Hour, false, false},
		{"resolved late without acknowledgement", nil, at(73 * time.Hour), 1000 * time.Hour, true, true},
		{"acknowledged in time, resolved late", at(time.Hour), at(80 * time.Hour), 1000 * time.Hour, false, true},
		{"acknowledged in time, open past the target", at(time.Hour), nil, 73 * time.Hour, false, true},
	}
	for _, c := range cases {
		s := Judge(targets, string(domain.SeverityHigh), opened, c.ack, c.resolved, opened.Add(c.now))
		if s.FirstResponseBreached != c.firstResponse || s.ResolutionBreached != c.resolution || s.Breached() != (c.firstResponse || c.resolution) {
			t.Errorf("%s: %+v, want first response %v, resolution %v", c.name, s, c.firstResponse, c.resolution)
		}
		if !s.FirstResponseDueAt.Equal(opened.Add(4*time.Hour)) || !s.ResolutionDueAt.Equal(opened.Add(72*time.Hour)) {
			t.Errorf("%s: due %v / %v", c.name, s.FirstResponseDueAt, s.ResolutionDueAt)
		}
	}
	// Configured targets apply at once; a severity they lack keeps its
	// default.
	custom := sla.Targets{domain.SeverityHigh: {FirstResponse: time.Hour, Resolution: 2 * time.Hour}}
	if s := Judge(custom, "high", opened, at(90*time.Minute), nil, opened.Add(3*time.Hour)); !s.FirstResponseBreached || !s.ResolutionBreached {
		t.Errorf("custom targets: %+v", s)
	}
	if s := Judge(custom, "low", opened, nil, nil, opened.Add(23*time.Hour)); s.Breached() || !s.FirstResponseDueAt.Equal(opened.Add(24*time.Hour)) {
		t.Errorf("default for a severity without a target: %+v", s)
	}
}
