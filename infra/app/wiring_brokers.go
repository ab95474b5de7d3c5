package app

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/brokers"
	"github.com/rapport-crm/rapport/readmodels/feed"
)

// openBroker returns the Watermill publisher a broker URL names and its
// relay's name: nats://host:4222?stream=RAPPORT&subject=rapport.events
// (JetStream) or amqp://user:pass@host:5672/?exchange=rapport.events
// (RabbitMQ); name= overrides the relay's name (default the scheme), so
// that two brokers of one kind keep separate checkpoints.
func openBroker(ctx context.Context, raw string, m *Main) (message.Publisher, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("app: broker URL: %w", err)
	}
	q := u.Query()
	name := q.Get("name")
	q.Del("name")
	switch u.Scheme {
	case "nats", "tls":
		if name == "" {
			name = "nats"
		}
		stream, subject := q.Get("stream"), q.Get("subject")
		q.Del("stream")
		q.Del("subject")
		u.RawQuery = q.Encode()
		p, err := brokers.NewJetStreamPublisher(ctx, brokers.JetStreamConfig{URL: u.String(), Stream: stream, Subject: subject})
		return p, name, err
	case "amqp", "amqps":
		if name == "" {
			name = "rabbitmq"
		}
		exchange := q.Get("exchange")
		q.Del("exchange")
		u.RawQuery = q.Encode()
		p, err := brokers.NewRabbitMQPublisher(u.String(), exchange, m.cfg.Logger)
		return p, name, err
	}
	return nil, "", fmt.Errorf("app: broker URL %q: use nats:// or amqp://", redact(u))
}

func redact(u *url.URL) string {
	if u.User != nil {
		c := *u
		c.User = url.User(u.User.Username())
		return c.String()
	}
	return u.String()
}

// startBrokers runs a relay per configured broker in a process that runs
// the projectors (each relay stands by while another process holds it).
func (m *Main) startBrokers(ctx context.Context) error {
	if !m.cfg.RunProjections {
		return nil
	}
	for _, raw := range m.cfg.Brokers {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		pub, name, err := openBroker(ctx, raw, m)
		if err != nil {
			return err
		}
		relay, err := brokers.NewRelay(brokers.RelayConfig{Name: name, Pool: m.Pool, Publisher: pub, Registerer: m.Registry, Logger: m.cfg.Logger,
			WaitForFeed: func(ctx context.Context, after uint64) {
				_ = m.Engine.WaitForPosition(ctx, eventstore.Position(after+1), feed.Name)
			}})
		if err != nil {
			_ = pub.Close()
			return err
		}
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { defer close(done); _ = relay.Run(runCtx) }()
		m.closers = append(m.closers, func(closeCtx context.Context) error {
			cancel()
			select {
			case <-done:
			case <-closeCtx.Done():
			}
			return pub.Close()
		})
	}
	return nil
}
