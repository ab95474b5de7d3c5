package projections

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// The read side's own error taxonomy: read models live in PostgreSQL, so
// the projections package is where PostgreSQL errors are judged worth a
// retry. The Postgres event store adapter reuses IsConnectionError to mark
// its failures eventstore.ErrUnavailable.

// IsTransient reports whether err is worth retrying as it is: a broken or
// refused connection, a serialization failure or a deadlock, or a server
// out of resources (disk full, out of memory: class 53) or failing I/O
// (class 58). Those say nothing about the event being applied, so they
// must not park its stream: every stream would fail the same way. Everything
// else (an undecodable event, a data or constraint error, a bug) is
// permanent and parks the event's stream, because retrying would fail the
// same way forever.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errLockLost) {
		return false
	}
	if errors.Is(err, eventstore.ErrUnavailable) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"55P03": // lock_not_available
			return true
		}
		if strings.HasPrefix(pgErr.Code, "53") || strings.HasPrefix(pgErr.Code, "58") {
			return true // insufficient resources, system error
		}
	}
	return IsConnectionError(err)
}

// IsConnectionError reports errors after which the database may or may
// not have done the work: the connection broke, could not be made, or the
// server is going away. Retrying is worth it; the outcome of a write that
// failed this way is unknown.
func IsConnectionError(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", // shutdown, crash, cannot connect now
			pgErr.Code == "53300": // too many connections
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	// pgx reports some broken connections only in words.
	msg := err.Error()
	for _, s := range []string{"conn closed", "connection reset", "broken pipe", "connection refused", "unexpected EOF", "conn busy"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
