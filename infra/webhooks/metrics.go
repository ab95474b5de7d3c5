package webhooks

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the deliverer's Prometheus metrics, per subscription.
type metrics struct {
	deliveries *prometheus.CounterVec
	backlog    *prometheus.GaugeVec
	age        *prometheus.GaugeVec
	duration   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rapport_webhook_deliveries_total",
			Help: "Webhook delivery attempts by subscription and outcome (delivered, failed)."}, []string{"subscription", "outcome"}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rapport_webhook_backlog",
			Help: "Webhook deliveries not yet delivered, by subscription."}, []string{"subscription"}),
		age: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rapport_webhook_oldest_pending_age_seconds",
			Help: "Age of the oldest undelivered webhook delivery, by subscription (0 when none)."}, []string{"subscription"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rapport_webhook_attempt_duration_seconds",
			Help: "Duration of webhook delivery attempts.", Buckets: prometheus.DefBuckets}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.backlog, m.age, m.duration} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return nil, err
			}
		}
	}
	return m, nil
}

// metricsLoop refreshes the backlog and age gauges every few seconds.
func (d *Deliverer) metricsLoop(ctx context.Context) {
	for ctx.Err() == nil {
		if err := d.refreshGauges(ctx); err != nil && ctx.Err() == nil {
			d.cfg.Logger.Debug("webhooks: metrics", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
}

func (d *Deliverer) refreshGauges(ctx context.Context) error {
	rows, err := d.cfg.Pool.Query(ctx, `
		SELECT s.id, count(d.id), coalesce(extract(epoch FROM now() - min(d.created_at)), 0)::float8
		FROM rapport.webhook_subscriptions s
		LEFT JOIN rapport.webhook_deliveries d ON d.subscription_id = s.id AND NOT d.delivered
		GROUP BY s.id`)
	if err != nil {
		return err
	}
	type gauge struct {
		id      uuid.UUID
		backlog int64
		age     float64
	}
	gauges, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (gauge, error) {
		var g gauge
		return g, r.Scan(&g.id, &g.backlog, &g.age)
	})
	if err != nil {
		return err
	}
	d.metrics.backlog.Reset()
	d.metrics.age.Reset()
	for _, g := range gauges {
		d.metrics.backlog.WithLabelValues(g.id.String()).Set(float64(g.backlog))
		d.metrics.age.WithLabelValues(g.id.String()).Set(g.age)
	}
	return nil
}
