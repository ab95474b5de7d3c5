package postgres

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrMasterKeyMismatch says that a process was given another master key
// than the one that wraps the database's data keys. Such a process must
// not start: every command would fail, and keys it made would be
// unreadable to the others.
var ErrMasterKeyMismatch = errors.New("postgres: the master key does not match the database's")

// The fixed labels under the master key: the key check stored in the
// database, and the email index's secret (derived as it was before it was
// stored, so existing indexes keep working).
const (
	keyCheckLabel   = "rapport master key check v1"
	emailIndexLabel = "rapport email index v1"
)

// Associated data of the secrets wrapped in rapport.master_key: each
// opens only in its own place.
var (
	adIndexSecret   = []byte("rapport index secret")
	adNextMasterKey = []byte("rapport next master key")
	adCurMasterKey  = []byte("rapport current master key")
)

// KeyCheck is the value the database keeps to recognise a master key:
// HMAC-SHA-256 of a fixed label under it. It reveals nothing of the key.
func KeyCheck(masterKey []byte) []byte {
	mac := hmac.New(sha256.New, masterKey)
	mac.Write([]byte(keyCheckLabel))
	return mac.Sum(nil)
}

// kekID names a master key in customer_keys.kek_id: the first 8 bytes of
// its key check.
type kekID [8]byte

func kekIDOf(masterKey []byte) kekID { return kekID(KeyCheck(masterKey)[:8]) }

func (id kekID) String() string { return hex.EncodeToString(id[:]) }

func newKEK(masterKey []byte) (cipher.AEAD, error) {
	if len(masterKey) != 32 {
		return nil, fmt.Errorf("postgres: master key must be 32 bytes, got %d", len(masterKey))
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("postgres: master key: %w", err)
	}
	return cipher.NewGCM(block)
}

// seal and open wrap a secret (nonce ‖ ciphertext) under a master key.
func seal(kek cipher.AEAD, secret, ad []byte) []byte {
	nonce := make([]byte, kek.NonceSize())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	return kek.Seal(nonce, nonce, secret, ad)
}

func open(kek cipher.AEAD, wrapped, ad []byte) ([]byte, error) {
	if len(wrapped) < kek.NonceSize() {
		return nil, errors.New("postgres: wrapped secret too short")
	}
	return kek.Open(nil, wrapped[:kek.NonceSize()], wrapped[kek.NonceSize():], ad)
}

// masterKeyRow is rapport.master_key.
type masterKeyRow struct {
	keyCheck, kekID, indexSecret                                  []byte
	nextKeyCheck, nextKekID, nextKey, currentKey, nextIndexSecret []byte
	rotationStartedAt                                             *time.Time
}

func (r *masterKeyRow) rotating() bool { return r.nextKekID != nil }

func readMasterKeyRow(ctx context.Context, q pgx.Tx, lock bool) (*masterKeyRow, error) {
	query := `SELECT key_check, kek_id, index_secret, next_key_check, next_kek_id, next_key, current_key, next_index_secret, rotation_started_at FROM rapport.master_key`
	if lock {
		query += ` FOR UPDATE`
	}
	var r masterKeyRow
	err := q.QueryRow(ctx, query).Scan(&r.keyCheck, &r.kekID, &r.indexSecret, &r.nextKeyCheck, &r.nextKekID, &r.nextKey, &r.currentKey, &r.nextIndexSecret, &r.rotationStartedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: read the master key check: %w", err)
	}
	return &r, nil
}

// VerifyMasterKey checks this keyring's master key against the database
// and learns what it needs from it; a process calls it before anything
// else and refuses to start on ErrMasterKeyMismatch. The first process on
// a database stores the key check, after making sure that the data keys
// already there (from before key checks) open with its key. During a
// rotation either key is accepted, and the keyring learns the other.
func (k *Keyring) VerifyMasterKey(ctx context.Context) error {
	for range 3 {
		row, err := k.readState(ctx)
		if err != nil {
			return err
		}
		if row != nil {
			return k.apply(row)
		}
		if err := k.storeKeyCheck(ctx); err != nil {
			return err
		}
	}
	return errors.New("postgres: the master key check keeps disappearing")
}

