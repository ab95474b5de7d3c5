package domain

import (
	"testing"
	"time"
)

// TestFirstResponseIsTheAcknowledgementElseTheResolution: PRODUCT.md,
// Definitions — a complaint's first response is its first acknowledgement
// or, when it was resolved without one, its resolution. Hand-computed:
// filed at t0+1h.
func TestFirstResponseIsTheAcknowledgementElseTheResolution(t *testing.T) {
	for _, x := range []struct {
		name   string
		events []Event
		want   time.Duration
		ok     bool
	}{
		{"acknowledged at +2h, resolved at +6h: the acknowledgement", []Event{acknowledged(complaintID, at(3*time.Hour)), resolved(complaintID, at(7*time.Hour))}, 2 * time.Hour, true},
		{"resolved at +6h without an acknowledgement: the resolution", []Event{resolved(complaintID, at(7*time.Hour))}, 6 * time.Hour, true},
		{"open and unanswered: none yet", nil, 0, false},
		{"escalated only: none yet", []Event{escalated(complaintID, at(2*time.Hour))}, 0, false},
		// Resolved at +2h unanswered, reopened at +9h, resolved again at
		// +12h without an acknowledgement: 3h, of the last opening.
		{"reopened and resolved again unanswered: the last opening's resolution",
			[]Event{resolved(complaintID, at(3*time.Hour)), reopened(complaintID, at(10*time.Hour)), resolved(complaintID, at(13*time.Hour))}, 3 * time.Hour, true},
		{"reopened and open: none yet", []Event{resolved(complaintID, at(3*time.Hour)), reopened(complaintID, at(10*time.Hour))}, 0, false},
	} {
		t.Run(x.name, func(t *testing.T) {
			c := Fold(append([]Event{registered(), filed(complaintID, at(time.Hour))}, x.events...)...)
			complaint, _ := c.Complaint(complaintID)
			if d, ok := complaint.FirstResponseTime(); d != x.want || ok != x.ok {
				t.Fatalf("first response %v %v, want %v %v", d, ok, x.want, x.ok)
			}
		})
	}
}
