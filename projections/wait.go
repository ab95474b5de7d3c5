package projections

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// ErrNotCaughtUp is matched (errors.Is) by the error WaitForPosition
// returns when its context ends first. The HTTP layer answers it with 503
// and Retry-After.
var ErrNotCaughtUp = errors.New("projections: read models have not caught up")

// NotCaughtUpError says which projectors had not reached the position.
type NotCaughtUpError struct {
	Position eventstore.Position
	// Lagging maps each projector still behind to its checkpoint.
	Lagging map[string]eventstore.Position
	// RetryAfter is a suggested pause before asking again.
	RetryAfter time.Duration
}

func (e *NotCaughtUpError) Error() string {
	names := make([]string, 0, len(e.Lagging))
	for n, cp := range e.Lagging {
		names = append(names, fmt.Sprintf("%s at %d", n, cp))
	}
	slices.Sort(names)
	return fmt.Sprintf("projections: read models have not reached position %d: %s", e.Position, strings.Join(names, ", "))
}

// Is makes errors.Is(err, ErrNotCaughtUp) true.
func (e *NotCaughtUpError) Is(target error) bool { return target == ErrNotCaughtUp }

// WaitForPosition returns when the active generations of the named
// projectors (all of the engine's when none is named) have applied the log
// up to position, so that a client reads its own write. Commits in this
// process wake it at once; projectors run by other processes are polled
// every WaitPollInterval. When ctx ends first it returns a
// *NotCaughtUpError.
func (e *Engine) WaitForPosition(ctx context.Context, position eventstore.Position, names ...string) error {
	if len(names) == 0 {
		for _, rt := range e.runners {
			names = append(names, rt.p.Name())
		}
	}
	for _, n := range names {
		if _, err := e.runner(n); err != nil {
			return err
		}
	}
	ticker := time.NewTicker(e.cfg.WaitPollInterval)
	defer ticker.Stop()
	lagging := map[string]eventstore.Position{}
	for {
		woken := e.commits.Wait()
		clear(lagging)
		var remote []string
		for _, n := range names {
			rt := e.byName[n]
			if cp, ok := rt.localCheckpoint(); ok {
				if cp < position {
					lagging[n] = cp
				}
				continue
			}
			remote = append(remote, n)
		}
		if len(remote) > 0 {
			cps, err := activeCheckpoints(ctx, e.cfg.Pool, remote)
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("projections: wait for position: %w", err)
			}
			for _, n := range remote {
				if cp := cps[n]; cp < position || err != nil {
					lagging[n] = cp
				}
			}
		}
		if len(lagging) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return &NotCaughtUpError{Position: position, Lagging: maps(lagging), RetryAfter: time.Second}
		case <-woken:
		case <-ticker.C:
		}
	}
}

func maps(m map[string]eventstore.Position) map[string]eventstore.Position {
	out := make(map[string]eventstore.Position, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// localCheckpoint is the active generation's checkpoint when this process
// runs it.
func (rt *runner) localCheckpoint() (eventstore.Position, bool) {
	rt.mu.Lock()
	live := rt.live
	rt.mu.Unlock()
	if live == nil {
		return 0, false
	}
	live.mu.Lock()
	defer live.mu.Unlock()
	if !live.active {
		return 0, false
	}
	return live.committed, true
}
