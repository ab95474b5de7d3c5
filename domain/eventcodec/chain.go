package eventcodec

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// ChainKeyed is Metadata.Chain for the keyed rule: HMAC-SHA-256 under a
// key derived from the master key. A plain hash can be recomputed by
// anyone who can write the store; a keyed one only by a holder of the
// master key, so an edit by a database writer cannot be hidden.
const ChainKeyed = 2

// ChainKey keys the hash chain and signs anchors. Both keys derive from
// the deployment's master key with HKDF-SHA-256 under their own labels,
// so neither can stand in for the other or for the master key.
type ChainKey struct {
	id     string
	chain  []byte
	anchor []byte
}

// DeriveChainKey derives the chain and anchor keys from a master key.
func DeriveChainKey(masterKey []byte) (ChainKey, error) {
	if len(masterKey) < 16 {
		return ChainKey{}, errors.New("eventcodec: the master key is too short to derive a chain key")
	}
	chain, err := hkdf.Key(sha256.New, masterKey, nil, "rapport event chain v2", 32)
	if err != nil {
		return ChainKey{}, fmt.Errorf("eventcodec: derive chain key: %w", err)
	}
	anchor, err := hkdf.Key(sha256.New, masterKey, nil, "rapport audit anchor v1", 32)
	if err != nil {
		return ChainKey{}, fmt.Errorf("eventcodec: derive anchor key: %w", err)
	}
	// The id names the key in each event without revealing it, so that
	// chains written before a master-key rotation stay verifiable.
	mac := hmac.New(sha256.New, chain)
	mac.Write([]byte("key id"))
	return ChainKey{id: hex.EncodeToString(mac.Sum(nil)[:8]), chain: chain, anchor: anchor}, nil
}

// ID names the key in the metadata of the events it chains.
func (k ChainKey) ID() string { return k.id }

// chainHash is the hash that chains an event to the previous one: over a
// length-prefixed encoding (unambiguous: no two different events share an
// input) of the previous hash, the event's place (stream, revision),
// identity (id, type), payload bytes and metadata with Hash blank, which
// holds the recorded time. The rule is the metadata's: meta.Chain 0 is the
// first, unkeyed SHA-256 rule; ChainKeyed is HMAC-SHA-256 under key.
func chainHash(key *ChainKey, rec eventstore.RecordedEvent, meta Metadata) (string, error) {
	meta.Hash = ""
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return "", fmt.Errorf("eventcodec: marshal metadata: %w", err)
	}
	var h hash.Hash
	switch meta.Chain {
	case 0:
		h = sha256.New()
		h.Write([]byte("rapport-chain-v1"))
	case ChainKeyed:
		if key == nil {
			return "", errors.New("eventcodec: no chain key")
		}
		h = hmac.New(sha256.New, key.chain)
		h.Write([]byte("rapport-chain-v2"))
	default:
		return "", fmt.Errorf("eventcodec: unknown chain rule %d", meta.Chain)
	}
	write := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	write([]byte(meta.PrevHash))
	write([]byte(rec.Stream))
	write([]byte(strconv.FormatUint(rec.Revision, 10)))
	write(rec.ID[:])
	write([]byte(rec.Type))
	write(rec.Data)
	write(metaJSON)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// LinkError describes the first event of a stream whose hash does not
// follow from the events before it, or that the store's own columns
// contradict.
type LinkError struct {
	Revision uint64
	EventID  uuid.UUID
	Reason   string
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("eventcodec: chain broken at revision %d (event %s): %s", e.Revision, e.EventID, e.Reason)
}

// DefaultClockTolerance is how far the store's recorded_at may lie from
// the recorded time in the hashed metadata: the command side reads its
// clock before it appends, and the store stamps the row with its own.
const DefaultClockTolerance = time.Minute

// Verifier recomputes a stream's hash chain one event at a time, so that a
// history of any length is checked in constant memory. Besides the chain
// it checks what the store keeps beside each event and the hash cannot
// cover: the revisions follow one another, the global positions rise with
// them, and the recorded_at column agrees with the hashed recorded time.
type Verifier struct {
	// ClockTolerance bounds the disagreement between the store's
	// recorded_at and the hashed recorded time (DefaultClockTolerance when
	// zero).
	ClockTolerance time.Duration

	keys     []ChainKey
	mark     *KeyedSince
	next     uint64
	lastPos  eventstore.Position
	prevHash string
	keyed    bool
	// LastHash is the hash of the last event verified.
	LastHash string
	// Legacy counts the events verified under the unkeyed first rule;
	// LastLegacy says the last one was.
	Legacy     int
	LastLegacy bool
}

