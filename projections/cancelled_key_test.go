package projections_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/readmodels/customers"
)

// cancellingKeyring answers its first failures key look-ups with a
// cancellation, as a key load shared with a caller that is going away
// does at shutdown, while the projector's own context is alive.
type cancellingKeyring struct {
	eventcodec.Keyring
	failures atomic.Int32
}

func (k *cancellingKeyring) DataKey(ctx context.Context, id uuid.UUID, create bool) ([]byte, error) {
	if k.failures.Add(-1) >= 0 {
		return nil, fmt.Errorf("load data key: %w", context.Canceled)
	}
	return k.Keyring.DataKey(ctx, id, create)
}

// TestACancelledKeyLoadParksNothing: a cancellation says nothing about the
// event being decoded, so it must not park the event's stream (stopping
// `rapport serve` once parked streams with "load data key: context
// canceled"); the batch is decoded again and every event applied.
func TestACancelledKeyLoadParksNothing(t *testing.T) {
	e := newEnv(t)
	_, last := e.load(t, 31, 60)
	keys := &cancellingKeyring{Keyring: e.keys}
	keys.failures.Store(3)
	cfg := e.engineConfig(t)
	cfg.Codec = eventcodec.New(domain.NewRegistry(), keys)
	eng := e.newEngine(t, cfg)
	run(t, eng)
	waitFor(t, eng, last, time.Minute)
	if st := statusOf(t, eng, "customers"); len(st.Parked) != 0 {
		t.Fatalf("a cancelled key load parked %d streams: %+v", len(st.Parked), st.Parked)
	}
	compareModel(t, e, customers.NewQueries(e.pool))
}
