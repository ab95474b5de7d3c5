package eventstore

import "sync"

// Signal wakes every waiter at once, any number of times: the "something
// changed, look again" signal between a writer and the readers that poll
// for its changes. Stores use it to wake their subscribers after an append,
// and read sides to wake those waiting for a checkpoint. Its zero value is
// ready to use.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// Wait returns a channel that is closed at the next Broadcast. Take it
// before looking for changes, so that a change made while looking still
// wakes the waiter.
func (s *Signal) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Broadcast wakes everyone waiting.
func (s *Signal) Broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
	}
	s.ch = make(chan struct{})
}
