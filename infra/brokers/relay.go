package brokers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rapport-crm/rapport/readmodels/feed"
)

// RelayConfig configures a Relay.
type RelayConfig struct {
	// Name identifies the relay's checkpoint and lock ("nats", "rabbitmq").
	Name      string
	Pool      *pgxpool.Pool
	Publisher message.Publisher
	// Batch bounds the events read and published before the checkpoint
	// moves. Default 500.
	Batch int
	// Poll is how often an idle relay looks at the feed (default 200 ms);
	// WaitForFeed, when set, wakes it sooner.
	Poll        time.Duration
	WaitForFeed func(ctx context.Context, after uint64)
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
}

// Relay publishes the feed to one broker, at least once, in log order.
type Relay struct {
	cfg       RelayConfig
	published prometheus.Counter
	failures  prometheus.Counter
}

// NewRelay returns a relay; Run starts it.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.Name == "" || cfg.Pool == nil || cfg.Publisher == nil {
		return nil, errors.New("brokers: Name, Pool and Publisher are required")
	}
	if cfg.Batch == 0 {
		cfg.Batch = 500
	}
	if cfg.Poll == 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Relay{cfg: cfg,
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "rapport_broker_published_total", Help: "Integration events published to a broker.", ConstLabels: prometheus.Labels{"relay": cfg.Name}}),
		failures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "rapport_broker_publish_failures_total", Help: "Failed publishing rounds (retried).", ConstLabels: prometheus.Labels{"relay": cfg.Name}}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{r.published, r.failures} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

const lockNamespace int32 = 0x52425200 // "RBR\0"

// Run publishes until ctx ends, standing by while another process holds
// the relay's lock.
func (r *Relay) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := r.runLocked(ctx); err != nil && ctx.Err() == nil {
			r.failures.Inc()
			r.cfg.Logger.Warn("brokers: relay stopped; retrying", "relay", r.cfg.Name, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (r *Relay) runLocked(ctx context.Context) error {
	conn, err := r.cfg.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, lockNamespace, r.cfg.Name).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return nil
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, hashtext($2))`, lockNamespace, r.cfg.Name)
	}()
	if _, err := conn.Exec(ctx, `INSERT INTO rapport.feed_relays (name) VALUES ($1) ON CONFLICT DO NOTHING`, r.cfg.Name); err != nil {
		return err
	}
	var cp int64
	if err := conn.QueryRow(ctx, `SELECT checkpoint FROM rapport.feed_relays WHERE name = $1`, r.cfg.Name).Scan(&cp); err != nil {
		return err
	}
	checkpoint := uint64(cp)
	for ctx.Err() == nil {
		start := time.Now()
		events, err := feed.After(ctx, conn, checkpoint, nil, r.cfg.Batch)
		if err != nil {
			return err
		}
		for _, e := range events {
			payload, err := json.Marshal(e)
			if err != nil {
				return err
			}
			msg := message.NewMessage(e.ID.String(), payload)
			msg.Metadata.Set("type", e.Type)
			msg.Metadata.Set("customer_id", e.CustomerID.String())
			msg.Metadata.Set("position", strconv.FormatUint(e.Position, 10))
			msg.Metadata.Set("revision", strconv.FormatUint(e.Revision, 10))
			msg.SetContext(ctx)
			// The topic is the customer: the routing key, the subject's
			// last token.
			if err := r.cfg.Publisher.Publish(e.CustomerID.String(), msg); err != nil {
				return fmt.Errorf("brokers: %s: %w", r.cfg.Name, err)
			}
			r.published.Inc()
		}
		if len(events) > 0 {
			checkpoint = events[len(events)-1].Position
			if _, err := conn.Exec(ctx, `UPDATE rapport.feed_relays SET checkpoint = $2, updated_at = now() WHERE name = $1`, r.cfg.Name, int64(checkpoint)); err != nil {
				return err
			}
			if len(events) == r.cfg.Batch {
				continue
			}
		}
		if r.cfg.WaitForFeed != nil {
			wctx, cancel := context.WithTimeout(ctx, r.cfg.Poll)
			r.cfg.WaitForFeed(wctx, checkpoint)
			cancel()
			if rest := 50*time.Millisecond - time.Since(start); rest > 0 {
				time.Sleep(rest)
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(r.cfg.Poll):
		}
	}
	return nil
}

// Checkpoint is the position the relay has published through.
func Checkpoint(ctx context.Context, pool *pgxpool.Pool, name string) (uint64, error) {
	var cp int64
	err := pool.QueryRow(ctx, `SELECT coalesce((SELECT checkpoint FROM rapport.feed_relays WHERE name = $1), 0)`, name).Scan(&cp)
	return uint64(cp), err
}
