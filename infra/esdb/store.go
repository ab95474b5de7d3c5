// Package esdb implements the event-store port (domain/eventstore) on
// EventStoreDB, Rapport's production store, through the official Go client.
//
// The client is used as it actually behaves rather than as documented: its
// errors are matched with errors.As (FromError misses wrapped ones), it
// never resubscribes by itself (subscriptions do, in Next), and its
// connection handling ignores contexts, dies after a failed rediscovery and
// panics when closed under a waiting call (client.go works around all
// three). EventStoreDB's system events ($-prefixed streams and types) are
// kept away from the port's consumers.
package esdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// Store is an eventstore.Store on EventStoreDB. It is safe for concurrent
// use.
type Store struct {
	cfg  Config
	conf esdbclient.Configuration // parsed once, copied into every client
	log  *slog.Logger

	mu     sync.Mutex
	ref    *clientRef
	closed bool
}

var _ eventstore.Store = (*Store)(nil)

// errClosed is returned by every operation after Close.
var errClosed = errors.New("esdb: store closed")

// New returns a store for cfg. It does no network I/O: the client connects
// on first use.
func New(cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conf, err := esdbclient.ParseConnectionString(cfg.ConnectionString)
	if err != nil {
		return nil, fmt.Errorf("esdb: %w", err)
	}
	conf.Logger = clientLogger(cfg.Logger)
	conf.MaxDiscoverAttempts = discoverForever
	s := &Store{cfg: cfg, conf: *conf, log: cfg.Logger}
	if s.ref, err = s.newClient(); err != nil {
		return nil, err
	}
	return s, nil
}

// Close releases the connection once no call is using it. Subscriptions
// end with an error.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	r := s.ref
	idle := retire(r)
	s.mu.Unlock()
	if idle {
		return r.c.Close()
	}
	return nil
}

// classify maps a client error onto the port's errors, wrapping both so that
// errors.Is finds the port's sentinel and errors.As the client's *Error.
func classify(ctx context.Context, op string, err error) error {
	if errors.Is(err, errClosed) {
		return err
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			// The node did not answer in time: the outcome is unknown.
			return fmt.Errorf("esdb: %s: %w: %w", op, eventstore.ErrUnavailable, ctxErr)
		}
		return fmt.Errorf("esdb: %s: %w", op, ctxErr)
	}
	var e *esdbclient.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case esdbclient.ErrorCodeConnectionClosed, esdbclient.ErrorUnavailable, esdbclient.ErrorCodeDeadlineExceeded,
			esdbclient.ErrorAborted, esdbclient.ErrorCodeNotLeader:
			return fmt.Errorf("esdb: %s: %w: %w", op, eventstore.ErrUnavailable, err)
		}
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return fmt.Errorf("esdb: %s: %w: %w", op, eventstore.ErrUnavailable, err)
	}
	// A gRPC stream whose connection broke answers Send with a bare io.EOF
	// (the cause only reaches Recv), which the client wraps with code 0:
	// the request may or may not have reached the node, so the outcome is
	// unknown, as for a closed connection (TestRestartUnderLoad met it).
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("esdb: %s: %w: %w", op, eventstore.ErrUnavailable, err)
	}
	return fmt.Errorf("esdb: %s: %w", op, err)
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if err := validate(stream, events); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("esdb: append to %q: %w", stream, err)
	}
	data := make([]esdbclient.EventData, len(events))
	for i, e := range events {
		data[i] = esdbclient.EventData{
			EventID:     e.ID, // never uuid.Nil (validated): the client would invent one
			EventType:   e.Type,
			ContentType: esdbclient.ContentTypeJson,
			Data:        e.Data,
			Metadata:    e.Metadata,
		}
	}
	opts := esdbclient.AppendToStreamOptions{ExpectedRevision: toExpected(expected)}
	res, err := do(ctx, s, func(c *esdbclient.Client) (*esdbclient.WriteResult, error) {
		return c.AppendToStream(ctx, stream, opts, data...)
	})
	if err != nil {
		var e *esdbclient.Error
		if errors.As(err, &e) && e.Code() == esdbclient.ErrorCodeWrongExpectedVersion {
			return eventstore.AppendResult{}, s.wrongExpected(ctx, stream, expected, e)
		}
		return eventstore.AppendResult{}, classify(ctx, fmt.Sprintf("append to %q", stream), err)
	}
	// NextExpectedVersion is the revision of the last event written, despite
	// its name; the positions are those of the last event too.
	return eventstore.AppendResult{Revision: res.NextExpectedVersion, Position: eventstore.Position(res.CommitPosition)}, nil
}