// NewVerifier returns a verifier that accepts chains keyed with the
// codec's chain keys, and unkeyed legacy chains up to a stream's first
// keyed event and before the codec's keyed-since mark.
func (c *Codec) NewVerifier() *Verifier {
	v := &Verifier{mark: c.keyedSince}
	if c.chain != nil {
		v.keys = append([]ChainKey{*c.chain}, c.older...)
	}
	return v
}

func (v *Verifier) key(id string) *ChainKey {
	for i := range v.keys {
		if v.keys[i].id == id {
			return &v.keys[i]
		}
	}
	return nil
}

// Verify checks the next event of the stream; it returns a *LinkError for
// the first event that does not chain.
func (v *Verifier) Verify(rec eventstore.RecordedEvent) error {
	fail := func(format string, args ...any) error {
		return &LinkError{Revision: rec.Revision, EventID: rec.ID, Reason: fmt.Sprintf(format, args...)}
	}
	if rec.Revision != v.next {
		return fail("revision %d follows revision %d: an event is missing or out of place", rec.Revision, int64(v.next)-1)
	}
	// Not-before rather than after: EventStoreDB may give the events of one
	// append one commit position.
	if v.next > 0 && rec.Position < v.lastPos {
		return fail("its log position %d is before the previous event's %d: the store's positions were changed", rec.Position, v.lastPos)
	}
	var meta Metadata
	if err := json.Unmarshal(rec.Metadata, &meta); err != nil {
		return fail("metadata is not readable: %v", err)
	}
	if meta.PrevHash != v.prevHash {
		return fail("its previous hash does not match the event before it")
	}
	var key *ChainKey
	switch meta.Chain {
	case 0:
		if v.keyed {
			return fail("it uses the unkeyed chain after a keyed event: the history was rewritten")
		}
		if reason := v.mark.checkUnkeyed(rec); reason != "" {
			return fail("%s", reason)
		}
	case ChainKeyed:
		if key = v.key(meta.ChainKey); key == nil {
			return fail("it is chained with a key this service does not hold (%q)", meta.ChainKey)
		}
		if meta.RecordedAt.IsZero() {
			return fail("its metadata holds no recorded time")
		}
	default:
		return fail("unknown chain rule %d", meta.Chain)
	}
	want, err := chainHash(key, rec, meta)
	if err != nil {
		return fail("%v", err)
	}
	if !hmac.Equal([]byte(meta.Hash), []byte(want)) {
		return fail("its content does not match its hash")
	}
	if !meta.RecordedAt.IsZero() && !rec.RecordedAt.IsZero() {
		tolerance := v.ClockTolerance
		if tolerance <= 0 {
			tolerance = DefaultClockTolerance
		}
		if d := rec.RecordedAt.Sub(meta.RecordedAt); d > tolerance || d < -tolerance {
			return fail("the store's recorded_at %s disagrees with the hashed recorded time %s",
				rec.RecordedAt.UTC().Format(time.RFC3339Nano), meta.RecordedAt.UTC().Format(time.RFC3339Nano))
		}
	}
	v.LastLegacy = meta.Chain == 0
	if v.LastLegacy {
		v.Legacy++
	} else {
		v.keyed = true
	}
	v.next++
	v.lastPos = rec.Position
	v.prevHash = meta.Hash
	v.LastHash = meta.Hash
	return nil
}

// ErrNoChainKey says the codec holds no chain key, so it cannot sign.
var ErrNoChainKey = errors.New("eventcodec: no chain key (the service's master key is needed)")

// SignAnchor signs msg (an audit anchor's digest) with the anchor key of
// the current chain key, and names that key.
func (c *Codec) SignAnchor(msg []byte) (keyID, signature string, err error) {
	if c.chain == nil {
		return "", "", ErrNoChainKey
	}
	return c.chain.id, anchorMAC(c.chain.anchor, msg), nil
}

// CheckAnchor reports whether signature signs msg under the anchor key of
// the chain key keyID names (the current one or an older one).
func (c *Codec) CheckAnchor(keyID string, msg []byte, signature string) bool {
	for _, k := range c.NewVerifier().keys {
		if k.id == keyID {
			return hmac.Equal([]byte(anchorMAC(k.anchor, msg)), []byte(signature))
		}
	}
	return false
}

func anchorMAC(key, msg []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("rapport-anchor-v1\x00"))
	mac.Write(msg)
	return hex.EncodeToString(mac.Sum(nil))
}
