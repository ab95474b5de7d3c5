package postgres

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/eventcodec"
)

// KeyringConfig tunes the keyring.
type KeyringConfig struct {
	// CacheSize bounds how many unwrapped data keys are kept in memory.
	// Default 100,000 (3.2 MB of keys).
	CacheSize int
	// CacheTTL bounds how long another process may still decrypt a
	// customer's data after it was erased here. Default 1 minute.
	CacheTTL time.Duration
	// FlushedByAppends says that the event store is the embedded one, in
	// the same PostgreSQL cluster: a new data key then commits without
	// waiting for its WAL flush, since the append that uses it flushes it
	// first (see withoutFlushWait). Never with EventStoreDB: a key lost
	// after its events were stored would make them unreadable.
	FlushedByAppends bool
}

func (c *KeyringConfig) setDefaults() {
	if c.CacheSize == 0 {
		c.CacheSize = 100_000
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = time.Minute
	}
}

// Keyring keeps the customers' data keys, wrapped by the master key, in
// rapport.customer_keys. It implements eventcodec.Keyring.
//
// It knows the master key it was given and, during a rotation, the other
// one (see VerifyMasterKey): each data key row names the master key that
// wraps it (kek_id), so keys wrapped under either open.
type Keyring struct {
	pool  *pgxpool.Pool
	cache *expirable.LRU[uuid.UUID, []byte] // nil value: destroyed

	own []byte // the master key this process was given

	mu sync.RWMutex
	// keks are the master keys this process knows, by id.
	keks map[kekID]cipher.AEAD
	// current is the database's current key (data keys with kek_id NULL
	// are wrapped by it); primary wraps new data keys (the next key
	// during a rotation).
	current, primary kekID
	indexSecret      []byte
	// flushedByAppends: KeyringConfig.FlushedByAppends.
	flushedByAppends bool
}

var (
	_ eventcodec.Keyring    = (*Keyring)(nil)
	_ eventcodec.KeyCreator = (*Keyring)(nil)
)

// NewKeyring returns a keyring whose keys are wrapped by masterKey, which
// must be 32 bytes. A service calls VerifyMasterKey next.
func NewKeyring(pool *pgxpool.Pool, masterKey []byte, cfg KeyringConfig) (*Keyring, error) {
	cfg.setDefaults()
	kek, err := newKEK(masterKey)
	if err != nil {
		return nil, err
	}
	id := kekIDOf(masterKey)
	return &Keyring{
		pool:    pool,
		cache:   expirable.NewLRU[uuid.UUID, []byte](cfg.CacheSize, nil, cfg.CacheTTL),
		own:     append([]byte(nil), masterKey...),
		keks:    map[kekID]cipher.AEAD{id: kek},
		current: id,
		primary: id,

		flushedByAppends: cfg.FlushedByAppends,
	}, nil
}

// DataKey implements eventcodec.Keyring.
func (k *Keyring) DataKey(ctx context.Context, customerID uuid.UUID, create bool) ([]byte, error) {
	if key, ok := k.cache.Get(customerID); ok {
		if key == nil {
			return nil, eventcodec.ErrKeyDestroyed
		}
		return key, nil
	}
	key, err := k.load(ctx, customerID)
	if errors.Is(err, pgx.ErrNoRows) && create {
		key, err = k.create(ctx, customerID)
	}
	return k.remember(customerID, key, err)
}

// CreateDataKey implements eventcodec.KeyCreator: for a customer whose
// stream begins, it stores a new key at once (create falls back to the
// stored one, or to ErrKeyDestroyed, if there is a row already).
func (k *Keyring) CreateDataKey(ctx context.Context, customerID uuid.UUID) ([]byte, error) {
	if key, ok := k.cache.Get(customerID); ok {
		if key == nil {
			return nil, eventcodec.ErrKeyDestroyed
		}
		return key, nil
	}
	key, err := k.create(ctx, customerID)
	return k.remember(customerID, key, err)
}

// remember caches what a look-up or a creation found.
func (k *Keyring) remember(customerID uuid.UUID, key []byte, err error) ([]byte, error) {
	switch {
	case errors.Is(err, eventcodec.ErrKeyDestroyed):
		k.cache.Add(customerID, nil)
		return nil, err
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("postgres: no data key for customer %s", customerID)
	case err != nil:
		return nil, err
	}
	k.cache.Add(customerID, key)
	return key, nil
}

