package brokers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStreamPublisher is a Watermill publisher to NATS JetStream: each
// message goes to subject "<prefix>.<topic>" with its UUID as
// Nats-Msg-Id (JetStream drops a duplicate within the stream's window) and
// its metadata as headers; Publish returns once the stream acknowledged
// every message.
type JetStreamPublisher struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	prefix string
}

var _ message.Publisher = (*JetStreamPublisher)(nil)

// JetStreamConfig configures a JetStreamPublisher.
type JetStreamConfig struct {
	URL string
	// Stream is created (or updated) to hold "<Subject>.>"; defaults
	// RAPPORT and rapport.events.
	Stream  string
	Subject string
	// Duplicates is the stream's duplicate window (default 10 minutes).
	Duplicates time.Duration
}

// NewJetStreamPublisher connects and makes sure the stream exists.
func NewJetStreamPublisher(ctx context.Context, cfg JetStreamConfig) (*JetStreamPublisher, error) {
	if cfg.Stream == "" {
		cfg.Stream = "RAPPORT"
	}
	if cfg.Subject == "" {
		cfg.Subject = "rapport.events"
	}
	if cfg.Duplicates == 0 {
		cfg.Duplicates = 10 * time.Minute
	}
	nc, err := nats.Connect(cfg.URL, nats.Name("rapport"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("brokers: connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       cfg.Stream,
		Subjects:   []string{cfg.Subject + ".>"},
		Storage:    jetstream.FileStorage,
		Duplicates: cfg.Duplicates,
	}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("brokers: stream %s: %w", cfg.Stream, err)
	}
	return &JetStreamPublisher{nc: nc, js: js, prefix: cfg.Subject}, nil
}

// Publish implements message.Publisher.
func (p *JetStreamPublisher) Publish(topic string, messages ...*message.Message) error {
	if strings.ContainsAny(topic, " .*>") || topic == "" {
		return fmt.Errorf("brokers: topic %q is not one subject token", topic)
	}
	subject := p.prefix + "." + topic
	for _, m := range messages {
		msg := nats.NewMsg(subject)
		msg.Data = m.Payload
		for k, v := range m.Metadata {
			msg.Header.Set(k, v)
		}
		msg.Header.Set(jetstream.MsgIDHeader, m.UUID)
		ctx := m.Context()
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
		}
		if _, err := p.js.PublishMsg(ctx, msg); err != nil {
			return fmt.Errorf("brokers: publish %s to %s: %w", m.UUID, subject, err)
		}
	}
	return nil
}

// Close implements message.Publisher.
func (p *JetStreamPublisher) Close() error {
	return p.nc.Drain()
}
