package app

import (
	"context"
	"time"

	"github.com/rapport-crm/rapport/commands"
)

// erasureSweepEvery is how often a running process looks for erasures
// left half done (by a crash elsewhere, or a key store outage here).
const erasureSweepEvery = time.Minute

// startErasureSweep completes, before the service answers anything, every
// erasure whose event is stored but whose data key survived (a crash in
// between), and then again every minute until Close. A failure is logged:
// the erasure stays pending, and its retry or the next sweep completes it.
func (m *Main) startErasureSweep(ctx context.Context, customers *commands.Customers) {
	sweep := func(ctx context.Context) {
		if err := customers.CompleteErasures(ctx); err != nil && ctx.Err() == nil {
			m.cfg.Logger.Error("rapport: complete interrupted erasures", "err", err)
		}
	}
	sweep(ctx)
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := time.NewTicker(erasureSweepEvery)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				sweep(ctx)
			}
		}
	}()
	m.closers = append(m.closers, func(context.Context) error { cancel(); <-done; return nil })
}
