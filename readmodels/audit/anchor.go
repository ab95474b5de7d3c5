package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// An Anchor is a signed digest of every audited stream's head (customers',
// goals', the routing rules') and of the
// log's head, taken at an instant and kept away from the database (a file
// in an auditor's archive, a ticket). A chain proves that what is stored
// has not been edited; it cannot prove that nothing was cut from the end,
// or that a stream was not rolled back to an earlier state. Checked
// against an anchor, verification can: every anchored head must still be
// there, with the hash and position it had.
//
// The signature is HMAC-SHA-256 under a key derived from the master key,
// so only the service can make an anchor, and an anchor cannot be edited
// to match a shortened log.
type Anchor struct {
	// Format is AnchorFormat.
	Format  string    `json:"format"`
	TakenAt time.Time `json:"taken_at"`
	// Log is the last event of the global log at the time.
	Log LogHead `json:"log"`
	// Streams holds the head of every audited stream: customers' by
	// customer id, then the others by stream name.
	Streams []StreamHead `json:"streams"`
	// Digest is SHA-256 over the canonical text of the fields above; KeyID
	// names the key Signature (an HMAC of the digest) was made with.
	Digest    string `json:"digest"`
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"`
}

// AnchorFormat names the anchor's format.
const AnchorFormat = "rapport-anchor-v1"

// LogHead locates the last event of the log.
type LogHead struct {
	Position uint64    `json:"position"`
	Stream   string    `json:"stream"`
	Revision uint64    `json:"revision"`
	EventID  uuid.UUID `json:"event_id"`
}

// StreamHead is a stream's last event when the anchor was taken.
type StreamHead struct {
	// CustomerID names a customer's stream; Stream names any other audited
	// stream (a goal's, the routing rules'). One of them is set, so that a
	// customer's head reads as it did before other streams were anchored,
	// and an anchor taken then still verifies.
	CustomerID uuid.UUID `json:"customer_id,omitzero"`
	Stream     string    `json:"stream,omitempty"`
	Revision   uint64    `json:"revision"`
	Position   uint64    `json:"position"`
	Hash       string    `json:"hash"`
	// Entry is this head alone, signed, in one string: what
	// GET /v1/customers/{id}/verification?anchor= takes, so that one
	// customer can be checked without sending the whole anchor.
	Entry string `json:"entry"`
	// takenAt is the anchor's time, carried by an entry.
	takenAt time.Time
}

// ErrInvalidAnchor says an anchor or an anchor entry is malformed or its
// signature does not verify.
var ErrInvalidAnchor = errors.New("audit: invalid anchor")

// ErrBrokenStreams refuses to anchor a log whose chains do not verify: an
// anchor would seal the tampering.
var ErrBrokenStreams = errors.New("audit: some streams do not verify")

func (a *Anchor) canonical() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%s\nlog %d %s %d %s\n", AnchorFormat, a.TakenAt.UTC().Format(time.RFC3339Nano), a.Log.Position, a.Log.Stream, a.Log.Revision, a.Log.EventID)
	for _, s := range a.Streams {
		fmt.Fprintf(&b, "%s %d %d %s\n", s.label(), s.Revision, s.Position, s.Hash)
	}
	return []byte(b.String())
}

// headFor is the head of stream, named as StreamHead says.
func headFor(stream string) StreamHead {
	if id := customerOf(stream); id != uuid.Nil {
		return StreamHead{CustomerID: id}
	}
	return StreamHead{Stream: stream}
}

// label names the head in the canonical text and in its entry: the
// customer id (as before other streams were anchored) or the stream name,
// which is never a UUID, so the two cannot be confused.
func (h StreamHead) label() string {
	if h.Stream != "" {
		return h.Stream
	}
	return h.CustomerID.String()
}

// StreamName is the name of the stream the head is of.
func (h StreamHead) StreamName() string {
	if h.Stream != "" {
		return h.Stream
	}
	return domain.StreamName(h.CustomerID)
}

func (h StreamHead) entryText(takenAt time.Time) string {
	return fmt.Sprintf("%s.%s.%d.%d.%s", "a1", h.label(), h.Revision, h.Position, h.Hash) + "." + strconv.FormatInt(takenAt.UnixNano(), 10)
}

