package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// The open loop: commands offered at a constant rate, whatever the
// service's answers.
//
// A closed loop (each client sends its next command when the previous one
// is answered) slows down with the service, so it under-reports latency
// exactly when the service is slow: a stall delays the commands that would
// have been sent meanwhile, and they are never measured
// ("coordinated omission"). Here command k is due at start + k/Rate. A
// dispatcher hands each due command to a free client; its latency is
// measured from the instant it was due, not from when it could be sent, so
// a stall counts for every command it delayed. Clients still own their
// customers and send one command at a time (the workload's model of the
// rules needs its answers in order), so Clients bounds the commands in
// flight: when none is free, the command waits for one and is counted
// late.

// lateAfter is how far behind its due instant a send may be issued and
// still count as on time (the dispatcher wakes with timer jitter).
const lateAfter = time.Millisecond

// OpenLoopResult describes the open-loop load (LoadResult.OpenLoop).
type OpenLoopResult struct {
	// OfferedPerSecond is the rate asked for (Config.Rate).
	OfferedPerSecond float64 `json:"offered_per_second"`
	// Due is how many commands fell due; Late how many of them were sent
	// more than 1 ms after their due instant, of which NoClientFree
	// because every client was waiting for an answer (the rest: the
	// dispatcher's own delay); MaxLateMs the largest delay.
	Due          int64   `json:"due"`
	Late         int64   `json:"late"`
	NoClientFree int64   `json:"no_client_free"`
	MaxLateMs    float64 `json:"max_late_ms"`
}

// openLoop drives the clients at cfg.Rate until more says that the next
// due instant is out of bounds; each client runs step with the command's
// due instant. The bounds apply to due instants, not to sends: a command
// due before the end is sent, however late.
func (r *runner) openLoop(ctx context.Context, clients []*client, more func(due time.Time) bool, accepted *atomic.Int64) *OpenLoopResult {
	res := &OpenLoopResult{OfferedPerSecond: r.cfg.Rate}
	due := make(chan time.Time) // unbuffered: a send succeeds only to a free client
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for at := range due {
				c.step(ctx, accepted, at)
			}
		}()
	}
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	start := time.Now()
	var maxLate time.Duration
	for k := int64(0); ctx.Err() == nil; k++ {
		at := start.Add(time.Duration(k) * interval)
		if !more(at) {
			break
		}
		if wait := time.Until(at); wait > 0 {
			if !sleep(ctx, wait) {
				break
			}
		}
		res.Due++
		select {
		case due <- at:
		default:
			res.NoClientFree++
			select {
			case due <- at:
			case <-ctx.Done():
			}
		}
		if late := time.Since(at); late > lateAfter {
			res.Late++
			maxLate = max(maxLate, late)
		}
	}
	close(due)
	wg.Wait()
	res.MaxLateMs = ms(maxLate)
	return res
}
