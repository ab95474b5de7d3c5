package esdb

import (
	"context"
	"errors"
	"fmt"
	"math"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
)

// The official client (v4.2.0) serialises every call through one
// connection goroutine over an unbuffered channel, and has three traps the
// code in this file exists for:
//
//   - the hand-off to that goroutine ignores contexts and blocks for as long
//     as a (re)discovery runs, so a call is only bounded by its context if
//     it runs in a goroutine of its own (launch/await);
//   - when discovery gives up, the goroutine exits for good: callers already
//     waiting on the channel block forever and later calls fail with
//     ConnectionClosed. Discovery is therefore made endless (New sets
//     MaxDiscoverAttempts), and a client that closed itself anyway is
//     replaced (renew);
//   - Close closes that channel, so a call waiting on it panics with "send
//     on closed channel". A client is therefore only closed once no call is
//     inside it (clientRef).

// clientRef counts the calls inside a client so that it is closed only when
// idle, once retired.
type clientRef struct {
	c        *esdbclient.Client
	inflight int
	retired  bool
}

// discoverForever replaces the connection string's discovery attempts: a
// client whose discovery fails is dead for good, while one that keeps
// discovering recovers when the node is back.
const discoverForever = math.MaxInt32

func (s *Store) newClient() (*clientRef, error) {
	conf := s.conf
	c, err := esdbclient.NewClient(&conf)
	if err != nil {
		return nil, fmt.Errorf("esdb: new client: %w", err)
	}
	return &clientRef{c: c}, nil
}

func (s *Store) acquire() (*clientRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	s.ref.inflight++
	return s.ref, nil
}

func (s *Store) release(r *clientRef) {
	s.mu.Lock()
	r.inflight--
	idle := r.retired && r.inflight == 0
	s.mu.Unlock()
	if idle {
		_ = r.c.Close()
	}
}

// retire marks r for closing when idle and reports whether it is idle
// now, in which case the caller closes it after releasing s.mu.
func retire(r *clientRef) (idle bool) {
	r.retired = true
	return r.inflight == 0
}

// renew replaces r after it answered ConnectionClosed: it will never work
// again.
func (s *Store) renew(r *clientRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.ref != r {
		return
	}
	fresh, err := s.newClient()
	if err != nil {
		s.log.Error("esdb: cannot replace a closed client", "err", err)
		return
	}
	retire(r) // r is in use by the caller: release closes it
	s.ref = fresh
	s.log.Warn("esdb: the client closed itself; replaced it")
}

type result[T any] struct {
	v   T
	err error
}

// launch runs f with the current client in a goroutine of its own and
// returns where its result will be. The result channel is buffered, so an
// abandoned call finishes and frees its client reference by itself.
func launch[T any](s *Store, f func(*esdbclient.Client) (T, error)) (<-chan result[T], error) {
	r, err := s.acquire()
	if err != nil {
		return nil, err
	}
	out := make(chan result[T], 1)
	go func() {
		defer s.release(r)
		v, err := f(r.c)
		var e *esdbclient.Error
		if errors.As(err, &e) && e.Code() == esdbclient.ErrorCodeConnectionClosed {
			s.renew(r)
		}
		out <- result[T]{v, err}
	}()
	return out, nil
}

// await waits for a launched call or the end of ctx, preferring the result
// when both are ready so a completed append is never reported as failed.
func await[T any](ctx context.Context, ch <-chan result[T]) (T, error) {
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		select {
		case r := <-ch:
			return r.v, r.err
		default:
		}
		var zero T
		return zero, ctx.Err()
	}
}

// do is launch then await.
func do[T any](ctx context.Context, s *Store, f func(*esdbclient.Client) (T, error)) (T, error) {
	ch, err := launch(s, f)
	if err != nil {
		var zero T
		return zero, err
	}
	return await(ctx, ch)
}
