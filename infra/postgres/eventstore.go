package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/projections"
)

// notifyChannel is the LISTEN/NOTIFY channel that wakes subscribers of
// other processes when events were appended.
const notifyChannel = "eventstore_appended"

// EventStoreConfig tunes the Postgres event store.
type EventStoreConfig struct {
	// PageSize is how many events a subscription reads per query while it
	// catches up. Default 1000.
	PageSize int
	// PollInterval bounds how long an idle subscription waits without a
	// notification before it looks for new events anyway; it is the
	// fallback when the LISTEN connection is down. Default 1 s.
	PollInterval time.Duration
	// CheckpointInterval is how often an idle subscription with a stream
	// filter reports how far it has looked, so that its consumer can store
	// a resume position even when no event matches. Default 1 s.
	CheckpointInterval time.Duration
	// Logger receives connection trouble. Default: discard.
	Logger *slog.Logger
	// TightHorizonAfter is how long committed events may wait above the
	// horizon before a subscription computes the tighter horizon that
	// leaves out transactions which cannot append here (other databases',
	// projectors'; migration 00025). That costs a read of pg_stat_activity
	// (a few hundred microseconds to milliseconds), so the cheap horizon
	// serves while waits are as short as an append's. Default 100 ms.
	TightHorizonAfter time.Duration
	// Committers bounds the append transactions in flight at once; appends
	// that arrive while that many are committing wait and then commit
	// together, in one transaction (group commit, see groupcommit.go).
	// Default 8; negative: no grouping, every append commits alone.
	Committers int
}

