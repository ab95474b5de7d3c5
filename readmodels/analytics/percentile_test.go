package analytics

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPercentileCont50 compares the selection with percentile_cont's
// definition over a sorted copy, on lengths odd and even and values with
// many ties, as the complaint timings have (whole seconds).
func TestPercentileCont50(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 1; n < 300; n++ {
		for _, spread := range []int{1, 3, 1000, math.MaxInt32} {
			v := make([]float64, n)
			for i := range v {
				v[i] = float64(r.IntN(spread)) + r.Float64()*float64(spread%2)
			}
			sorted := slices.Clone(v)
			slices.Sort(sorted)
			want := sorted[(n-1)/2]
			if n%2 == 0 {
				lo, hi := sorted[n/2-1], sorted[n/2]
				want = lo + float64(0.5*(hi-lo))
			}
			got := percentileCont50(v)
			if got == nil || *got != want {
				t.Fatalf("n=%d spread=%d: got %v, want %v", n, spread, got, want)
			}
		}
	}
	if percentileCont50(nil) != nil {
		t.Error("the median of nothing is not NULL")
	}
}
