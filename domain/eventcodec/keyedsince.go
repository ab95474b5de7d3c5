package eventcodec

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// KeyedSince is the mark from which every event of the log must be keyed:
// the head of the log when the keyed rule took effect. Without it, a
// database writer could rewrite a whole stream under the public unkeyed
// rule and pass it off as one written before the upgrade. The service
// keeps it signed under the chain key, so such a writer can neither forge
// nor move it.
type KeyedSince struct {
	// Position is the first log position that must be keyed: an unkeyed
	// event at or after it was written without the key.
	Position eventstore.Position
	// Problem, when not empty, says why the mark cannot be trusted (its
	// signature does not verify, or it had to be re-created although keyed
	// events existed). Then no unkeyed event is trusted: each is rejected
	// with this reason.
	Problem string
}

// WithKeyedSince makes the codec's verifiers reject unkeyed events at or
// after the mark (every unkeyed event, when the mark has a problem).
func WithKeyedSince(mark KeyedSince) Option {
	return func(c *Codec) { c.keyedSince = &mark }
}

// SignKeyedSince signs a keyed-since mark (its position, and whether it
// had to be re-created) under the chain key.
func (k ChainKey) SignKeyedSince(position eventstore.Position, recreated bool) string {
	mac := hmac.New(sha256.New, k.chain)
	mac.Write([]byte("rapport-keyed-since-v1\x00"))
	var b [9]byte
	binary.BigEndian.PutUint64(b[:8], uint64(position))
	if recreated {
		b[8] = 1
	}
	mac.Write(b[:])
	return hex.EncodeToString(mac.Sum(nil))
}

// CheckKeyedSince reports whether signature signs the mark under the
// chain key.
func (k ChainKey) CheckKeyedSince(position eventstore.Position, recreated bool, signature string) bool {
	return hmac.Equal([]byte(k.SignKeyedSince(position, recreated)), []byte(signature))
}

// checkUnkeyed rejects an unkeyed event the mark says must be keyed.
func (m *KeyedSince) checkUnkeyed(rec eventstore.RecordedEvent) string {
	switch {
	case m == nil:
		return ""
	case m.Problem != "":
		return fmt.Sprintf("it uses the unkeyed chain, and %s", m.Problem)
	case rec.Position >= m.Position:
		return fmt.Sprintf("unkeyed event after the keyed-since mark (log position %d, at or after %d): rewritten by a database writer", rec.Position, m.Position)
	}
	return ""
}
