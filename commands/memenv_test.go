package commands_test

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventcodec"
)

// memKeys is the customers' data keys in memory, with infra/postgres's
// Keyring semantics (a destroyed key stays destroyed, even one destroyed
// before it existed), so that the command side's scenarios run without a
// database. refuse makes every destruction fail, as a lost connection
// would.
type memKeys struct {
	mu      sync.Mutex
	keys    map[uuid.UUID][]byte // nil value: destroyed
	pending map[uuid.UUID]time.Time
	refuse  bool
}

func newMemKeys() *memKeys {
	return &memKeys{keys: map[uuid.UUID][]byte{}, pending: map[uuid.UUID]time.Time{}}
}

var errRefused = errors.New("test: key destruction refused")

func (k *memKeys) DataKey(_ context.Context, customerID uuid.UUID, create bool) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key, ok := k.keys[customerID]
	switch {
	case ok && key == nil:
		return nil, eventcodec.ErrKeyDestroyed
	case ok:
		return key, nil
	case !create:
		return nil, errors.New("memkeys: no data key for customer " + customerID.String())
	}
	key = make([]byte, 32)
	rand.Read(key)
	k.keys[customerID] = key
	return key, nil
}

func (k *memKeys) Destroy(_ context.Context, customerID uuid.UUID) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.refuse {
		return errRefused
	}
	k.keys[customerID] = nil
	return nil
}

func (k *memKeys) destroyed(customerID uuid.UUID) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	key, ok := k.keys[customerID]
	return ok && key == nil
}

func (k *memKeys) setRefuse(refuse bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.refuse = refuse
}

func (k *memKeys) BeginErasure(_ context.Context, customerID uuid.UUID) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.pending[customerID]; !ok {
		k.pending[customerID] = time.Now()
	}
	return nil
}

func (k *memKeys) EndErasure(_ context.Context, customerID uuid.UUID) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.pending, customerID)
	return nil
}

func (k *memKeys) PendingErasures(context.Context) (map[uuid.UUID]time.Duration, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[uuid.UUID]time.Duration, len(k.pending))
	for id, at := range k.pending {
		out[id] = time.Since(at)
	}
	return out, nil
}

// memEmails is the email registry in memory with infra/postgres's
// EmailRegistry semantics: one holder per email, a reservation confirmed
// once its append happened, takeover of unconfirmed ones only.
type memEmails struct {
	mu   sync.Mutex
	held map[string]*reservation
}

type reservation struct {
	holder    uuid.UUID
	confirmed bool
	at        time.Time
}

func newMemEmails() *memEmails { return &memEmails{held: map[string]*reservation{}} }

func (r *memEmails) Reserve(_ context.Context, email string, customerID uuid.UUID) (uuid.UUID, bool, time.Duration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res, ok := r.held[email]
	if !ok {
		r.held[email] = &reservation{holder: customerID, at: time.Now()}
		return customerID, false, 0, nil
	}
	return res.holder, res.confirmed, time.Since(res.at), nil
}

func (r *memEmails) TakeOver(_ context.Context, email string, from, to uuid.UUID) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res, ok := r.held[email]
	if !ok || res.holder != from || res.confirmed {
		return false, nil
	}
	*res = reservation{holder: to, at: time.Now()}
	return true, nil
}

func (r *memEmails) Confirm(_ context.Context, email string, customerID uuid.UUID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if res, ok := r.held[email]; ok && res.holder == customerID {
		res.confirmed = true
	}
	return nil
}

func (r *memEmails) Release(_ context.Context, email string, customerID uuid.UUID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if res, ok := r.held[email]; ok && res.holder == customerID {
		delete(r.held, email)
	}
	return nil
}

func (r *memEmails) ReleaseAll(_ context.Context, customerID uuid.UUID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for email, res := range r.held {
		if res.holder == customerID {
			delete(r.held, email)
		}
	}
	return nil
}
