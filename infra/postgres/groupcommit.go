package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// Group commit.
//
// Every append transaction pays a round trip and a WAL flush at commit.
// When appends arrive faster than they commit, the store commits the ones
// that wait together: one statement (eventstore.append_group), one
// transaction, one flush. Nothing waits on a timer: an append that finds
// one of the Committers free commits at once, alone, exactly as it would
// without grouping; only while every committer is busy do appends queue,
// and a committer that finishes takes the whole queue (up to a bound) as
// its next group. So at low load latency is that of a lone append, and
// under load the groups grow with it: the wait is never longer than the
// commit in flight.
//
// Each append of a group keeps its own expected-revision check and its own
// outcome: a conflict answers WrongExpectedRevisionError for that append
// alone. If the group's statement fails as a whole without a connection
// failure (PostgreSQL refused the data of one append), nothing was written
// and each append is committed alone, so that only the one at fault fails.
// A connection failure leaves the outcome of every append of the group
// unknown (eventstore.ErrUnavailable), as it does for a lone append;
// retrying with the same event ids is safe.
//
// Ordering: the group takes all its stream locks, in ascending key order,
// before its transaction has an id (see the migration 00013 and
// ARCHITECTURE.md, "Group commit").

// defaultCommitters is the default of EventStoreConfig.Committers. It is
// not smaller because PostgreSQL already shares one WAL flush among the
// transactions that commit together: with 16 clients, 2 committers made
// appends slower than no grouping (1,087 against 1,498 appends/s), 8 as
// fast or a little faster (1,525; BenchmarkGroupCommit, 2 CPUs). Groups
// form once more than 8 appends are in flight.
const defaultCommitters = 8

// The bounds of one group: appends, bytes of data and metadata, and events
// (a position holds 20 bits of index within a transaction).
const (
	maxGroupAppends = 128
	maxGroupBytes   = 4 << 20
	maxGroupEvents  = 1<<20 - 1
)

// groupTimeout bounds a group's transaction; the group belongs to no one
// caller, so no caller's context bounds it.
const groupTimeout = 30 * time.Second

// appendRequest is one append, alone or waiting for its group.
type appendRequest struct {
	stream   string
	expected eventstore.ExpectedRevision
	events   []eventstore.EventData
	ctx      context.Context
	done     chan appendOutcome
	// taken is set (under grouper.mu) when a group takes the request.
	taken bool
}

type appendOutcome struct {
	res eventstore.AppendResult
	err error
}

// result turns the append function's answer into the port's.
func (r *appendRequest) result(outcome string, revision int64, position *int64) (eventstore.AppendResult, error) {
	if outcome != "ok" || position == nil {
		return eventstore.AppendResult{}, &eventstore.WrongExpectedRevisionError{Stream: r.stream, Expected: r.expected, Current: revision}
	}
	return eventstore.AppendResult{Revision: uint64(revision), Position: eventstore.Position(*position)}, nil
}

func (r *appendRequest) deliver(res eventstore.AppendResult, err error) {
	r.done <- appendOutcome{res, err} // buffered: never blocks
}

func (r *appendRequest) size() int {
	n := 0
	for _, e := range r.events {
		n += len(e.Data) + len(e.Metadata)
	}
	return n
}

// grouper hands appends to committers. Invariant: the queue is not empty
// only while every committer is busy.
type grouper struct {
	committers int

	mu    sync.Mutex
	busy  int
	queue []*appendRequest

	// grouped counts the groups of more than one append committed.
	grouped atomic.Int64
}

// append commits r alone if a committer is free, else queues it for the
// next group and waits for its outcome.
func (g *grouper) append(ctx context.Context, s *EventStore, r *appendRequest) (eventstore.AppendResult, error) {
	if g.committers < 0 {
		return s.appendAlone(ctx, r)
	}
	g.mu.Lock()
	if g.busy < g.committers {
		g.busy++
		g.mu.Unlock()
		res, err := s.appendAlone(ctx, r)
		g.release(s)
		return res, err
	}
	r.ctx, r.done = ctx, make(chan appendOutcome, 1)
	g.queue = append(g.queue, r)
	g.mu.Unlock()
	select {
	case o := <-r.done:
		return o.res, o.err
	case <-ctx.Done():
		g.mu.Lock()
		taken := r.taken
		if !taken {
			g.queue = slices.DeleteFunc(g.queue, func(q *appendRequest) bool { return q == r })
		}
		g.mu.Unlock()
		if !taken {
			// Still queued: it will never be written.
			return eventstore.AppendResult{}, fmt.Errorf("postgres: append: %w", context.Cause(ctx))
		}
		// A group has it and may commit it: the outcome is unknown.
		return eventstore.AppendResult{}, fmt.Errorf("postgres: append: %w: %w", eventstore.ErrUnavailable, context.Cause(ctx))
	}
}