// validate adds to eventstore.ValidateAppend the JSON check: EventStoreDB
// stores any bytes, but the port promises JSON documents and the Postgres
// store cannot store anything else.
func validate(stream string, events []eventstore.EventData) error {
	if err := eventstore.ValidateAppend(stream, events); err != nil {
		return err
	}
	for i, e := range events {
		if !json.Valid(e.Data) {
			return fmt.Errorf("%w: event %d: data is not JSON", eventstore.ErrInvalidAppend, i)
		}
		if len(e.Metadata) > 0 && !json.Valid(e.Metadata) {
			return fmt.Errorf("%w: event %d: metadata is not JSON", eventstore.ErrInvalidAppend, i)
		}
	}
	return nil
}

func toExpected(e eventstore.ExpectedRevision) esdbclient.ExpectedRevision {
	switch {
	case e.IsNoStream():
		return esdbclient.NoStream{}
	case e.IsStreamExists():
		return esdbclient.StreamExists{}
	}
	if rev, ok := e.Revision(); ok {
		return esdbclient.Revision(rev)
	}
	return esdbclient.Any{}
}

// currentRevision recovers the stream's revision from the client's message,
// "wrong expected version: expecting '<exp>' but got '<no_stream|n>'",
// which is all the client keeps of the server's answer.
var currentRevision = regexp.MustCompile(`but got '(no_stream|\d+)'`)

func (s *Store) wrongExpected(ctx context.Context, stream string, expected eventstore.ExpectedRevision, e *esdbclient.Error) error {
	wrong := &eventstore.WrongExpectedRevisionError{Stream: stream, Expected: expected, Current: eventstore.NoRevision}
	if m := currentRevision.FindStringSubmatch(e.Error()); m != nil {
		if m[1] == "no_stream" {
			return wrong
		}
		if n, err := strconv.ParseInt(m[1], 10, 64); err == nil {
			wrong.Current = n
			return wrong
		}
	}
	// The message changed shape: ask the stream itself.
	last, err := s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.LastRevision, Limit: 1})
	switch {
	case errors.Is(err, eventstore.ErrStreamNotFound):
	case err != nil:
		return fmt.Errorf("esdb: append to %q: %w (reading the current revision: %v)", stream, wrong, err)
	case len(last) > 0:
		wrong.Current = int64(last[0].Revision)
	}
	return wrong
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	op := fmt.Sprintf("read stream %q", stream)
	if opts.Limit < 1 {
		return nil, fmt.Errorf("esdb: %s: limit must be positive", op)
	}
	direction := esdbclient.Forwards
	if opts.Direction == eventstore.Backwards {
		direction = esdbclient.Backwards
	}
	var from esdbclient.StreamPosition = esdbclient.Revision(opts.From)
	if opts.From > math.MaxInt64 { // the server rejects revisions beyond int64
		if direction == esdbclient.Forwards && opts.From != eventstore.LastRevision {
			_, err := s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.LastRevision, Limit: 1})
			return nil, err // nothing after the end, or not found
		}
		// Forwards from the last event is the last event alone; the server
		// refuses End forwards, so read it backwards.
		from, direction = esdbclient.End{}, esdbclient.Backwards
		if opts.Direction == eventstore.Forwards {
			opts.Limit = 1
		}
	}
	out, err := do(ctx, s, func(c *esdbclient.Client) ([]eventstore.RecordedEvent, error) {
		var out []eventstore.RecordedEvent
		rs, err := c.ReadStream(ctx, stream, esdbclient.ReadStreamOptions{Direction: direction, From: from}, uint64(opts.Limit))
		if err != nil {
			return nil, err
		}
		err = drain(rs, func(e *esdbclient.RecordedEvent) bool {
			out = append(out, toRecorded(e))
			return true
		})
		return out, err
	})
	if err != nil {
		var e *esdbclient.Error
		if errors.As(err, &e) && e.Code() == esdbclient.ErrorCodeResourceNotFound {
			return nil, fmt.Errorf("esdb: %s: %w", op, eventstore.ErrStreamNotFound)
		}
		return nil, classify(ctx, op, err)
	}
	return out, nil
}

