package eventcodec_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
)

// creatingKeyring counts how the codec asks for keys.
type creatingKeyring struct {
	*memoryKeyring
	created, lookedUp int
}

func (k *creatingKeyring) DataKey(ctx context.Context, id uuid.UUID, create bool) ([]byte, error) {
	k.lookedUp++
	return k.memoryKeyring.DataKey(ctx, id, create)
}

func (k *creatingKeyring) CreateDataKey(ctx context.Context, id uuid.UUID) ([]byte, error) {
	k.created++
	return k.memoryKeyring.DataKey(ctx, id, true)
}

// TestFirstBatchCreatesTheKey: the batch that begins a stream (a
// registration) asks a KeyCreator for a new key, without a look-up; later
// batches look the key up; both read back.
func TestFirstBatchCreatesTheKey(t *testing.T) {
	keys := &creatingKeyring{memoryKeyring: newMemoryKeyring()}
	codec := eventcodec.New(domain.NewRegistry(), keys)
	id := uuid.New()
	stored := history(t, codec, id) // a registration, then two more batches
	if keys.created != 1 {
		t.Fatalf("%d creations, want 1 for the registration", keys.created)
	}
	if keys.lookedUp == 0 {
		t.Fatal("later batches did not look the key up")
	}
	d, err := codec.Decode(context.Background(), stored[0])
	if err != nil {
		t.Fatal(err)
	}
	if reg := d.Event.(domain.CustomerRegistered); reg.Name != "Ada Lovelace" {
		t.Fatalf("decoded %+v", reg)
	}
}
