package value

import "testing"

// The mapping is total: every r, f and m from 1 to 5 has a segment, and
// it is the one the documentation's lines give.
func TestEveryScoreHasItsDocumentedSegment(t *testing.T) {
	doc := func(r, f, m int) string {
		switch {
		case r >= 4 && f >= 4 && m >= 4:
			return SegmentChampions
		case r >= 3 && f >= 3:
			return SegmentLoyal
		case r >= 4 && f == 1:
			return SegmentNew
		case r >= 3:
			return SegmentPotential
		case f >= 3:
			return SegmentAtRisk
		case r == 2:
			return SegmentHibernating
		}
		return SegmentLost
	}
	for r := 1; r <= 5; r++ {
		for f := 1; f <= 5; f++ {
			for m := 1; m <= 5; m++ {
				if got := SegmentOf(r, f, m); got == "" || got != doc(r, f, m) {
					t.Errorf("r %d f %d m %d: %q, want %q", r, f, m, got, doc(r, f, m))
				}
			}
		}
	}
}
