package sla

import (
	"fmt"
	"strings"
	"time"

	"github.com/rapport-crm/rapport/domain"
)

// Target is the time allowed for each step of a complaint of one severity,
// counted from the start of its last opening.
type Target struct {
	FirstResponse time.Duration
	Resolution    time.Duration
}

// Targets maps each severity to its target.
type Targets map[domain.Severity]Target

// Defaults are PRODUCT.md's targets: critical 1 h / 24 h, high 4 h / 72 h,
// medium 8 h / 5 d, low 24 h / 10 d.
func Defaults() Targets {
	return Targets{
		domain.SeverityCritical: {FirstResponse: time.Hour, Resolution: 24 * time.Hour},
		domain.SeverityHigh:     {FirstResponse: 4 * time.Hour, Resolution: 72 * time.Hour},
		domain.SeverityMedium:   {FirstResponse: 8 * time.Hour, Resolution: 5 * 24 * time.Hour},
		domain.SeverityLow:      {FirstResponse: 24 * time.Hour, Resolution: 10 * 24 * time.Hour},
	}
}

// Parse reads targets written as "critical=1h/24h,high=4h/72h,…" over the
// defaults: severities not named keep their default. Durations are Go
// durations; "d" is accepted for days.
func Parse(s string) (Targets, error) {
	t := Defaults()
	if strings.TrimSpace(s) == "" {
		return t, nil
	}
	for _, part := range strings.Split(s, ",") {
		sev, spec, ok := strings.Cut(strings.TrimSpace(part), "=")
		severity := domain.Severity(strings.TrimSpace(sev))
		if !ok || !severity.Valid() {
			return nil, fmt.Errorf("sla: %q: want severity=first/resolution, e.g. high=4h/72h", part)
		}
		first, resolution, ok := strings.Cut(spec, "/")
		if !ok {
			return nil, fmt.Errorf("sla: %q: want first-response/resolution, e.g. 4h/72h", part)
		}
		f, err := parseDuration(first)
		if err != nil {
			return nil, fmt.Errorf("sla: %q: %w", part, err)
		}
		r, err := parseDuration(resolution)
		if err != nil {
			return nil, fmt.Errorf("sla: %q: %w", part, err)
		}
		if f <= 0 || r <= 0 {
			return nil, fmt.Errorf("sla: %q: targets must be positive", part)
		}
		t[severity] = Target{FirstResponse: f, Resolution: r}
	}
	return t, nil
}

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		d, err := time.ParseDuration(days + "h")
		return 24 * d, err
	}
	return time.ParseDuration(s)
}

// String writes targets in the form Parse reads.
func (t Targets) String() string {
	var parts []string
	for _, sev := range []domain.Severity{domain.SeverityCritical, domain.SeverityHigh, domain.SeverityMedium, domain.SeverityLow} {
		parts = append(parts, fmt.Sprintf("%s=%s/%s", sev, t[sev].FirstResponse, t[sev].Resolution))
	}
	return strings.Join(parts, ",")
}

// Seconds returns the targets in seconds by severity name, the shape SQL
// queries take them in (a jsonb parameter: {"high": [14400, 259200], …}).
func (t Targets) Seconds() map[string][2]int64 {
	out := make(map[string][2]int64, len(t))
	for sev, target := range t {
		out[string(sev)] = [2]int64{int64(target.FirstResponse.Seconds()), int64(target.Resolution.Seconds())}
	}
	return out
}