func (c *EventStoreConfig) setDefaults() {
	if c.PageSize == 0 {
		c.PageSize = 1000
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = time.Second
	}
	if c.TightHorizonAfter == 0 {
		c.TightHorizonAfter = 100 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Committers == 0 {
		c.Committers = defaultCommitters
	}
}

// Validate reports a configuration that cannot work.
func (c EventStoreConfig) Validate() error {
	if c.PageSize < 1 {
		return errors.New("postgres: PageSize must be positive")
	}
	if c.PollInterval <= 0 || c.CheckpointInterval <= 0 {
		return errors.New("postgres: PollInterval and CheckpointInterval must be positive")
	}
	return nil
}

// EventStore is the embedded event store: eventstore.Store on PostgreSQL.
//
// Appends to one stream are serialised by a transaction-scoped advisory
// lock and numbered by the appending transaction's id (xid). Readers of the
// global log only read below the horizon, the first xid still in flight:
// an append that got a lower position but commits late is therefore never
// skipped, it holds the readers back until it commits. ARCHITECTURE.md
// explains the mechanism and its cost.
type EventStore struct {
	pool *pgxpool.Pool
	cfg  EventStoreConfig

	// appended wakes this process's subscriptions after a local append or
	// a notification from another process.
	appended eventstore.Signal
	// notify asks the notifier to tell other processes; its buffer of one
	// coalesces a burst of appends into one NOTIFY.
	notify chan struct{}

	startListener sync.Once
	ctx           context.Context
	cancel        context.CancelFunc
	wg            sync.WaitGroup

	// groups forms the group commits of concurrent appends.
	groups grouper

	// ignoreHorizon is for one test only: it proves that the late-commit
	// test fails without the horizon.
	ignoreHorizon bool

	// horizonFloor is the highest horizon this store has read with; see
	// readHorizon.
	horizonFloor atomic.Int64
}

var _ eventstore.Store = (*EventStore)(nil)

// NewEventStore returns an event store on pool, whose schema must be
// migrated. Close stops its background work; it does not close the pool.
func NewEventStore(pool *pgxpool.Pool, cfg EventStoreConfig) (*EventStore, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &EventStore{pool: pool, cfg: cfg, notify: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
	s.groups.committers = cfg.Committers
	s.wg.Add(1)
	go s.runNotifier()
	return s, nil
}

// Close stops the notifier and the listener.
func (s *EventStore) Close() {
	s.cancel()
	s.wg.Wait()
}

// expectedCode encodes an expected revision the way eventstore.append
// takes it (EventStoreDB's own numbers).
func expectedCode(e eventstore.ExpectedRevision) int64 {
	switch {
	case e.IsNoStream():
		return -1
	case e.IsAny():
		return -2
	case e.IsStreamExists():
		return -4
	}
	rev, _ := e.Revision()
	if rev > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(rev)
}

// Append implements eventstore.Store. An append that finds a committer
// free commits alone, as one statement; while Committers appends are
// committing, later ones wait and commit together (groupcommit.go).
func (s *EventStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateAppend(stream, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.groups.append(ctx, s, &appendRequest{stream: stream, expected: expected, events: events})
}

// appendAlone commits one append in its own transaction.
func (s *EventStore) appendAlone(ctx context.Context, r *appendRequest) (eventstore.AppendResult, error) {
	ids, types, data, metadata := flatten([]*appendRequest{r}, len(r.events))
	var (
		outcome  string
		revision int64
		position *int64
	)
	err := s.pool.QueryRow(ctx,
		`SELECT outcome, revision, position FROM eventstore.append($1, $2, $3, $4, $5::json[], $6::json[])`,
		r.stream, expectedCode(r.expected), ids, types, data, metadata,
	).Scan(&outcome, &revision, &position)
	if err != nil {
		return eventstore.AppendResult{}, classify("append", err)
	}
	if outcome == "ok" {
		s.signalAppended()
	}
	return r.result(outcome, revision, position)
}

// signalAppended wakes this process's subscriptions and asks the notifier
// to tell the others.
func (s *EventStore) signalAppended() {
	s.appended.Broadcast()
	select {
	case s.notify <- struct{}{}:
	default: // a notification is already pending; it covers this append
	}
}

const eventColumns = `position, stream, revision, event_id, event_type, data, metadata, recorded_at`

func scanEvent(row pgx.Row) (eventstore.RecordedEvent, error) {
	var (
		e        eventstore.RecordedEvent
		position int64
		revision int64
	)
	if err := row.Scan(&position, &e.Stream, &revision, &e.ID, &e.Type, &e.Data, &e.Metadata, &e.RecordedAt); err != nil {
		return e, err
	}
	e.Position, e.Revision = eventstore.Position(position), uint64(revision)
	return e, nil
}

func collectEvents(rows pgx.Rows) ([]eventstore.RecordedEvent, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (eventstore.RecordedEvent, error) { return scanEvent(row) })
}

// clampInt64 maps the port's unsigned revisions and positions onto
// Postgres bigint; the largest values mean "the end".
func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// ReadStream implements eventstore.Store. One statement reads the page and
// whether the stream exists, in one snapshot: the common case of a
// command layer catching up on a cached state ("anything after revision
// n?") is a single round trip that usually returns nothing.
func (s *EventStore) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	if opts.Limit < 1 {
		return nil, errors.New("postgres: read stream: limit must be positive")
	}
	page := `SELECT * FROM eventstore.events WHERE stream = $1 AND revision >= $2 ORDER BY revision LIMIT $3`
	if opts.Direction == eventstore.Backwards {
		page = `SELECT * FROM eventstore.events WHERE stream = $1 AND revision <= $2 ORDER BY revision DESC LIMIT $3`
	}
	rows, err := s.pool.Query(ctx, `
		SELECT h.exists, e.position, e.stream, e.revision, e.event_id, e.event_type, e.data, e.metadata, e.recorded_at
		FROM (SELECT EXISTS (SELECT 1 FROM eventstore.events WHERE stream = $1) AS exists) h
		LEFT JOIN LATERAL (`+page+`) e ON true`,
		stream, clampInt64(opts.From), opts.Limit)
	if err != nil {
		return nil, classify("read stream", err)
	}
	defer rows.Close()
	var (
		events []eventstore.RecordedEvent
		exists bool
	)
	for rows.Next() {
		var (
			position, revision *int64
			e                  eventstore.RecordedEvent
			streamName, typ    *string
			id                 *uuid.UUID
			recordedAt         *time.Time
		)
		if err := rows.Scan(&exists, &position, &streamName, &revision, &id, &typ, &e.Data, &e.Metadata, &recordedAt); err != nil {
			return nil, classify("read stream", err)
		}
		if position == nil {
			continue // no event: the row only says whether the stream exists
		}
		e.Position, e.Stream, e.Revision, e.ID, e.Type, e.RecordedAt = eventstore.Position(*position), *streamName, uint64(*revision), *id, *typ, *recordedAt
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("read stream", err)
	}
	if !exists {
		return nil, fmt.Errorf("%w: %s", eventstore.ErrStreamNotFound, stream)
	}
	return events, nil
}

// ReadAll implements eventstore.Store. It reads below the horizon only, so
// that a reader paging through the log never passes an append that is
// still committing; an event becomes visible to it once every write
// transaction older than its own has ended.
func (s *EventStore) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error) {
	if opts.Limit < 1 {
		return nil, errors.New("postgres: read all: limit must be positive")
	}
	horizon, err := s.readHorizon(ctx)
	if err != nil {
		return nil, classify("read all", err)
	}
	query := `SELECT ` + eventColumns + ` FROM eventstore.events WHERE position > $1 AND position < $3::bigint ORDER BY position LIMIT $2`
	if opts.Direction == eventstore.Backwards {
		query = `SELECT ` + eventColumns + ` FROM eventstore.events WHERE position < least($1::bigint, $3::bigint) ORDER BY position DESC LIMIT $2`
	}
	rows, err := s.pool.Query(ctx, query, clampInt64(uint64(opts.From)), opts.Limit, horizon)
	if err != nil {
		return nil, classify("read all", err)
	}
	events, err := collectEvents(rows)
	if err != nil {
		return nil, classify("read all", err)
	}
	return events, nil
}

