package esdbtest

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Method names an RPC for fault injection. Read and Subscribe are one gRPC
// method (Streams.Read) on the wire; they are told apart by the request's
// count option, as the real server does.
type Method string

const (
	MethodAppend         Method = "Append"
	MethodRead           Method = "Read"
	MethodSubscribe      Method = "Subscribe"
	MethodServerFeatures Method = "GetSupportedMethods"
	MethodGossip         Method = "Gossip"
)

// Fault is an injected failure of one call.
type Fault struct {
	// Code is the gRPC status returned; zero means Unavailable, the status a
	// real server answers when it is shutting down or too busy.
	Code    codes.Code
	Message string
	// AfterCommit, for Append only, writes the events before failing: the
	// acknowledgement is lost, so the client cannot know that the append
	// succeeded and must retry it with the same event ids.
	AfterCommit bool
}

func (f Fault) err() error {
	code, msg := f.Code, f.Message
	if code == codes.OK {
		code = codes.Unavailable
	}
	if msg == "" {
		msg = "esdbtest: injected fault"
	}
	return status.Error(code, msg)
}

// faults holds the pending injected failures and delays, and counts calls so
// tests can tell, say, how many times a client resubscribed.
type faults struct {
	mu      sync.Mutex
	pending map[Method][]Fault
	delays  map[Method]time.Duration
	calls   map[Method]int
}

func newFaults() *faults {
	return &faults{
		pending: make(map[Method][]Fault),
		delays:  make(map[Method]time.Duration),
		calls:   make(map[Method]int),
	}
}

// enter is called at the start of every handled call: it counts the call,
// applies the delay, and returns the fault to apply, if any.
func (f *faults) enter(ctx context.Context, m Method) (Fault, bool, error) {
	f.mu.Lock()
	f.calls[m]++
	delay := f.delays[m]
	var fault Fault
	queue := f.pending[m]
	ok := len(queue) > 0
	if ok {
		fault, f.pending[m] = queue[0], queue[1:]
	}
	f.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return Fault{}, false, status.FromContextError(ctx.Err()).Err()
		}
	}
	return fault, ok, nil
}

// FailNext makes the next n calls of m fail with Unavailable.
func (s *Server) FailNext(m Method, n int) {
	for range n {
		s.InjectFault(m, Fault{})
	}
}

// InjectFault queues f for the next call of m that has no earlier fault.
func (s *Server) InjectFault(m Method, f Fault) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.pending[m] = append(s.faults.pending[m], f)
}

// SetDelay delays every later call of m by d before it is handled (0 turns
// the delay off). An Append is delayed after its request has been read.
func (s *Server) SetDelay(m Method, d time.Duration) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.delays[m] = d
}

// Calls returns how many calls of m the server has received.
func (s *Server) Calls(m Method) int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.calls[m]
}

// DropSubscriptions ends every live subscription with Unavailable, as a
// server does when it loses leadership or shuts down, and returns how many
// it ended. The connection and the data stay.
func (s *Server) DropSubscriptions() int {
	return s.store.dropAll()
}
