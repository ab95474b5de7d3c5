package console

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A session token is 32 random bytes, base64url in the cookie. Everything
// the database keeps is derived from it under separate labels, so that
// none of it can be turned back into the token or used in its place.
const tokenBytes = 32

func derive(token []byte, label string) []byte {
	mac := hmac.New(sha256.New, token)
	mac.Write([]byte("rapport console " + label))
	return mac.Sum(nil)
}

func newToken() (string, []byte, error) {
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, fmt.Errorf("console: session token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw), raw, nil
}

func parseToken(s string) ([]byte, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	return raw, err == nil && len(raw) == tokenBytes
}

// tokenHash is what the sessions table is keyed by.
func tokenHash(token []byte) []byte { return derive(token, "session id") }

// csrfToken is the session's CSRF token: derived from the session token,
// so it need not be stored, and unknown to another site, which cannot read
// the cookie.
func csrfToken(token []byte) string {
	return base64.RawURLEncoding.EncodeToString(derive(token, "csrf"))
}

// seal encrypts the API key under a key derived from the session token:
// only the holder of the cookie can open it.
func seal(token []byte, apiKey string) ([]byte, error) {
	aead, err := sealer(token)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, []byte(apiKey), tokenHash(token)), nil
}

func unseal(token, sealed []byte) (string, error) {
	aead, err := sealer(token)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("console: sealed key too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], tokenHash(token))
	if err != nil {
		return "", fmt.Errorf("console: open sealed key: %w", err)
	}
	return string(plain), nil
}

func sealer(token []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(derive(token, "seal"))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// session is one row of rapport.console_sessions.
type session struct {
	sealedKey []byte
	keyName   string
	createdAt time.Time
	expiresAt time.Time
	lastSeen  time.Time
}

// errNoSession: the token names no session (never made, signed out, or
// swept after expiry).
var errNoSession = errors.New("console: no such session")

// SessionStore keeps sessions in PostgreSQL (migration 00019).
type SessionStore struct{ pool *pgxpool.Pool }

// NewSessionStore returns the store over the service's database.
func NewSessionStore(pool *pgxpool.Pool) *SessionStore { return &SessionStore{pool: pool} }

func (s *SessionStore) create(ctx context.Context, hash []byte, ss session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO rapport.console_sessions (token_hash, sealed_key, key_name, created_at, expires_at, last_seen_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, hash, ss.sealedKey, ss.keyName, ss.createdAt, ss.expiresAt, ss.lastSeen)
	if err != nil {
		return fmt.Errorf("console: create session: %w", err)
	}
	return nil
}

func (s *SessionStore) get(ctx context.Context, hash []byte) (session, error) {
	var ss session
	err := s.pool.QueryRow(ctx, `SELECT sealed_key, key_name, created_at, expires_at, last_seen_at
		FROM rapport.console_sessions WHERE token_hash = $1`, hash).Scan(&ss.sealedKey, &ss.keyName, &ss.createdAt, &ss.expiresAt, &ss.lastSeen)
	if errors.Is(err, pgx.ErrNoRows) {
		return ss, errNoSession
	}
	if err != nil {
		return ss, fmt.Errorf("console: read session: %w", err)
	}
	return ss, nil
}

func (s *SessionStore) touch(ctx context.Context, hash []byte, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE rapport.console_sessions SET last_seen_at = $2 WHERE token_hash = $1 AND last_seen_at < $2`, hash, at)
	if err != nil {
		return fmt.Errorf("console: touch session: %w", err)
	}
	return nil
}

func (s *SessionStore) delete(ctx context.Context, hash []byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM rapport.console_sessions WHERE token_hash = $1`, hash); err != nil {
		return fmt.Errorf("console: end session: %w", err)
	}
	return nil
}

// sweep deletes the sessions that have ended, by lifetime or idleness.
func (s *SessionStore) sweep(ctx context.Context, now time.Time, idle time.Duration) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM rapport.console_sessions WHERE expires_at <= $1 OR last_seen_at <= $2`, now, now.Add(-idle))
	if err != nil {
		return fmt.Errorf("console: sweep sessions: %w", err)
	}
	return nil
}
