package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// APIKey is a key's public record; the secret is never stored.
type APIKey struct {
	ID        uuid.UUID
	Name      string
	Roles     []string
	Prefix    string
	CreatedAt time.Time
	RevokedAt *time.Time
}

var (
	// ErrInvalidAPIKey rejects an unknown or revoked key.
	ErrInvalidAPIKey = errors.New("postgres: invalid or revoked API key")
	// ErrAPIKeyNameTaken rejects a key whose name another key, active or
	// revoked, already has, ignoring case: names are actors in the audit
	// trail and two actors must not read alike.
	ErrAPIKeyNameTaken = errors.New("postgres: another API key (active or revoked) already has this name, ignoring case; choose another name")
	// ErrAPIKeyNotFound says no active key has that name or id.
	ErrAPIKeyNotFound = errors.New("postgres: no active API key with that name or id")
)

// keyPrefix starts every key, so that leaked keys are easy to recognise
// (and to scan for).
const keyPrefix = "rpk_"

// APIKeys stores API keys as SHA-256 hashes: keys are 256 random bits, so
// a fast hash is enough to make a stolen table useless.
type APIKeys struct {
	pool *pgxpool.Pool
	// cache remembers recent authentications; a key revoked by another
	// process keeps working for at most its TTL.
	cache *expirable.LRU[[32]byte, APIKey]
	// unknown remembers secrets the database did not know. Secrets are
	// random and a key's hash never changes to one already presented, so
	// a remembered miss can never hide a valid key; the TTL only bounds
	// memory churn.
	unknown *expirable.LRU[[32]byte, struct{}]
	// lookups counts the queries Authenticate sends to the database, so
	// that a test can show a flood of bad keys does not reach it.
	lookups atomic.Uint64
}

// Lookups is how many times Authenticate asked the database.
func (k *APIKeys) Lookups() uint64 { return k.lookups.Load() }

// APIKeyCacheTTL bounds how long a key revoked by another process is still
// accepted here.
const APIKeyCacheTTL = 5 * time.Second

// unknownKeyTTL is how long a secret the database did not know is
// answered from memory.
const unknownKeyTTL = time.Minute

// NewAPIKeys returns the key store.
func NewAPIKeys(pool *pgxpool.Pool) *APIKeys {
	return &APIKeys{pool: pool,
		cache:   expirable.NewLRU[[32]byte, APIKey](10_000, nil, APIKeyCacheTTL),
		unknown: expirable.NewLRU[[32]byte, struct{}](10_000, nil, unknownKeyTTL)}
}

// Create makes a key and returns its record and the secret, which is
// shown to the caller once and never again.
func (k *APIKeys) Create(ctx context.Context, name string, roles []string) (APIKey, string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return APIKey{}, "", err
	}
	secret, hash, prefix := newSecret(raw)
	key := APIKey{ID: uuid.New(), Name: name, Roles: roles, Prefix: prefix}
	err := k.pool.QueryRow(ctx,
		`INSERT INTO rapport.api_keys (id, name, roles, key_hash, prefix) VALUES ($1, $2, $3, $4, $5) RETURNING created_at`,
		key.ID, name, roles, hash[:], key.Prefix).Scan(&key.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return APIKey{}, "", fmt.Errorf("%w: %s", ErrAPIKeyNameTaken, name)
	}
	if errors.As(err, &pgErr) && pgErr.Code == "23514" {
		return APIKey{}, "", fmt.Errorf("postgres: invalid API key name or roles (%s): %w", pgErr.ConstraintName, err)
	}
	if err != nil {
		return APIKey{}, "", fmt.Errorf("postgres: create API key: %w", err)
	}
	return key, secret, nil
}

func newSecret(raw []byte) (secret string, hash [32]byte, prefix string) {
	secret = keyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	return secret, sha256.Sum256([]byte(secret)), secret[:len(keyPrefix)+6]
}

// Reissue gives the key with this name (active or revoked, ignoring case)
// a new secret and these roles, or creates it: the same actor with a new
// secret, the old one no longer accepted. `rapport dev` and the first
// admin key use it, since a name cannot go to a new key once used.
func (k *APIKeys) Reissue(ctx context.Context, name string, roles []string) (APIKey, string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return APIKey{}, "", err
	}
	secret, hash, prefix := newSecret(raw)
	key := APIKey{Roles: roles, Prefix: prefix}
	err := k.pool.QueryRow(ctx,
		`UPDATE rapport.api_keys SET key_hash = $2, prefix = $3, roles = $4, revoked_at = NULL
		 WHERE lower(name) = lower($1) RETURNING id, name, created_at`,
		name, hash[:], prefix, roles).Scan(&key.ID, &key.Name, &key.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return k.Create(ctx, name, roles)
	}
	if err != nil {
		return APIKey{}, "", fmt.Errorf("postgres: reissue API key: %w", err)
	}
	k.cache.Purge()
	return key, secret, nil
}

// Authenticate returns the active key whose secret this is.
func (k *APIKeys) Authenticate(ctx context.Context, secret string) (APIKey, error) {
	hash := sha256.Sum256([]byte(secret))
	if key, ok := k.cache.Get(hash); ok {
		return key, nil
	}
	if _, ok := k.unknown.Get(hash); ok {
		return APIKey{}, ErrInvalidAPIKey
	}
	var key APIKey
	k.lookups.Add(1)
	err := k.pool.QueryRow(ctx,
		`SELECT id, name, roles, prefix, created_at FROM rapport.api_keys WHERE key_hash = $1 AND revoked_at IS NULL`,
		hash[:]).Scan(&key.ID, &key.Name, &key.Roles, &key.Prefix, &key.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		k.unknown.Add(hash, struct{}{})
		return APIKey{}, ErrInvalidAPIKey
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("postgres: authenticate: %w", err)
	}
	k.cache.Add(hash, key)
	return key, nil
}

// List returns every key, active ones first.
func (k *APIKeys) List(ctx context.Context) ([]APIKey, error) {
	rows, err := k.pool.Query(ctx, `SELECT id, name, roles, prefix, created_at, revoked_at FROM rapport.api_keys ORDER BY revoked_at IS NOT NULL, name, created_at`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list API keys: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (APIKey, error) {
		var key APIKey
		err := row.Scan(&key.ID, &key.Name, &key.Roles, &key.Prefix, &key.CreatedAt, &key.RevokedAt)
		return key, err
	})
}

// Revoke revokes the active key with this name (ignoring case) or id. This process stops
// accepting it at once; others within APIKeyCacheTTL.
func (k *APIKeys) Revoke(ctx context.Context, nameOrID string) error {
	id, _ := uuid.Parse(nameOrID)
	tag, err := k.pool.Exec(ctx, `UPDATE rapport.api_keys SET revoked_at = now() WHERE (lower(name) = lower($1) OR id = $2) AND revoked_at IS NULL`, nameOrID, id)
	if err != nil {
		return fmt.Errorf("postgres: revoke API key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s", ErrAPIKeyNotFound, nameOrID)
	}
	k.cache.Purge()
	return nil
}
