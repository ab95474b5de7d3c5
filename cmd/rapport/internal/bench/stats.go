package bench

import (
	"math"
	"slices"
	"time"
)

// durations are measured latencies.
type durations []time.Duration

// percentile is the nearest-rank p-th percentile in milliseconds (0 when
// there is none; p = 100 is the maximum). It sorts in place.
func (d durations) percentile(p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	if !slices.IsSorted(d) {
		slices.Sort(d)
	}
	rank := int(math.Ceil(p / 100 * float64(len(d))))
	rank = min(max(rank, 1), len(d))
	return ms(d[rank-1])
}

func (d durations) mean() float64 {
	if len(d) == 0 {
		return 0
	}
	var sum time.Duration
	for _, v := range d {
		sum += v
	}
	return ms(sum) / float64(len(d))
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func (t *CommandStats) setLatencies(d durations) {
	slices.Sort(d)
	t.P50Ms = d.percentile(50)
	t.P95Ms = d.percentile(95)
	t.P99Ms = d.percentile(99)
	t.MaxMs = d.percentile(100)
	t.MeanMs = round3(d.mean())
}
