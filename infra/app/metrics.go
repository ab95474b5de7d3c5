package app

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// commandMetrics implements commands.Metrics with Prometheus.
type commandMetrics struct {
	commands       *prometheus.CounterVec
	commandSeconds *prometheus.HistogramVec
	appends        *prometheus.CounterVec
	appendSeconds  prometheus.Histogram
	appendedEvents prometheus.Counter
}

var _ commands.Metrics = (*commandMetrics)(nil)

var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newCommandMetrics(reg prometheus.Registerer) *commandMetrics {
	m := &commandMetrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rapport_commands_total",
			Help: "Commands handled, by command and outcome (accepted, noop, replayed, refused, failed).",
		}, []string{"command", "outcome"}),
		commandSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rapport_command_duration_seconds",
			Help:    "Time to handle a command, from load to append.",
			Buckets: latencyBuckets,
		}, []string{"command"}),
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rapport_event_store_appends_total",
			Help: "Appends to the event store, by outcome (ok, conflict, unavailable, error).",
		}, []string{"outcome"}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rapport_event_store_append_duration_seconds",
			Help:    "Time of one append to the event store.",
			Buckets: latencyBuckets,
		}),
		appendedEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rapport_event_store_appended_events_total",
			Help: "Events appended to the event store.",
		}),
	}
	reg.MustRegister(m.commands, m.commandSeconds, m.appends, m.appendSeconds, m.appendedEvents)
	return m
}

func (m *commandMetrics) CommandHandled(command, outcome string, d time.Duration) {
	m.commands.WithLabelValues(command, outcome).Inc()
	m.commandSeconds.WithLabelValues(command).Observe(d.Seconds())
}

func (m *commandMetrics) Appended(events int, d time.Duration, err error) {
	var wrong *eventstore.WrongExpectedRevisionError
	outcome := "ok"
	switch {
	case err == nil:
		m.appendedEvents.Add(float64(events))
	case errors.As(err, &wrong):
		outcome = "conflict"
	case errors.Is(err, eventstore.ErrUnavailable):
		outcome = "unavailable"
	default:
		outcome = "error"
	}
	m.appends.WithLabelValues(outcome).Inc()
	m.appendSeconds.Observe(d.Seconds())
}
