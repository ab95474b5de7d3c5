package app

import (
	"context"
	"fmt"
	"time"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/readmodels/reminders"
)

// ReminderSettings configure the reminder scheduler.
type ReminderSettings struct {
	// Interval is the time between two scans (default 5 s).
	Interval time.Duration
	// Backfill is how far back the very first scan emits reminders whose
	// time had come already (default 24 h; negative: all).
	Backfill time.Duration
	// Off runs no scheduler in this process (tests run their own).
	Off bool
}

// startReminders starts the reminder scheduler in a process that runs the
// projectors (it stands by while another process schedules): its
// reminders are events in the log, so the feed delivers them.
func (m *Main) startReminders(ctx context.Context) error {
	if !m.cfg.RunProjections || m.cfg.Reminders.Off {
		return nil
	}
	s, err := reminders.New(reminders.Config{
		Pool: m.Pool, Store: m.Store, Codec: m.Codec,
		SLA: m.cfg.ReadModels.SLA, Cadence: m.cfg.ReadModels.Cadence,
		WaitFor: func(ctx context.Context, p eventstore.Position, names ...string) error {
			return m.Engine.WaitForPosition(ctx, p, names...)
		},
		Interval:   m.cfg.Reminders.Interval,
		Backfill:   m.cfg.Reminders.Backfill,
		Registerer: m.Registry,
		Logger:     m.cfg.Logger,
	})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(runCtx)
	}()
	m.closers = append(m.closers, func(closeCtx context.Context) error {
		cancel()
		select {
		case <-done:
			return nil
		case <-closeCtx.Done():
			return fmt.Errorf("app: the reminder scheduler did not stop in time: %w", closeCtx.Err())
		}
	})
	return nil
}