// HeadPosition returns the position of the last event readers can see, or
// eventstore.Start when there is none.
func (s *EventStore) HeadPosition(ctx context.Context) (eventstore.Position, error) {
	horizon, err := s.readHorizon(ctx)
	if err != nil {
		return 0, classify("head position", err)
	}
	var head *int64
	if err := s.pool.QueryRow(ctx, `SELECT max(position) FROM eventstore.events WHERE position < $1::bigint`, horizon).Scan(&head); err != nil {
		return 0, classify("head position", err)
	}
	if head == nil {
		return eventstore.Start, nil
	}
	return eventstore.Position(*head), nil
}

// readHorizon returns the horizon for a read in a later statement:
// eventstore.reader_horizon (migration 00031), which also leaves out the
// in-flight ids that have ended by the time it asks, since the read's own
// snapshot will see how they ended; but never below one this store used
// before. A horizon stays valid for every later snapshot of the database
// (the transactions below it that could append here had all ended, and a
// new one gets a larger id), so the floor costs nothing and guarantees
// that the head never goes back within a process, whatever a later call
// reads of the sessions.
func (s *EventStore) readHorizon(ctx context.Context) (int64, error) {
	if s.ignoreHorizon {
		return math.MaxInt64, nil
	}
	var h int64
	if err := s.pool.QueryRow(ctx, `SELECT greatest($1::bigint, eventstore.reader_horizon())`, s.horizonFloor.Load()).Scan(&h); err != nil {
		return 0, err
	}
	s.raiseHorizonFloor(h)
	return h, nil
}

// raiseHorizonFloor remembers h as a horizon this store has used.
func (s *EventStore) raiseHorizonFloor(h int64) {
	for {
		cur := s.horizonFloor.Load()
		if h <= cur || s.horizonFloor.CompareAndSwap(cur, h) {
			return
		}
	}
}

// LastCommittedPosition returns the position of the last event committed
// (eventstore.Start when there is none), above the horizon too: events
// that readers may not pass yet, because an older transaction is still in
// flight, are in the log all the same.
func (s *EventStore) LastCommittedPosition(ctx context.Context) (eventstore.Position, error) {
	var head *int64
	if err := s.pool.QueryRow(ctx, `SELECT max(position) FROM eventstore.events`).Scan(&head); err != nil {
		return 0, classify("last committed position", err)
	}
	if head == nil {
		return eventstore.Start, nil
	}
	return eventstore.Position(*head), nil
}

// CountAfter counts the events after position that streams with one of the
// prefixes hold (every stream when there is none): a projection's lag.
func (s *EventStore) CountAfter(ctx context.Context, after eventstore.Position, prefixes []string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx,
		`SELECT count(*) FROM eventstore.events WHERE position > $1 AND ($2::text[] IS NULL OR stream LIKE ANY ($2))`,
		clampInt64(uint64(after)), likePatterns(prefixes),
	).Scan(&n)
	if err != nil {
		return 0, classify("count", err)
	}
	return n, nil
}

// likePatterns turns stream prefixes into LIKE patterns, or nil for "all".
func likePatterns(prefixes []string) []string {
	if len(prefixes) == 0 {
		return nil
	}
	escape := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	patterns := make([]string, len(prefixes))
	for i, p := range prefixes {
		patterns[i] = escape.Replace(p) + "%"
	}
	return patterns
}

// classify wraps err with the operation and marks connection failures as
// eventstore.ErrUnavailable, whose outcome callers must treat as unknown.
func classify(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if projections.IsConnectionError(err) {
		return fmt.Errorf("postgres: %s: %w: %w", op, eventstore.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// runNotifier tells other processes about appends, one NOTIFY per burst:
// NOTIFY serialises committing transactions on a global lock, so it is
// kept out of the append transaction and coalesced.
func (s *EventStore) runNotifier() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.notify:
		}
		if _, err := s.pool.Exec(s.ctx, `SELECT pg_notify($1, '')`, notifyChannel); err != nil && s.ctx.Err() == nil {
			// Subscribers of other processes fall back to polling.
			s.cfg.Logger.Warn("postgres: notify subscribers", "err", err)
		}
	}
}

