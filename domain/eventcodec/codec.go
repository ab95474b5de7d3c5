// Package eventcodec turns domain events into stored events and back: the
// JSON payload, the metadata every event carries, the encryption of personal
// fields with the customer's data key (crypto-shredding), and the hash chain
// that makes a stream's history tamper-evident. The command side encodes;
// projections, audits and the command side's loader decode.
package eventcodec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// Metadata is what every stored event carries besides its payload
// (PRODUCT.md: event id, type, schema version, customer id, occurred_at,
// recorded_at, actor, correlation id, causation id), plus the request
// fingerprint that makes retries safe and the hash chain.
//
// The chain hash covers the JSON encoding of this struct with Hash blank,
// so a field added later must be tagged omitempty: old events then encode
// as they did when they were hashed.
type Metadata struct {
	SchemaVersion int       `json:"schema_version"`
	CustomerID    uuid.UUID `json:"customer_id"`
	OccurredAt    time.Time `json:"occurred_at"`
	RecordedAt    time.Time `json:"recorded_at"`
	Actor         string    `json:"actor"`
	CorrelationID string    `json:"correlation_id"`
	// CausationID is the command that caused the event. Every event of one
	// command has the same causation id.
	CausationID uuid.UUID `json:"causation_id"`
	// RequestHash fingerprints the request that carried the command, so
	// that a retry with the same idempotency key but another body is told
	// apart from a true retry.
	RequestHash string `json:"request_hash,omitempty"`
	// Chain is the rule Hash follows: 0 (absent) for the first, unkeyed
	// SHA-256 rule of events written before chains were keyed, ChainKeyed
	// for HMAC-SHA-256 under the chain key ChainKey names. Old events keep
	// their rule, so no history is rewritten.
	Chain    int    `json:"chain,omitempty"`
	ChainKey string `json:"chain_key,omitempty"`
	// PrevHash is the Hash of the stream's previous event ("" for the
	// first); Hash chains this event to it.
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// RecordedTime is when the event was recorded, as its hashed metadata
// says: the time auditors read and "as of" folds by. The store's own
// column (stored) stands in only for an event that carries none.
func (m Metadata) RecordedTime(stored time.Time) time.Time {
	if m.RecordedAt.IsZero() {
		return stored.UTC()
	}
	return m.RecordedAt.UTC()
}

// Keyring holds the customers' data keys outside the event log; destroying
// a key makes the customer's personal fields unreadable in every copy of
// the log.
type Keyring interface {
	// DataKey returns the customer's 32-byte data key, creating it if
	// create is true and there is none. It returns ErrKeyDestroyed after
	// the customer's data was erased.
	DataKey(ctx context.Context, customerID uuid.UUID, create bool) ([]byte, error)
}

// KeyCreator is a Keyring that can make a customer's first key without
// looking for one first. The codec uses it for a batch that begins a
// stream (a registration), whose customer has no key yet but in a retry:
// one round trip to the key store instead of a failed look-up and then
// the creation. It returns the stored key if there is one, and
// ErrKeyDestroyed after an erasure, as DataKey does.
type KeyCreator interface {
	CreateDataKey(ctx context.Context, customerID uuid.UUID) ([]byte, error)
}

// ErrKeyDestroyed says that the customer's data key was destroyed: its
// personal data is gone for good.
var ErrKeyDestroyed = errors.New("eventcodec: data key destroyed")

// Codec encodes and decodes the events of customer streams.
type Codec struct {
	registry *domain.Registry
	keys     Keyring
	// chain keys the hash chain; nil writes the unkeyed legacy rule.
	chain *ChainKey
	// older are previous chain keys, still accepted by verification.
	older []ChainKey
	// keyedSince, when set, is the mark from which verifiers reject
	// unkeyed events.
	keyedSince *KeyedSince
}

// Option adjusts a codec.
type Option func(*Codec)

// WithChainKey keys the hash chain of the events the codec writes with
// current (HMAC-SHA-256), and lets its verifiers accept chains keyed with
// current or any of older. A service always sets it: without it the codec
// writes the unkeyed rule, which anyone who can write the store can
// recompute (tools and tests that hold no master key use that).
func WithChainKey(current ChainKey, older ...ChainKey) Option {
	return func(c *Codec) {
		c.chain = &current
		c.older = older
	}
}

// New returns a codec that encrypts personal fields with keys from keys.
func New(registry *domain.Registry, keys Keyring, options ...Option) *Codec {
	c := &Codec{registry: registry, keys: keys}
	for _, o := range options {
		o(c)
	}
	return c
}

// NewPlaintext returns a codec that stores personal fields in clear. It
// exists to measure what encryption costs; a service must never use it,
// since erasure could then not shred anything.
func NewPlaintext(registry *domain.Registry) *Codec {
	return &Codec{registry: registry}
}

// Registry returns the codec's event registry.
func (c *Codec) Registry() *domain.Registry { return c.registry }

// Batch describes the events of one command, to be appended after the
// stream's current revision.
type Batch struct {
	Stream string
	// FirstRevision is the revision the first event will get.
	FirstRevision uint64
	// PrevHash is the hash of the stream's last event ("" for a new stream).
	PrevHash string
	// Metadata common to every event; OccurredAt, SchemaVersion and the
	// hashes are filled per event.
	Metadata Metadata
	Events   []domain.Event
	// IDs are the event ids, one per event.
	IDs []uuid.UUID
}

// dataKeyFor returns the key that encrypts the batch's personal fields,
// creating it if need be.
func (c *Codec) dataKeyFor(ctx context.Context, b Batch) ([]byte, error) {
	if creator, ok := c.keys.(KeyCreator); ok && b.FirstRevision == 0 {
		return creator.CreateDataKey(ctx, b.Metadata.CustomerID)
	}
	return c.keys.DataKey(ctx, b.Metadata.CustomerID, true)
}

// Encode encrypts, serialises and chains the events of a batch. It returns
// what to append and the hash of the last event.
func (c *Codec) Encode(ctx context.Context, b Batch) ([]eventstore.EventData, string, error) {
	if len(b.IDs) != len(b.Events) {
		return nil, "", fmt.Errorf("eventcodec: %d ids for %d events", len(b.IDs), len(b.Events))
	}
	var key []byte
	out := make([]eventstore.EventData, len(b.Events))
	prev := b.PrevHash
	for i, e := range b.Events {
		if hasPersonalFields(e) && c.keys != nil {
			if key == nil {
				var err error
				if key, err = c.dataKeyFor(ctx, b); err != nil {
					return nil, "", fmt.Errorf("eventcodec: data key: %w", err)
				}
			}
			var err error
			e, err = domain.RewritePersonalFields(e, func(plain string) (string, error) {
				return encrypt(key, b.Metadata.CustomerID, plain)
			})
			if err != nil {
				return nil, "", fmt.Errorf("eventcodec: encrypt %s: %w", e.EventType(), err)
			}
		}
		data, err := domain.Marshal(e)
		if err != nil {
			return nil, "", fmt.Errorf("eventcodec: marshal %s: %w", e.EventType(), err)
		}
		meta := b.Metadata
		meta.SchemaVersion = SchemaVersion(e.EventType())
		meta.OccurredAt = e.BusinessTime().UTC()
		meta.RecordedAt = meta.RecordedAt.UTC()
		meta.PrevHash = prev
		meta.Hash = ""
		meta.Chain, meta.ChainKey = 0, ""
		if c.chain != nil {
			if meta.RecordedAt.IsZero() {
				return nil, "", errors.New("eventcodec: a keyed chain needs the recorded time in the metadata")
			}
			meta.Chain, meta.ChainKey = ChainKeyed, c.chain.id
		}
		record := eventstore.RecordedEvent{ID: b.IDs[i], Type: e.EventType(), Data: data, Stream: b.Stream, Revision: b.FirstRevision + uint64(i)}
		meta.Hash, err = chainHash(c.chain, record, meta)
		if err != nil {
			return nil, "", err
		}
		metaJSON, err := json.Marshal(meta)
		if err != nil {
			return nil, "", fmt.Errorf("eventcodec: marshal metadata: %w", err)
		}
		out[i] = eventstore.EventData{ID: b.IDs[i], Type: e.EventType(), Data: data, Metadata: metaJSON}
		prev = meta.Hash
	}
	return out, prev, nil
}

// hasPersonalFields reports whether e carries personal fields: domain
// events implement PersonalData on their pointer.
func hasPersonalFields(e domain.Event) bool {
	if _, ok := e.(domain.PersonalData); ok {
		return true
	}
	_, ok := reflect.New(reflect.TypeOf(e)).Interface().(domain.PersonalData)
	return ok
}

// SchemaVersion is the version suffix of a type name: 1 for
// "rapport.ContactLogged.v1".
func SchemaVersion(typeName string) int {
	i := strings.LastIndex(typeName, ".v")
	if i < 0 {
		return 0
	}
	v, err := strconv.Atoi(typeName[i+2:])
	if err != nil {
		return 0
	}
	return v
}

// Decoded is a stored event made readable again.
type Decoded struct {
	Record   eventstore.RecordedEvent
	Metadata Metadata
	Event    domain.Event
	// Erased says the customer's data key was destroyed: the personal
	// fields of Event are empty.
	Erased bool
}

// CustomerID is the customer the event is about: from its stream name, or
// its metadata for an event outside a customer stream.
func (d *Decoded) CustomerID() (uuid.UUID, error) {
	if id, ok := domain.CustomerIDFromStream(d.Record.Stream); ok {
		return id, nil
	}
	if d.Metadata.CustomerID != uuid.Nil {
		return d.Metadata.CustomerID, nil
	}
	return uuid.Nil, fmt.Errorf("eventcodec: event %s in stream %q names no customer", d.Record.ID, d.Record.Stream)
}

// Decode parses, upcasts and decrypts a stored event.
func (c *Codec) Decode(ctx context.Context, rec eventstore.RecordedEvent) (Decoded, error) {
	d := Decoded{Record: rec}
	if len(rec.Metadata) > 0 {
		if err := json.Unmarshal(rec.Metadata, &d.Metadata); err != nil {
			return d, fmt.Errorf("eventcodec: metadata of %s@%d: %w", rec.Stream, rec.Revision, err)
		}
	}
	e, err := c.registry.Decode(rec.Type, rec.Data)
	if err != nil {
		return d, fmt.Errorf("eventcodec: %s@%d: %w", rec.Stream, rec.Revision, err)
	}
	if hasPersonalFields(e) {
		if e, err = c.decrypt(ctx, &d, e); err != nil {
			return d, fmt.Errorf("eventcodec: decrypt %s@%d: %w", rec.Stream, rec.Revision, err)
		}
	}
	d.Event = e
	return d, nil
}

// decrypt returns a copy of e with its personal fields in clear, or empty
// (and d.Erased set) when the customer's key was destroyed.
func (c *Codec) decrypt(ctx context.Context, d *Decoded, e domain.Event) (domain.Event, error) {
	customerID := d.Metadata.CustomerID
	if customerID == uuid.Nil {
		customerID, _ = domain.CustomerIDFromStream(d.Record.Stream)
	}
	var key []byte
	return domain.RewritePersonalFields(e, func(stored string) (string, error) {
		if !IsEncrypted(stored) {
			return stored, nil
		}
		if c.keys == nil {
			return "", errors.New("a plaintext codec cannot decrypt")
		}
		if key == nil && !d.Erased {
			k, err := c.keys.DataKey(ctx, customerID, false)
			switch {
			case errors.Is(err, ErrKeyDestroyed):
				d.Erased = true
			case err != nil:
				return "", fmt.Errorf("data key: %w", err)
			default:
				key = k
			}
		}
		if d.Erased {
			return "", nil
		}
		return decrypt(key, customerID, stored)
	})
}

// KeyPrefetcher is implemented by keyrings that can load many customers'
// data keys in one round trip. It is optional: decoding works without it,
// one key lookup per customer not yet cached.
type KeyPrefetcher interface {
	// PrefetchKeys caches the data keys of these customers, so that the
	// DataKey calls that follow need no round trip. It need not fetch
	// every key; DataKey still does what it skipped.
	PrefetchKeys(ctx context.Context, customerIDs []uuid.UUID) error
}

// PrefetchKeys asks the keyring, when it can, to cache the data keys of
// these customers at once, ahead of decoding a batch of their events. An
// error is only a missed optimisation; Decode still looks keys up.
func (c *Codec) PrefetchKeys(ctx context.Context, customerIDs []uuid.UUID) error {
	p, ok := c.keys.(KeyPrefetcher)
	if !ok || len(customerIDs) == 0 {
		return nil
	}
	return p.PrefetchKeys(ctx, customerIDs)
}
