package value

import (
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

// score is ⌈5 × (worse + ties/2) ÷ n⌉ in exact arithmetic, cutoffs and
// ties included: every population up to 60.
func TestScoreIsTheQuintileOfTheMidRank(t *testing.T) {
	for n := 1; n <= 60; n++ {
		for worse := 0; worse < n; worse++ {
			for ties := 1; worse+ties <= n; ties++ {
				q := new(big.Rat).SetFrac64(int64(5*(2*worse+ties)), int64(2*n))
				want := new(big.Int).Quo(q.Num(), q.Denom())
				if !q.IsInt() {
					want.Add(want, big.NewInt(1))
				}
				if got := score(worse, ties, n); int64(got) != want.Int64() || got < 1 || got > 5 {
					t.Fatalf("score(%d, %d, %d) = %d, want %d", worse, ties, n, got, want.Int64())
				}
			}
		}
	}
}

// A dist counts, and materializes, the multiset base − removed + added.
func TestDistIsTheMultisetItDescribes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		var base, removed, added []int64
		for range rng.IntN(40) {
			base = append(base, rng.Int64N(12))
		}
		for _, v := range base {
			if rng.IntN(4) == 0 {
				removed = append(removed, v)
			}
		}
		for range rng.IntN(10) {
			added = append(added, rng.Int64N(14)-1)
		}
		slices.Sort(base)
		slices.Sort(removed)
		slices.Sort(added)
		want := slices.Clone(base)
		for _, r := range removed {
			i := slices.Index(want, r)
			want = slices.Delete(want, i, i+1)
		}
		want = append(want, added...)
		slices.Sort(want)
		d := dist{base: base, removed: removed, added: added}
		if got := d.materialize(); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("%v − %v + %v = %v, want %v", base, removed, added, got, want)
		}
		if d.n() != len(want) {
			t.Fatalf("n %d, want %d", d.n(), len(want))
		}
		for x := int64(-2); x <= 15; x++ {
			below, atMost := 0, 0
			for _, v := range want {
				if v < x {
					below++
				}
				if v <= x {
					atMost++
				}
			}
			if d.below(x) != below || d.atMost(x) != atMost {
				t.Fatalf("%v − %v + %v: below(%d) %d atMost %d, want %d %d", base, removed, added, x, d.below(x), d.atMost(x), below, atMost)
			}
		}
	}
}

// A value's score by thresholds is its score by counts, for every value of
// a population with runs of ties.
func TestThresholdsScoreLikeCounts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		var sorted []int64
		for range 1 + rng.IntN(60) {
			sorted = append(sorted, rng.Int64N(1+rng.Int64N(20)))
		}
		slices.Sort(sorted)
		th := newThresholds(sorted)
		for _, v := range sorted {
			worse := lowerBound(sorted, v)
			if want := score(worse, upperBound(sorted, v)-worse, len(sorted)); th.score(v) != want {
				t.Fatalf("%v: %d scores %d by thresholds %v, %d by counts", sorted, v, th.score(v), th.at, want)
			}
		}
	}
}
