package webhooks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// Sealer encrypts signing secrets for the database. Its key derives
// (HKDF-SHA256) from the keyring's index secret, which the database keeps
// wrapped under the master key and which a master-key rotation re-wraps
// without changing: so sealed secrets survive a rotation, and someone
// holding only the database cannot sign a webhook.
type Sealer struct{ aead cipher.AEAD }

// NewSealer derives the sealing key from the keyring's index secret.
func NewSealer(indexSecret []byte) (*Sealer, error) {
	if len(indexSecret) < 16 {
		return nil, errors.New("webhooks: the index secret is too short to derive a sealing key")
	}
	key, err := hkdf.Key(sha256.New, indexSecret, nil, "rapport webhook secrets v1", 32)
	if err != nil {
		return nil, fmt.Errorf("webhooks: derive sealing key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts a secret bound to its subscription (the id is the
// associated data, so a sealed secret cannot be moved to another row).
func (s *Sealer) Seal(subscription uuid.UUID, secret string) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, []byte(secret), subscription[:])
}

// Open decrypts a sealed secret.
func (s *Sealer) Open(subscription uuid.UUID, sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("webhooks: sealed secret too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], subscription[:])
	if err != nil {
		return "", fmt.Errorf("webhooks: open secret of %s: %w", subscription, err)
	}
	return string(plain), nil
}
