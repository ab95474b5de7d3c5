package eventcodec

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// encryptedPrefix marks a personal field stored encrypted: the rest is
// base64(nonce || AES-256-GCM ciphertext). The prefix lets readers that
// know nothing of event types (the raw events endpoint) find such fields.
const encryptedPrefix = "enc:v1:"

// IsEncrypted reports whether a stored string field is encrypted.
func IsEncrypted(s string) bool { return strings.HasPrefix(s, encryptedPrefix) }

// encrypt seals plain with the customer's key. The customer id is the
// additional data, so a field copied into another customer's event does
// not decrypt there.
func encrypt(key []byte, customerID uuid.UUID, plain string) (string, error) {
	if plain == "" {
		return "", nil // nothing to hide, and "" stays distinguishable from erased
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := aead.Seal(nonce, nonce, []byte(plain), customerID[:])
	return encryptedPrefix + base64.RawStdEncoding.EncodeToString(sealed), nil
}

func decrypt(key []byte, customerID uuid.UUID, stored string) (string, error) {
	sealed, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(stored, encryptedPrefix))
	if err != nil {
		return "", fmt.Errorf("encrypted field: %w", err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("encrypted field too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], customerID[:])
	if err != nil {
		return "", fmt.Errorf("encrypted field: %w", err)
	}
	return string(plain), nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	return cipher.NewGCM(block)
}

// RevealJSON returns a stored JSON payload with every encrypted string
// decrypted, or replaced by null when the customer's key was destroyed. It
// needs no knowledge of event types, so it serves the raw events endpoint
// for every event, current or historical.
func (c *Codec) RevealJSON(ctx context.Context, customerID uuid.UUID, data []byte) (json.RawMessage, bool, error) {
	if !strings.Contains(string(data), encryptedPrefix) {
		return data, false, nil
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keep numbers exactly as stored
	if err := dec.Decode(&doc); err != nil {
		return nil, false, fmt.Errorf("eventcodec: payload: %w", err)
	}
	key, err := c.keys.DataKey(ctx, customerID, false)
	erased := errors.Is(err, ErrKeyDestroyed)
	if err != nil && !erased {
		return nil, false, fmt.Errorf("eventcodec: data key: %w", err)
	}
	var walkErr error
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case string:
			if !IsEncrypted(v) {
				return v
			}
			if erased {
				return nil
			}
			plain, err := decrypt(key, customerID, v)
			if err != nil && walkErr == nil {
				walkErr = err
			}
			return plain
		case []any:
			for i := range v {
				v[i] = walk(v[i])
			}
		case map[string]any:
			for k := range v {
				v[k] = walk(v[k])
			}
		}
		return v
	}
	doc = walk(doc)
	if walkErr != nil {
		return nil, false, fmt.Errorf("eventcodec: decrypt: %w", walkErr)
	}
	out, err := json.Marshal(doc)
	return out, erased, err
}
