package eventstore_test

import (
	"testing"
	"time"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

func TestBroadcastWakesEveryWaiterOnce(t *testing.T) {
	var s eventstore.Signal
	a, b := s.Wait(), s.Wait()
	s.Broadcast()
	for _, ch := range []<-chan struct{}{a, b} {
		select {
		case <-ch:
		case <-time.After(time.Second):
			t.Fatal("a waiter was not woken")
		}
	}
	select {
	case <-s.Wait():
		t.Fatal("a waiter that came after the broadcast was woken by it")
	default:
	}
}