func (k *Keyring) readState(ctx context.Context) (*masterKeyRow, error) {
	tx, err := k.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("postgres: read the master key check: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	return readMasterKeyRow(ctx, tx, false)
}

// storeKeyCheck stores this key's check on a database that has none.
func (k *Keyring) storeKeyCheck(ctx context.Context) error {
	if err := k.sampleKeysOpen(ctx); err != nil {
		return err
	}
	k.mu.RLock()
	kek, master := k.keks[k.current], k.own
	k.mu.RUnlock()
	mac := hmac.New(sha256.New, master)
	mac.Write([]byte(emailIndexLabel))
	check := KeyCheck(master)
	if _, err := k.pool.Exec(ctx, `INSERT INTO rapport.master_key (key_check, kek_id, index_secret) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
		check, check[:8], seal(kek, mac.Sum(nil), adIndexSecret)); err != nil {
		return fmt.Errorf("postgres: store the master key check: %w", err)
	}
	return nil
}

// sampleKeysOpen checks, on a database without a key check, that the
// oldest data keys open with this keyring's key.
func (k *Keyring) sampleKeysOpen(ctx context.Context) error {
	k.mu.RLock()
	own, kek := k.current, k.keks[k.current]
	k.mu.RUnlock()
	rows, err := k.pool.Query(ctx, `SELECT customer_id, wrapped_key, kek_id FROM rapport.customer_keys WHERE wrapped_key IS NOT NULL ORDER BY created_at LIMIT 3`)
	if err != nil {
		return fmt.Errorf("postgres: check the data keys against the master key: %w", err)
	}
	var (
		id          uuid.UUID
		wrapped, by []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &wrapped, &by}, func() error {
		if _, err := open(kek, wrapped, id[:]); err != nil || (by != nil && kekID(by) != own) {
			return fmt.Errorf("%w: the data key of customer %s does not open with this process's master key (key check %s…): the database's data keys were wrapped by another master key; start it with that key (RAPPORT_MASTER_KEY), or use another database", ErrMasterKeyMismatch, id, own)
		}
		return nil
	})
	return err
}

// apply brings the keyring in line with the database's master key state:
// the current key (which wraps data keys whose kek_id is NULL), the key
// new data keys are wrapped with (the next one during a rotation), and
// the index secret. It learns the other key of a rotation from the one it
// holds.
func (k *Keyring) apply(row *masterKeyRow) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	current, next := kekID(row.kekID), kekID{}
	if row.rotating() {
		next = kekID(row.nextKekID)
	}
	learn := func(kek cipher.AEAD, wrapped, ad, check []byte) (kekID, error) {
		key, err := open(kek, wrapped, ad)
		if err != nil {
			return kekID{}, fmt.Errorf("postgres: open the other master key of the rotation: %w", err)
		}
		if !hmac.Equal(KeyCheck(key), check) {
			return kekID{}, errors.New("postgres: the other master key of the rotation does not match its key check")
		}
		if k.keks[kekIDOf(key)], err = newKEK(key); err != nil {
			return kekID{}, err
		}
		return kekIDOf(key), nil
	}
	var indexSecret []byte
	var err error
	switch {
	case k.keks[current] != nil:
		if row.rotating() && k.keks[next] == nil {
			if _, err := learn(k.keks[current], row.nextKey, adNextMasterKey, row.nextKeyCheck); err != nil {
				return err
			}
		}
		indexSecret, err = open(k.keks[current], row.indexSecret, adIndexSecret)
	case row.rotating() && k.keks[next] != nil:
		if _, err := learn(k.keks[next], row.currentKey, adCurMasterKey, row.keyCheck); err != nil {
			return err
		}
		indexSecret, err = open(k.keks[next], row.nextIndexSecret, adIndexSecret)
	default:
		return fmt.Errorf("%w: this process's master key (key check %s…) is not the one that wraps this database's data keys (%s…); start it with the database's master key (RAPPORT_MASTER_KEY), or use another database (was the key rotated? then use the new one)",
			ErrMasterKeyMismatch, kekIDOf(k.own), current)
	}
	if err != nil {
		return fmt.Errorf("postgres: open the email index secret: %w", err)
	}
	k.current, k.primary, k.indexSecret = current, current, indexSecret
	if row.rotating() {
		k.primary = next
	}
	return nil
}

// Refresh reads the master key state again (a rotation may have begun or
// ended).
func (k *Keyring) Refresh(ctx context.Context) error {
	row, err := k.readState(ctx)
	if err != nil || row == nil {
		return err
	}
	return k.apply(row)
}

// Watch refreshes the master key state every interval until ctx ends, so
// that a running process learns a rotation's new key before the rotation
// finishes (rotations wait RotateOptions.Grace for it).
func (k *Keyring) Watch(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if err := k.Refresh(ctx); err != nil && ctx.Err() == nil {
				logger.Error("postgres: refresh the master key state", "err", err)
			}
		}
	}
}

// IndexSecret is the secret the email index is keyed with (after
// VerifyMasterKey).
func (k *Keyring) IndexSecret() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.indexSecret
}

// kek returns the master key that wraps a data key stored with kek_id
// (nil: the current key).
func (k *Keyring) kek(id []byte) (cipher.AEAD, kekID, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	which := k.current
	if id != nil {
		which = kekID(id)
	}
	kek, ok := k.keks[which]
	return kek, which, ok
}

// primaryKEK is the master key new data keys are wrapped with.
func (k *Keyring) primaryKEK() (cipher.AEAD, kekID) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keks[k.primary], k.primary
}

// MasterKeyFits reports, without writing anything, whether a process with
// masterKey could start on the database: it is the database's key (or the
// other key of a rotation in progress), or the database has no key check
// and no data key that another key wrapped. A database without Rapport's
// schema fits any key.
func MasterKeyFits(ctx context.Context, pool *pgxpool.Pool, masterKey []byte) (bool, error) {
	var hasTable bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('rapport.master_key') IS NOT NULL`).Scan(&hasTable); err != nil {
		return false, fmt.Errorf("postgres: look for the master key check: %w", err)
	}
	if !hasTable {
		var hasKeys bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass('rapport.customer_keys') IS NOT NULL`).Scan(&hasKeys); err != nil {
			return false, fmt.Errorf("postgres: look for data keys: %w", err)
		}
		if !hasKeys {
			return true, nil
		}
	}
	k, err := NewKeyring(pool, masterKey, KeyringConfig{})
	if err != nil {
		return false, err
	}
	if !hasTable {
		return k.sampleKeysOpen(ctx) == nil, nil
	}
	row, err := k.readState(ctx)
	switch {
	case err != nil:
		return false, err
	case row == nil:
		return k.sampleKeysOpen(ctx) == nil, nil
	}
	id := kekIDOf(masterKey)
	return id == kekID(row.kekID) || (row.rotating() && id == kekID(row.nextKekID)), nil
}