// Anchor verifies every stream, reading the log once, and signs the heads
// of all. It refuses with ErrBrokenStreams (and the broken streams'
// verifications) when a chain does not verify.
func (a *Auditor) Anchor(ctx context.Context, now time.Time, progress func(events int)) (Anchor, []Verification, error) {
	anchor := Anchor{Format: AnchorFormat, TakenAt: now.UTC()}
	var broken []Verification
	err := a.verifyLog(ctx, nil, progress, func(v Verification) error {
		if !v.Intact {
			broken = append(broken, v)
			return nil
		}
		head := headFor(v.Stream)
		head.Revision, head.Position, head.Hash = *v.LastRevision, *v.LastPosition, v.LastHash
		anchor.Streams = append(anchor.Streams, head)
		return nil
	}, &anchor.Log)
	if err != nil {
		return Anchor{}, nil, err
	}
	if len(broken) > 0 {
		return Anchor{}, broken, fmt.Errorf("%w: %d broken; fix or explain them before anchoring", ErrBrokenStreams, len(broken))
	}
	slices.SortFunc(anchor.Streams, compareHeads)
	digest := sha256.Sum256(anchor.canonical())
	anchor.Digest = hex.EncodeToString(digest[:])
	if anchor.KeyID, anchor.Signature, err = a.codec.SignAnchor(digest[:]); err != nil {
		return Anchor{}, nil, err
	}
	for i := range anchor.Streams {
		h := &anchor.Streams[i]
		text := h.entryText(anchor.TakenAt)
		_, sig, err := a.codec.SignAnchor([]byte(text))
		if err != nil {
			return Anchor{}, nil, err
		}
		h.Entry = text + "." + anchor.KeyID + "." + sig
	}
	return anchor, nil, nil
}

// CheckAnchor verifies an anchor's digest and signature.
func (a *Auditor) CheckAnchor(anchor *Anchor) error {
	if anchor.Format != AnchorFormat {
		return fmt.Errorf("%w: format %q, want %q", ErrInvalidAnchor, anchor.Format, AnchorFormat)
	}
	digest := sha256.Sum256(anchor.canonical())
	if !hmac.Equal([]byte(hex.EncodeToString(digest[:])), []byte(anchor.Digest)) {
		return fmt.Errorf("%w: its content does not match its digest", ErrInvalidAnchor)
	}
	if !a.codec.CheckAnchor(anchor.KeyID, digest[:], anchor.Signature) {
		return fmt.Errorf("%w: the signature does not verify with this service's keys", ErrInvalidAnchor)
	}
	for i := range anchor.Streams {
		anchor.Streams[i].takenAt = anchor.TakenAt
	}
	return nil
}

// ParseAnchorEntry reads and checks one stream's signed entry of an
// anchor (StreamHead.Entry).
func (a *Auditor) ParseAnchorEntry(entry string) (StreamHead, error) {
	parts := strings.Split(entry, ".")
	bad := func(why string) (StreamHead, error) { return StreamHead{}, fmt.Errorf("%w: %s", ErrInvalidAnchor, why) }
	if len(parts) != 8 || parts[0] != "a1" {
		return bad("an entry has the form a1.STREAM.REVISION.POSITION.HASH.TAKEN.KEY.SIGNATURE")
	}
	var h StreamHead
	var err error
	if h.CustomerID, err = uuid.Parse(parts[1]); err != nil {
		if !Audited(parts[1]) || customerOf(parts[1]) != uuid.Nil {
			return bad("the stream is neither a customer id nor an audited stream")
		}
		h.CustomerID, h.Stream = uuid.Nil, parts[1]
	}
	if h.Revision, err = strconv.ParseUint(parts[2], 10, 63); err != nil {
		return bad("the revision is not a number")
	}
	if h.Position, err = strconv.ParseUint(parts[3], 10, 64); err != nil {
		return bad("the position is not a number")
	}
	h.Hash = parts[4]
	taken, err := strconv.ParseInt(parts[5], 10, 64)
	if err != nil {
		return bad("the time is not a number")
	}
	h.takenAt = time.Unix(0, taken).UTC()
	text := strings.Join(parts[:6], ".")
	if !a.codec.CheckAnchor(parts[6], []byte(text), parts[7]) {
		return bad("the signature does not verify with this service's keys")
	}
	h.Entry = entry
	return h, nil
}

// AnchorCheck is what verification against an anchor found.
type AnchorCheck struct {
	TakenAt  time.Time `json:"taken_at"`
	Revision uint64    `json:"revision"`
	Hash     string    `json:"hash"`
}

// VerifyAnchored verifies the customer's stream and checks it against its
// anchored head: the head must still be there with its hash and position
// (no truncation, no rollback), and every event after it must be keyed.
func (a *Auditor) VerifyAnchored(ctx context.Context, customerID uuid.UUID, head StreamHead) (Verification, error) {
	if head.CustomerID != customerID || head.Stream != "" {
		return Verification{}, fmt.Errorf("%w: the entry is for %s", ErrInvalidAnchor, head.label())
	}
	return a.VerifyStreamAnchored(ctx, domain.StreamName(customerID), head)
}

// VerifyStreamAnchored is VerifyAnchored for any audited stream.
func (a *Auditor) VerifyStreamAnchored(ctx context.Context, stream string, head StreamHead) (Verification, error) {
	if !Audited(stream) {
		return Verification{}, fmt.Errorf("%w: %q", ErrNotAudited, stream)
	}
	if head.StreamName() != stream {
		return Verification{}, fmt.Errorf("%w: the entry is for %s", ErrInvalidAnchor, head.label())
	}
	v, err := a.verify(ctx, stream, &head)
	if errors.Is(err, ErrCustomerNotFound) || errors.Is(err, ErrStreamNotFound) {
		v = newVerification(stream)
		v.anchorGone(head)
		return v, nil
	}
	return v, err
}