// drain reads rs to the end, passing each event to keep until it returns
// false.
func drain(rs *esdbclient.ReadStream, keep func(*esdbclient.RecordedEvent) bool) error {
	defer rs.Close()
	for {
		re, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !keep(re.OriginalEvent()) {
			return nil
		}
	}
}

// ReadAll implements eventstore.Store. EventStoreDB includes the event at
// From when reading forwards, so the boundary is skipped here; system events
// are skipped too, paging on until Limit events or the end of the log.
func (s *Store) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error) {
	if opts.Limit < 1 {
		return nil, errors.New("esdb: read all: limit must be positive")
	}
	forwards := opts.Direction != eventstore.Backwards
	var out []eventstore.RecordedEvent
	err := s.scanAll(ctx, forwards, opts.From, func(e *esdbclient.RecordedEvent) bool {
		if !isSystem(e) {
			out = append(out, toRecorded(e))
		}
		return len(out) < opts.Limit
	}, opts.Limit)
	if err != nil {
		return nil, err // out may still be written by an abandoned read
	}
	return out, nil
}

// HeadPosition returns the position of the last event that is not a system
// event, or eventstore.Start when there is none. The projection engine uses
// it to measure lag.
func (s *Store) HeadPosition(ctx context.Context) (eventstore.Position, error) {
	head := eventstore.Start
	err := s.scanAll(ctx, false, eventstore.End, func(e *esdbclient.RecordedEvent) bool {
		if isSystem(e) {
			return true
		}
		head = eventstore.Position(e.Position.Commit)
		return false
	}, s.cfg.PageSize)
	if err != nil {
		return eventstore.Start, err
	}
	return head, nil
}

// scanAll reads $all strictly after (forwards) or before (backwards) from,
// page by page, until visit returns false or the log ends. hint is how many
// events the caller expects to need, to size the first page.
func (s *Store) scanAll(ctx context.Context, forwards bool, from eventstore.Position, visit func(*esdbclient.RecordedEvent) bool, hint int) error {
	if (forwards && from == eventstore.End) || (!forwards && from == eventstore.Start) {
		return nil
	}
	direction := esdbclient.Forwards
	if !forwards {
		direction = esdbclient.Backwards
	}
	_, err := do(ctx, s, func(c *esdbclient.Client) (struct{}, error) {
		for {
			var pos esdbclient.AllPosition = esdbclient.Position{Commit: uint64(from), Prepare: uint64(from)}
			switch {
			case forwards && from == eventstore.Start:
				pos = esdbclient.Start{}
			case !forwards && from == eventstore.End:
				pos = esdbclient.End{}
			}
			page := min(s.cfg.PageSize, hint+1) // +1: the boundary event forwards
			rs, err := c.ReadAll(ctx, esdbclient.ReadAllOptions{Direction: direction, From: pos}, uint64(page))
			if err != nil {
				return struct{}{}, err
			}
			n, more := 0, true
			err = drain(rs, func(e *esdbclient.RecordedEvent) bool {
				n++
				p := eventstore.Position(e.Position.Commit)
				if (forwards && p <= from) || (!forwards && p >= from) {
					return true // the boundary (or anything the server should not have sent)
				}
				from = p
				more = visit(e)
				return more
			})
			if err != nil || !more || n < page {
				return struct{}{}, err
			}
			hint = s.cfg.PageSize
		}
	})
	if err != nil {
		return classify(ctx, "read all", err)
	}
	return nil
}

// isSystem reports an event that EventStoreDB writes for itself (stats,
// users, projections, stream metadata): consumers of the port never see
// them.
func isSystem(e *esdbclient.RecordedEvent) bool {
	return strings.HasPrefix(e.StreamID, "$") || strings.HasPrefix(e.EventType, "$")
}

func toRecorded(e *esdbclient.RecordedEvent) eventstore.RecordedEvent {
	return eventstore.RecordedEvent{
		ID:         e.EventID,
		Type:       e.EventType,
		Data:       e.Data,
		Metadata:   e.UserMetadata,
		Stream:     e.StreamID,
		Revision:   e.EventNumber,
		Position:   eventstore.Position(e.Position.Commit),
		RecordedAt: e.CreatedDate,
	}
}
