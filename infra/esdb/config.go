package esdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
)

// Config configures the EventStoreDB store.
type Config struct {
	// ConnectionString locates EventStoreDB, in the official client's URL
	// format. Examples:
	//
	//	esdb://admin:changeit@esdb.internal:2113                 secure single node
	//	esdb+discover://admin:changeit@cluster.internal:2113     cluster, gossip via DNS
	//	esdb://node1:2113,node2:2113,node3:2113?tls=true         cluster, gossip seeds
	//	esdb://localhost:2113?tls=false                          insecure development node
	//
	// TLS is on unless tls=false, and the client sends the credentials only
	// over TLS. Settings such as tlsCAFile, tlsVerifyCert, nodePreference,
	// keepAliveInterval and defaultDeadline (the per-append timeout, 10 s by
	// default) go in the query string. maxDiscoverAttempts is overridden:
	// the store keeps discovering until the node answers, because a client
	// whose discovery gives up is dead for good; contexts bound the wait.
	ConnectionString string

	// ReconnectMinBackoff and ReconnectMaxBackoff bound the exponential
	// backoff between attempts to re-establish a dropped subscription: the
	// client does not resubscribe by itself, and retrying in a tight loop
	// against a restarting node would only slow its recovery. The first
	// attempt after a healthy period is immediate. Defaults: 100 ms and 5 s.
	ReconnectMinBackoff time.Duration
	ReconnectMaxBackoff time.Duration

	// PageSize is how many events one read request asks for when ReadAll
	// or HeadPosition have to page past system events. Default: 256.
	PageSize int

	// Logger receives the store's logs. The client's own logs are routed to
	// it at debug level: the client logs at error level for conditions that
	// the store handles (dropped subscriptions, reconnections). Default:
	// slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.ReconnectMinBackoff == 0 {
		c.ReconnectMinBackoff = 100 * time.Millisecond
	}
	if c.ReconnectMaxBackoff == 0 {
		c.ReconnectMaxBackoff = 5 * time.Second
	}
	if c.PageSize == 0 {
		c.PageSize = 256
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.ConnectionString == "" {
		errs = append(errs, errors.New("connection string is empty"))
	} else if _, err := esdbclient.ParseConnectionString(c.ConnectionString); err != nil {
		errs = append(errs, fmt.Errorf("connection string: %w", err))
	}
	if c.ReconnectMinBackoff <= 0 || c.ReconnectMaxBackoff < c.ReconnectMinBackoff {
		errs = append(errs, fmt.Errorf("reconnect backoff must satisfy 0 < min (%v) <= max (%v)", c.ReconnectMinBackoff, c.ReconnectMaxBackoff))
	}
	if c.PageSize < 1 || c.PageSize > 4096 {
		errs = append(errs, fmt.Errorf("page size %d is outside 1..4096", c.PageSize))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("esdb: invalid config: %w", err)
	}
	return nil
}

// clientLogger routes the client's log.Printf-style logging to slog.
func clientLogger(l *slog.Logger) esdbclient.LoggingFunc {
	return func(level esdbclient.LogLevel, format string, args ...any) {
		if !l.Enabled(context.Background(), slog.LevelDebug) {
			return
		}
		// Configuration.applyLogger passes its arguments as one slice.
		if len(args) == 1 {
			if inner, ok := args[0].([]any); ok {
				args = inner
			}
		}
		l.Debug("esdb client: "+fmt.Sprintf(format, args...), "client_level", level)
	}
}
