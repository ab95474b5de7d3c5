package app

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/domain/integration"
	"github.com/rapport-crm/rapport/infra/webhooks"
	"github.com/rapport-crm/rapport/readmodels/feed"
)

// WebhookSettings configure the webhook deliverer.
type WebhookSettings struct {
	// AllowTargets are the address ranges webhooks may reach although
	// they are private, loopback or link-local (none by default).
	AllowTargets []netip.Prefix
	// Timeout bounds one delivery (default 10 s).
	Timeout time.Duration
	// BaseDelay and MaxDelay shape the retries' exponential backoff
	// (defaults 5 s and 1 h); FailAfter is how long a delivery is retried
	// before its subscription is marked failing (default 24 h).
	BaseDelay, MaxDelay, FailAfter time.Duration
	// Off runs no deliverer in this process (tests run their own).
	Off bool
}

// openWebhooks builds the subscription store and, in a process that runs
// the projectors, starts the deliverer (it stands by while another
// process delivers).
func (m *Main) openWebhooks(ctx context.Context) error {
	sealer, err := webhooks.NewSealer(m.Keyring.IndexSecret())
	if err != nil {
		return err
	}
	s := m.cfg.Webhooks
	targets := webhooks.Targets{Allow: s.AllowTargets}
	m.Webhooks = webhooks.NewStore(m.Pool, sealer, targets, integration.NewMapper().Types())
	m.Deliverer, err = webhooks.NewDeliverer(webhooks.Config{
		Pool: m.Pool, Sealer: sealer, Targets: targets,
		Timeout: s.Timeout, BaseDelay: s.BaseDelay, MaxDelay: s.MaxDelay, FailAfter: s.FailAfter,
		WaitForFeed: func(ctx context.Context, after uint64) {
			_ = m.Engine.WaitForPosition(ctx, eventstore.Position(after+1), feed.Name)
		},
		Registerer: m.Registry,
		Logger:     m.cfg.Logger,
	})
	if err != nil {
		return err
	}
	if !m.cfg.RunProjections || s.Off {
		return nil
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Deliverer.Run(runCtx)
	}()
	m.closers = append(m.closers, func(closeCtx context.Context) error {
		cancel()
		select {
		case <-done:
			return nil
		case <-closeCtx.Done():
			return fmt.Errorf("app: the webhook deliverer did not stop in time: %w", closeCtx.Err())
		}
	})
	return nil
}

// webhookAdmin is the admin API's view of the webhooks: a new
// subscription starts at the feed's head.
type webhookAdmin struct {
	*webhooks.Store
	feed      *feed.Queries
	deliverer *webhooks.Deliverer
}

func (a webhookAdmin) Create(ctx context.Context, n webhooks.NewSubscription) (webhooks.Created, error) {
	head, err := a.feed.Head(ctx)
	if err != nil {
		return webhooks.Created{}, err
	}
	return a.Store.Create(ctx, n, head)
}

func (a webhookAdmin) Replay(ctx context.Context, id uuid.UUID, from uint64) (int64, error) {
	n, err := a.Store.Replay(ctx, id, from)
	if err == nil {
		a.deliverer.Wake()
	}
	return n, err
}
