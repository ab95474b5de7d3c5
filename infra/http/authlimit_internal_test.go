package http

import (
	"fmt"
	"testing"
	"time"
)

// TestAddrLimiterIsBounded: an address is exhausted after its burst and
// recovers at the rate; however many addresses send bad keys, at most max
// are tracked.
func TestAddrLimiterIsBounded(t *testing.T) {
	now := time.Unix(0, 0)
	a := newAddrLimiter(1, 3, 100)
	a.now = func() time.Time { return now }
	for range 3 {
		a.spend("flooder")
	}
	if _, ok := a.exhausted("flooder"); !ok {
		t.Fatal("flooder not exhausted after its burst")
	}
	for i := range 10_000 {
		a.spend(fmt.Sprint("10.0.", i/256, ".", i%256))
		if len(a.entries) > 100 {
			t.Fatalf("%d addresses tracked, max 100", len(a.entries))
		}
	}
	now = now.Add(10 * time.Second)
	if _, ok := a.exhausted("flooder"); ok {
		t.Fatal("flooder still exhausted after its bucket refilled")
	}
}