// release is called by a committer that has finished: it commits what
// waits as the next group, on a goroutine of its own (the caller returns
// to its own work), or frees the committer.
func (g *grouper) release(s *EventStore) {
	g.mu.Lock()
	group := g.take()
	if len(group) == 0 {
		g.busy--
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	go func() {
		s.commitGroup(group)
		g.release(s)
	}()
}

// take removes the next group from the queue (g.mu held): the oldest
// appends, within the group's bounds, leaving out those whose caller has
// given up.
func (g *grouper) take() []*appendRequest {
	var (
		group         []*appendRequest
		bytes, events int
		taken         int
	)
	for _, r := range g.queue {
		if len(group) > 0 && (len(group) == maxGroupAppends || bytes+r.size() > maxGroupBytes || events+len(r.events) > maxGroupEvents) {
			break
		}
		taken++
		if r.ctx.Err() != nil {
			continue // its caller has returned; nothing is written for it
		}
		r.taken = true
		group = append(group, r)
		bytes += r.size()
		events += len(r.events)
	}
	clear(g.queue[:taken])
	g.queue = g.queue[taken:]
	if len(g.queue) == 0 {
		g.queue = nil
	}
	return group
}

// commitGroup commits the group in one transaction and delivers each
// append's outcome.
func (s *EventStore) commitGroup(group []*appendRequest) {
	ctx, cancel := context.WithTimeout(s.ctx, groupTimeout)
	defer cancel()
	if len(group) == 1 {
		group[0].deliver(s.appendAlone(ctx, group[0]))
		return
	}
	outcomes, err := s.appendGroup(ctx, group)
	if err == nil {
		s.groups.grouped.Add(1)
		for i, r := range group {
			r.deliver(outcomes[i].res, outcomes[i].err)
		}
		return
	}
	if errors.Is(err, eventstore.ErrUnavailable) || ctx.Err() != nil {
		for _, r := range group {
			r.deliver(eventstore.AppendResult{}, err)
		}
		return
	}
	// The statement failed as a whole, so it wrote nothing: PostgreSQL
	// refused something of one append. Each commits alone, and only the
	// one at fault fails.
	s.cfg.Logger.Debug("postgres: a group commit failed; its appends commit alone", "appends", len(group), "err", err)
	var wg sync.WaitGroup
	for _, r := range group {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.deliver(s.appendAlone(ctx, r))
		}()
	}
	wg.Wait()
}

// appendGroup runs eventstore.append_group: one outcome per append, in the
// group's order, or an error for the whole group (nothing written, unless
// the connection failed during the commit).
func (s *EventStore) appendGroup(ctx context.Context, group []*appendRequest) ([]appendOutcome, error) {
	total := 0
	streams := make([]string, len(group))
	expected := make([]int64, len(group))
	counts := make([]int32, len(group))
	for i, r := range group {
		streams[i], expected[i], counts[i] = r.stream, expectedCode(r.expected), int32(len(r.events))
		total += len(r.events)
	}
	ids, types, data, metadata := flatten(group, total)
	rows, err := s.pool.Query(ctx,
		`SELECT idx, outcome, revision, position FROM eventstore.append_group($1, $2, $3, $4, $5, $6::json[], $7::json[])`,
		streams, expected, counts, ids, types, data, metadata)
	if err != nil {
		return nil, classify("append group", err)
	}
	defer rows.Close()
	outcomes := make([]appendOutcome, len(group))
	seen := make([]bool, len(group))
	anyWritten := false
	for rows.Next() {
		var (
			idx      int32
			outcome  string
			revision int64
			position *int64
		)
		if err := rows.Scan(&idx, &outcome, &revision, &position); err != nil {
			return nil, classify("append group", err)
		}
		i := int(idx) - 1
		if i < 0 || i >= len(group) || seen[i] {
			return nil, fmt.Errorf("postgres: append group: unexpected outcome for append %d of %d", idx, len(group))
		}
		seen[i] = true
		outcomes[i].res, outcomes[i].err = group[i].result(outcome, revision, position)
		anyWritten = anyWritten || outcomes[i].err == nil
	}
	if err := rows.Err(); err != nil {
		return nil, classify("append group", err)
	}
	for i, ok := range seen {
		if !ok {
			// Committed, but without an answer for this append: its
			// outcome is unknown, a retry with the same ids settles it.
			outcomes[i].err = fmt.Errorf("postgres: append group: %w: no outcome for append %d", eventstore.ErrUnavailable, i+1)
		}
	}
	if anyWritten {
		s.signalAppended()
	}
	return outcomes, nil
}

// flatten lays the events of the appends end to end, as the append
// functions take them.
func flatten(group []*appendRequest, total int) (ids []uuid.UUID, types, data []string, metadata []*string) {
	ids = make([]uuid.UUID, 0, total)
	types = make([]string, 0, total)
	data = make([]string, 0, total)
	metadata = make([]*string, 0, total)
	for _, r := range group {
		for _, e := range r.events {
			ids, types, data = append(ids, e.ID), append(types, e.Type), append(data, string(e.Data))
			var m *string
			if len(e.Metadata) > 0 {
				s := string(e.Metadata)
				m = &s
			}
			metadata = append(metadata, m)
		}
	}
	return ids, types, data, metadata
}