// runListener wakes this process's subscriptions on notifications from
// other processes, reconnecting with backoff; while it is down the
// subscriptions poll.
func (s *EventStore) runListener() {
	defer s.wg.Done()
	backoff := 100 * time.Millisecond
	for s.ctx.Err() == nil {
		err := s.listen()
		if s.ctx.Err() != nil {
			return
		}
		s.cfg.Logger.Warn("postgres: event listener lost its connection; subscriptions poll meanwhile", "err", err, "retry_in", backoff)
		s.appended.Broadcast()
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *EventStore) listen() error {
	conn, err := pgx.ConnectConfig(s.ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(s.ctx, `LISTEN `+notifyChannel); err != nil {
		return err
	}
	// Events appended while we were not listening are found by this
	// wake-up's poll.
	s.appended.Broadcast()
	for {
		if _, err := conn.WaitForNotification(s.ctx); err != nil {
			return err
		}
		s.appended.Broadcast()
	}
}

// SubscribeAll implements eventstore.Store.
func (s *EventStore) SubscribeAll(ctx context.Context, opts eventstore.SubscribeOptions) (eventstore.Subscription, error) {
	s.startListener.Do(func() {
		s.wg.Add(1)
		go s.runListener()
	})
	ctx, cancel := context.WithCancelCause(ctx)
	return &subscription{
		store:    s,
		ctx:      ctx,
		cancel:   cancel,
		last:     opts.From,
		patterns: likePatterns(opts.StreamPrefixes),
	}, nil
}

// subscription polls the log below the horizon, woken by appends.
type subscription struct {
	store    *EventStore
	ctx      context.Context
	cancel   context.CancelCauseFunc
	patterns []string

	last           eventstore.Position // everything up to here was delivered
	pending        []eventstore.Message
	caughtUp       bool
	lastCheckpoint time.Time
	heldBackWait   time.Duration
	// heldBackSince is when the last polls began to see committed events
	// waiting above the horizon; zero while none wait.
	heldBackSince time.Time
}

// poll reads the next page below the horizon. It also returns the horizon
// and whether committed events wait above it (held back by an older
// transaction still in flight), in one round trip.
func (sub *subscription) poll(ctx context.Context) (events []eventstore.RecordedEvent, horizon int64, heldBack bool, err error) {
	var heldByAny bool
	s := sub.store
	horizonExpr, cheapExpr := `eventstore.horizon()`, `eventstore.horizon()`
	if !sub.heldBackSince.IsZero() && time.Since(sub.heldBackSince) >= s.cfg.TightHorizonAfter {
		// Held back for longer than an append takes: perhaps by a
		// transaction that can never append here.
		horizonExpr = `eventstore.appenders_horizon()`
	}
	if s.ignoreHorizon {
		horizonExpr, cheapExpr = `9223372036854775807`, `9223372036854775807`
	}
	defer func() {
		// The cheap horizon decides when the tight one is worth its cost.
		switch {
		case err != nil:
		case !heldByAny:
			sub.heldBackSince = time.Time{}
		case sub.heldBackSince.IsZero():
			sub.heldBackSince = time.Now()
		}
	}()
	rows, err := s.pool.Query(ctx, `
		SELECT h.horizon, m.max >= h.horizon, m.max >= h.cheap,
		       e.position, e.stream, e.revision, e.event_id, e.event_type, e.data, e.metadata, e.recorded_at
		FROM (SELECT greatest($4::bigint, `+horizonExpr+`) AS horizon, `+cheapExpr+` AS cheap OFFSET 0) h
		CROSS JOIN (SELECT max(position) AS max FROM eventstore.events) m
		LEFT JOIN LATERAL (
			SELECT * FROM eventstore.events ev
			WHERE ev.position > $1 AND ev.position < h.horizon
			  AND ($3::text[] IS NULL OR ev.stream LIKE ANY ($3))
			ORDER BY ev.position
			LIMIT $2
		) e ON true
		ORDER BY e.position`,
		clampInt64(uint64(sub.last)), s.cfg.PageSize, sub.patterns, s.horizonFloor.Load())
	if err != nil {
		return nil, 0, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			position, revision *int64
			held, heldByOne    *bool
			e                  eventstore.RecordedEvent
			stream, typ        *string
			id                 *uuid.UUID
			recordedAt         *time.Time
		)
		if err := rows.Scan(&horizon, &held, &heldByOne, &position, &stream, &revision, &id, &typ, &e.Data, &e.Metadata, &recordedAt); err != nil {
			return nil, 0, false, err
		}
		heldBack = held != nil && *held
		heldByAny = heldByOne != nil && *heldByOne
		if position == nil {
			continue // no event: the row only carries the horizon
		}
		e.Position, e.Stream, e.Revision, e.ID, e.Type, e.RecordedAt = eventstore.Position(*position), *stream, uint64(*revision), *id, *typ, *recordedAt
		events = append(events, e)
	}
	if rows.Err() == nil && !s.ignoreHorizon {
		s.raiseHorizonFloor(horizon)
	}
	return events, horizon, heldBack, rows.Err()
}

// Next implements eventstore.Subscription.
func (sub *subscription) Next(ctx context.Context) (eventstore.Message, error) {
	s := sub.store
	retry := 100 * time.Millisecond
	for {
		if len(sub.pending) > 0 {
			msg := sub.pending[0]
			sub.pending = sub.pending[1:]
			return msg, nil
		}
		if err := sub.done(ctx); err != nil {
			return eventstore.Message{}, err
		}
		// Take the wake-up channel before reading, so that an append that
		// commits during the read still wakes the wait below.
		woken := s.appended.Wait()
		events, horizon, heldBack, err := sub.poll(ctx)
		if err != nil {
			if err := sub.done(ctx); err != nil {
				return eventstore.Message{}, err
			}
			// The database is unreachable: keep trying, the position is
			// safe in memory.
			s.cfg.Logger.Warn("postgres: subscription read failed; retrying", "err", err, "retry_in", retry)
			if err := sub.sleep(ctx, retry, nil); err != nil {
				return eventstore.Message{}, err
			}
			retry = min(retry*2, 5*time.Second)
			continue
		}
		retry = 100 * time.Millisecond
		for _, e := range events {
			sub.pending = append(sub.pending, eventstore.Message{Kind: eventstore.EventAppeared, Event: e, Position: e.Position})
			sub.last = e.Position
		}
		if len(events) == s.cfg.PageSize {
			sub.caughtUp = false // more to read straight away
			continue
		}
		if !sub.caughtUp {
			sub.caughtUp = true
			sub.pending = append(sub.pending, eventstore.Message{Kind: eventstore.CaughtUp, Position: sub.last})
			sub.lastCheckpoint = time.Now()
			continue
		}
		if len(events) > 0 {
			continue
		}
		// Nothing to deliver. A filtered subscription reports how far it
		// has looked: nothing below the horizon matched.
		if sub.patterns != nil && horizon > 0 && eventstore.Position(horizon-1) > sub.last &&
			time.Since(sub.lastCheckpoint) >= s.cfg.CheckpointInterval {
			sub.last = eventstore.Position(horizon - 1)
			sub.lastCheckpoint = time.Now()
			return eventstore.Message{Kind: eventstore.CheckpointReached, Position: sub.last}, nil
		}
		wait := s.cfg.PollInterval
		if heldBack {
			// Committed events wait behind an older transaction that has
			// not ended; it may not be an append, so nothing will notify.
			sub.heldBackWait = min(max(2*sub.heldBackWait, time.Millisecond), 50*time.Millisecond)
			wait = sub.heldBackWait
		} else {
			sub.heldBackWait = 0
		}
		if sub.patterns != nil && wait > s.cfg.CheckpointInterval {
			wait = s.cfg.CheckpointInterval
		}
		if err := sub.sleep(ctx, wait, woken); err != nil {
			return eventstore.Message{}, err
		}
	}
}

// done reports why the subscription must end, if it must: Close, or the
// end of the context it was created with or of the one Next got.
func (sub *subscription) done(ctx context.Context) error {
	if sub.ctx.Err() != nil {
		return context.Cause(sub.ctx)
	}
	return ctx.Err()
}

func (sub *subscription) sleep(ctx context.Context, d time.Duration, woken <-chan struct{}) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-woken:
	case <-ctx.Done():
	case <-sub.ctx.Done():
	}
	return sub.done(ctx)
}

// Buffered implements eventstore.Buffered.
func (sub *subscription) Buffered() int { return len(sub.pending) }

// Close implements eventstore.Subscription.
func (sub *subscription) Close() error {
	sub.cancel(eventstore.ErrSubscriptionClosed)
	return nil
}
