package postgres

import "github.com/google/uuid"

// SealForTest wraps a data key as the keyring would, for tests that write
// many keys straight into the key table.
func SealForTest(k *Keyring, customerID uuid.UUID, key []byte) []byte {
	kek, _ := k.primaryKEK()
	return seal(kek, key, customerID[:])
}
