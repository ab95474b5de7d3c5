package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
)

// Decorator wraps a Handler with a cross-cutting concern.
type Decorator func(Handler) Handler

// Decorate applies decorators, the first outermost.
func Decorate(h Handler, decorators ...Decorator) Handler {
	for i := len(decorators) - 1; i >= 0; i-- {
		h = decorators[i](h)
	}
	return h
}

// CommandName is the name of a command for logs and metrics:
// "RegisterCustomer", "LogContact", …
func CommandName(cmd domain.Command) string {
	name := fmt.Sprintf("%T", cmd)
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '.' {
			return name[i+1:]
		}
	}
	return name
}

// WithLogging logs each command's outcome: rejections by the domain at
// debug level (they are the client's business), failures at error level.
func WithLogging(logger *slog.Logger) Decorator {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, req Request) (Result, error) {
			start := time.Now()
			res, err := next.Handle(ctx, req)
			attrs := []any{"command", CommandName(req.Command)}
			// A refused or failed command has no result: name the customer
			// the request addressed, and no customer rather than the zero
			// id when neither says (a registration that failed).
			customerID := res.CustomerID
			if customerID == uuid.Nil {
				customerID = req.CustomerID
			}
			if customerID != uuid.Nil {
				attrs = append(attrs, "customer_id", customerID)
			}
			attrs = append(attrs,
				"command_id", req.CommandID,
				"actor", req.Actor,
				"correlation_id", req.CorrelationID,
				"duration", time.Since(start),
			)
			switch Outcome(res, err) {
			case "failed":
				logger.ErrorContext(ctx, "command failed", append(attrs, "err", err)...)
			case "refused":
				logger.DebugContext(ctx, "command refused", append(attrs, "reason", err)...)
			default:
				logger.DebugContext(ctx, "command handled", append(attrs, "revision", res.Revision, "appended", res.Appended, "replayed", res.Replayed)...)
			}
			return res, err
		})
	}
}

// Metrics records what the command side does; infra/app implements it
// with Prometheus. It is declared here, where it is used, so the
// application layer does not depend on a metrics library.
type Metrics interface {
	// CommandHandled records one command: its name, outcome (accepted,
	// noop, replayed, refused or failed) and duration.
	CommandHandled(command, outcome string, d time.Duration)
	// Appended records one append to the event store.
	Appended(events int, d time.Duration, err error)
}

// WithMetrics records each command's outcome and duration.
func WithMetrics(m Metrics) Decorator {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, req Request) (Result, error) {
			start := time.Now()
			res, err := next.Handle(ctx, req)
			m.CommandHandled(CommandName(req.Command), Outcome(res, err), time.Since(start))
			return res, err
		})
	}
}

// Outcome names how a command ended, for logs and metrics.
func Outcome(res Result, err error) string {
	var domainErr *domain.Error
	var mismatch *RevisionMismatchError
	switch {
	case err == nil && res.Replayed:
		return "replayed"
	case err == nil && res.Appended == 0:
		return "noop"
	case err == nil:
		return "accepted"
	case errors.As(err, &domainErr), errors.As(err, &mismatch), errors.Is(err, ErrIdempotencyKeyReused), errors.Is(err, ErrTooManyConflicts):
		return "refused"
	}
	return "failed"
}