// anchorGone reports an anchored stream that has no events any more.
func (v *Verification) anchorGone(head StreamHead) {
	v.Intact = false
	v.Anchor = &AnchorCheck{TakenAt: head.takenAt, Revision: head.Revision, Hash: head.Hash}
	v.BrokenAt = &Break{Revision: 0, Reason: fmt.Sprintf("the stream had %d events when the anchor was taken and has none now: it was deleted", head.Revision+1)}
}

// anchorState follows one stream through an anchored verification.
type anchorState struct {
	head StreamHead
	seen bool
}

// checkAnchored checks an event against the anchored head: at the head's
// revision it must be the anchored event; after it, keyed. It reports a
// break.
func (v *Verification) checkAnchored(st *anchorState, rec eventstore.RecordedEvent, legacy bool) bool {
	fail := func(reason string) bool {
		v.Intact = false
		v.BrokenAt = &Break{Revision: rec.Revision, EventID: rec.ID, Reason: reason}
		return true
	}
	switch {
	case rec.Revision == st.head.Revision:
		st.seen = true
		if v.LastHash != st.head.Hash {
			return fail("its hash differs from the one anchored at " + st.head.takenAt.Format(time.RFC3339) + ": the stream was rolled back or rewritten since")
		}
		if uint64(rec.Position) != st.head.Position {
			return fail(fmt.Sprintf("its log position %d differs from the anchored %d: the store's positions were changed", rec.Position, st.head.Position))
		}
	case rec.Revision > st.head.Revision && legacy:
		return fail("it uses the unkeyed chain but was written after the anchor: the history was rewritten")
	}
	return false
}

// finishAnchored reports a stream that ends before its anchored head.
func (v *Verification) finishAnchored(st *anchorState) {
	v.Anchor = &AnchorCheck{TakenAt: st.head.takenAt, Revision: st.head.Revision, Hash: st.head.Hash}
	if v.Intact && !st.seen {
		last := int64(-1)
		if v.LastRevision != nil {
			last = int64(*v.LastRevision)
		}
		v.Intact = false
		v.BrokenAt = &Break{Revision: uint64(last + 1), Reason: fmt.Sprintf(
			"the stream ends at revision %d but reached revision %d when the anchor was taken: it was truncated", last, st.head.Revision)}
	}
}

// VerifyAllAnchored verifies every stream like VerifyAll, and checks the
// log against the anchor: every anchored stream must reach its anchored
// head unchanged, a stream the anchor does not know must be keyed from its
// first event (it was written after the anchor, so after the upgrade that
// keyed chains), and the anchored log head must still be in the log.
func (a *Auditor) VerifyAllAnchored(ctx context.Context, anchor *Anchor, progress func(events int), report func(Verification) error) error {
	if err := a.CheckAnchor(anchor); err != nil {
		return err
	}
	heads := make(map[string]StreamHead, len(anchor.Streams))
	for _, h := range anchor.Streams {
		heads[h.StreamName()] = h
	}
	var logHead LogHead
	err := a.verifyLog(ctx, heads, progress, func(v Verification) error {
		delete(heads, v.Stream)
		return report(v)
	}, &logHead)
	if err != nil {
		return err
	}
	// Anchored streams that the log no longer holds at all.
	var gone []StreamHead
	for _, h := range heads {
		gone = append(gone, h)
	}
	slices.SortFunc(gone, compareHeads)
	for _, h := range gone {
		v := newVerification(h.StreamName())
		v.anchorGone(h)
		if err := report(v); err != nil {
			return err
		}
	}
	return a.checkLogHead(ctx, anchor.Log)
}

// ErrLogHeadMissing says the anchored log head is no longer in the log.
var ErrLogHeadMissing = errors.New("audit: the anchored log head is missing")

func (a *Auditor) checkLogHead(ctx context.Context, head LogHead) error {
	if head.Stream == "" {
		return nil // the log was empty when anchored
	}
	recs, err := a.store.ReadStream(ctx, head.Stream, eventstore.ReadStreamOptions{Direction: eventstore.Forwards, From: head.Revision, Limit: 1})
	if err != nil && !errors.Is(err, eventstore.ErrStreamNotFound) {
		return fmt.Errorf("audit: read the anchored log head: %w", err)
	}
	if len(recs) == 0 || recs[0].Revision != head.Revision || recs[0].ID != head.EventID || uint64(recs[0].Position) != head.Position {
		return fmt.Errorf("%w: event %s (%s revision %d) at position %d", ErrLogHeadMissing, head.EventID, head.Stream, head.Revision, head.Position)
	}
	return nil
}

// compareHeads orders heads by label: customers by id (lower-case hex, so
// before "goal-…" and "routing-…"), then the other streams by name.
func compareHeads(x, y StreamHead) int { return strings.Compare(x.label(), y.label()) }
