package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

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
			attrs := []any{
				"command", CommandName(req.Command),
				"customer_id", res.CustomerID,
				"command_id", req.CommandID,
				"actor", req.Actor,
				"correlation_id", req.CorrelationID,
				"duration", time.Since(start),
			}
			var domainErr *domain.Error
			var mismatch *RevisionMismatchError
			switch {
			case err == nil:
				logger.DebugContext(ctx, "command handled", append(attrs, "revision", res.Revision, "appended", res.Appended, "replayed", res.Replayed)...)
			case errors.As(err, &domainErr), errors.As(err, &mismatch), errors.Is(err, ErrIdempotencyKeyReused):
				logger.DebugContext(ctx, "command refused", append(attrs, "reason", err)...)
			default:
				logger.ErrorContext(ctx, "command failed", append(attrs, "err", err)...)
			}
			return res, err
		})
	}
}
