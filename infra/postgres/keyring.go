package postgres

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/jackc/pgx/v5"
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
type Keyring struct {
	pool  *pgxpool.Pool
	kek   cipher.AEAD
	cache *expirable.LRU[uuid.UUID, []byte] // nil value: destroyed
}

var _ eventcodec.Keyring = (*Keyring)(nil)

// NewKeyring returns a keyring whose keys are wrapped by masterKey, which
// must be 32 bytes.
func NewKeyring(pool *pgxpool.Pool, masterKey []byte, cfg KeyringConfig) (*Keyring, error) {
	cfg.setDefaults()
	if len(masterKey) != 32 {
		return nil, fmt.Errorf("postgres: master key must be 32 bytes, got %d", len(masterKey))
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("postgres: master key: %w", err)
	}
	kek, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("postgres: master key: %w", err)
	}
	return &Keyring{pool: pool, kek: kek, cache: expirable.NewLRU[uuid.UUID, []byte](cfg.CacheSize, nil, cfg.CacheTTL)}, nil
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
	var wrapped []byte
	err := k.pool.QueryRow(ctx, `SELECT wrapped_key FROM rapport.customer_keys WHERE customer_id = $1`, customerID).Scan(&wrapped)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		return nil, fmt.Errorf("postgres: load data key: %w", err)
	}
	if wrapped == nil {
		return nil, eventcodec.ErrKeyDestroyed
	}
	key, err := k.kek.Open(nil, wrapped[:k.kek.NonceSize()], wrapped[k.kek.NonceSize():], customerID[:])
	if err != nil {
		return nil, fmt.Errorf("postgres: unwrap data key of %s (wrong master key?): %w", customerID, err)
	}
	return key, nil
}

// create makes a key; when another process creates one at the same time,
// both end up with the one that was stored first.
func (k *Keyring) create(ctx context.Context, customerID uuid.UUID) ([]byte, error) {
	key := make([]byte, 32)
	nonce := make([]byte, k.kek.NonceSize())
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	wrapped := k.kek.Seal(nonce, nonce, key, customerID[:])
	if _, err := k.pool.Exec(ctx, `INSERT INTO rapport.customer_keys (customer_id, wrapped_key) VALUES ($1, $2) ON CONFLICT (customer_id) DO NOTHING`, customerID, wrapped); err != nil {
		return nil, fmt.Errorf("postgres: store data key: %w", err)
	}
	return k.load(ctx, customerID)
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