func (k *Keyring) load(ctx context.Context, customerID uuid.UUID) ([]byte, error) {
	var wrapped, kekID []byte
	err := k.pool.QueryRow(ctx, `SELECT wrapped_key, kek_id FROM rapport.customer_keys WHERE customer_id = $1`, customerID).Scan(&wrapped, &kekID)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		return nil, fmt.Errorf("postgres: load data key: %w", err)
	}
	if wrapped == nil {
		return nil, eventcodec.ErrKeyDestroyed
	}
	kek, which, ok := k.kek(kekID)
	if !ok {
		// Wrapped by a key this process has not learned yet: a rotation
		// began since the last refresh.
		if err := k.Refresh(ctx); err != nil {
			return nil, err
		}
		if kek, which, ok = k.kek(kekID); !ok {
			return nil, fmt.Errorf("%w: the data key of %s is wrapped by master key %s…, which this process does not have; restart it with the database's current master key", ErrMasterKeyMismatch, customerID, which)
		}
	}
	key, err := open(kek, wrapped, customerID[:])
	if err != nil {
		return nil, fmt.Errorf("postgres: unwrap data key of %s (wrong master key?): %w", customerID, err)
	}
	return key, nil
}

// create makes a key; when another process creates one at the same time,
// both end up with the one that was stored first. The insert only counts
// while its master key is the database's current or next one (it shares
// the master_key row's lock with a rotation's end), so that no key is
// left wrapped under a key a rotation has retired.
func (k *Keyring) create(ctx context.Context, customerID uuid.UUID) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		kek, id := k.primaryKEK()
		insert := `
			INSERT INTO rapport.customer_keys (customer_id, wrapped_key, kek_id)
			SELECT $1, $2, $3
			WHERE NOT EXISTS (SELECT 1 FROM rapport.master_key)
			   OR EXISTS (SELECT 1 FROM rapport.master_key WHERE kek_id = $3 OR next_kek_id = $3 FOR KEY SHARE)
			ON CONFLICT (customer_id) DO NOTHING`
		args := []any{customerID, seal(kek, key, customerID[:]), id[:]}
		var (
			tag pgconn.CommandTag
			err error
		)
		if k.flushedByAppends {
			tag, err = withoutFlushWait(ctx, k.pool, insert, args)
		} else {
			tag, err = k.pool.Exec(ctx, insert, args...)
		}
		if err != nil {
			return nil, fmt.Errorf("postgres: store data key: %w", err)
		}
		if tag.RowsAffected() == 1 {
			return key, nil
		}
		stored, err := k.load(ctx, customerID)
		if !errors.Is(err, pgx.ErrNoRows) || attempt > 0 {
			return stored, err
		}
		// Neither stored nor there: the master key was retired by a
		// rotation that just ended. Learn the state and wrap again.
		if err := k.Refresh(ctx); err != nil {
			return nil, err
		}
	}
}

// Destroy erases the customer's data key for good. It is idempotent, and
// it also works before any key existed, so that no key is ever made later.
func (k *Keyring) Destroy(ctx context.Context, customerID uuid.UUID) error {
	_, err := k.pool.Exec(ctx, `
		INSERT INTO rapport.customer_keys (customer_id, wrapped_key, destroyed_at) VALUES ($1, NULL, now())
		ON CONFLICT (customer_id) DO UPDATE SET wrapped_key = NULL, destroyed_at = coalesce(rapport.customer_keys.destroyed_at, now())`,
		customerID)
	if err != nil {
		return fmt.Errorf("postgres: destroy data key: %w", err)
	}
	k.cache.Add(customerID, nil)
	return nil
}

// BeginErasure records that the customer's erasure is about to be
// appended, before it is: a crash between the event and the key's
// destruction then leaves a trace that PendingErasures finds.
func (k *Keyring) BeginErasure(ctx context.Context, customerID uuid.UUID) error {
	if _, err := k.pool.Exec(ctx, `INSERT INTO rapport.pending_erasures (customer_id) VALUES ($1) ON CONFLICT (customer_id) DO NOTHING`, customerID); err != nil {
		return fmt.Errorf("postgres: record pending erasure: %w", err)
	}
	return nil
}

// EndErasure forgets a pending erasure: it completed, or its event was
// never appended.
func (k *Keyring) EndErasure(ctx context.Context, customerID uuid.UUID) error {
	if _, err := k.pool.Exec(ctx, `DELETE FROM rapport.pending_erasures WHERE customer_id = $1`, customerID); err != nil {
		return fmt.Errorf("postgres: end pending erasure: %w", err)
	}
	return nil
}

// PendingErasures lists the erasures begun and not ended, with how long
// ago each began.
func (k *Keyring) PendingErasures(ctx context.Context) (map[uuid.UUID]time.Duration, error) {
	rows, err := k.pool.Query(ctx, `SELECT customer_id, extract(epoch FROM now() - requested_at)::float8 FROM rapport.pending_erasures`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list pending erasures: %w", err)
	}
	pending := map[uuid.UUID]time.Duration{}
	var (
		id  uuid.UUID
		age float64
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &age}, func() error {
		pending[id] = time.Duration(age * float64(time.Second))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list pending erasures: %w", err)
	}
	return pending, nil
}
