package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// The steps around an append that keep state outside the customer's
// stream consistent with it: email uniqueness and erasure.

// beforeAppend reserves a new email for the customer, or begins its
// erasure. The returned undo releases the reservation or forgets the
// erasure if the append does not happen.
func (h *Customers) beforeAppend(ctx context.Context, customerID uuid.UUID, before domain.Customer, events []domain.Event) (undo func(context.Context), err error) {
	undo = func(context.Context) {}
	if erases(events) {
		if err := h.cfg.Keys.BeginErasure(ctx, customerID); err != nil {
			return undo, fmt.Errorf("commands: %w", err)
		}
		return func(ctx context.Context) {
			if err := h.cfg.Keys.EndErasure(context.WithoutCancel(ctx), customerID); err != nil {
				h.cfg.Logger.WarnContext(ctx, "commands: forget pending erasure", "customer_id", customerID, "err", err)
			}
		}, nil
	}
	email, ok := newEmail(before, events)
	if !ok || email == "" {
		return undo, nil
	}
	if err := h.reserveEmail(ctx, email, customerID); err != nil {
		return undo, err
	}
	return func(ctx context.Context) {
		if err := h.cfg.Emails.Release(context.WithoutCancel(ctx), email, customerID); err != nil {
			h.cfg.Logger.WarnContext(ctx, "commands: release email reservation", "customer_id", customerID, "err", err)
		}
	}, nil
}

// reserveEmail claims email for the customer, or answers which customer
// holds it. A reservation left by a registration that never appended is
// taken over once it is stale.
func (h *Customers) reserveEmail(ctx context.Context, email string, customerID uuid.UUID) error {
	holder, confirmed, age, err := h.cfg.Emails.Reserve(ctx, email, customerID)
	if err != nil {
		return fmt.Errorf("commands: %w", err)
	}
	if holder == customerID {
		return nil
	}
	if !confirmed && age > h.cfg.StaleReservation {
		_, err := h.cfg.Store.ReadStream(ctx, domain.StreamName(holder), eventstore.ReadStreamOptions{Limit: 1})
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			took, err := h.cfg.Emails.TakeOver(ctx, email, holder, customerID)
			if err != nil {
				return fmt.Errorf("commands: %w", err)
			}
			if took {
				return nil
			}
			return h.reserveEmail(ctx, email, customerID) // someone else moved first
		}
		if err != nil {
			return fmt.Errorf("commands: check email holder: %w", err)
		}
	}
	return domain.EmailTaken(holder)
}

// afterAppend confirms a new email and releases the old one, and shreds an
// erased customer's data.
func (h *Customers) afterAppend(ctx context.Context, entry *cacheEntry, before domain.Customer, events []domain.Event) error {
	ctx = context.WithoutCancel(ctx) // the events are stored: finish the job
	customerID := entry.customerID
	if email, ok := newEmail(before, events); ok {
		if email != "" {
			h.confirmLater(ctx, email, customerID)
		}
		if before.Email != "" && EmailKey(before.Email) != EmailKey(email) { // the same key is still held
			if err := h.cfg.Emails.Release(ctx, before.Email, customerID); err != nil {
				return err
			}
		}
	}
	if erases(events) {
		if err := h.shred(ctx, customerID); err != nil {
			return err
		}
		entry.shredded = true
	}
	return nil
}

// confirmLater marks the reservation as backed by the appended event, off
// the command's critical path (one round trip and one commit fewer before
// the answer). Uniqueness does not rest on it: the reservation row alone
// keeps the email, and an unconfirmed one is only taken over, once stale,
// after a read of the holder's stream finds no append (reserveEmail), which
// this customer's stored events rule out. Confirming only spares that read.
// A confirmation that comes after a release or an erasure changes nothing:
// it only updates the row the customer still holds.
func (h *Customers) confirmLater(ctx context.Context, email string, customerID uuid.UUID) {
	go func() {
		ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
		defer cancel()
		if err := h.cfg.Emails.Confirm(ctx, email, customerID); err != nil {
			h.cfg.Logger.WarnContext(ctx, "commands: confirm email reservation", "customer_id", customerID, "err", err)
		}
	}()
}

func erases(events []domain.Event) bool {
	for _, e := range events {
		if _, ok := e.(domain.CustomerDataErased); ok {
			return true
		}
	}
	return false
}

// shred destroys the customer's data key, which makes every personal field
// of its events unreadable, frees its emails for other customers, and ends
// the pending erasure. It is bounded by the command timeout even when the
// command's own context is not (after an append), and idempotent; its
// failure is ErrErasureIncomplete.
func (h *Customers) shred(ctx context.Context, customerID uuid.UUID) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	if err := h.cfg.Keys.Destroy(ctx, customerID); err != nil {
		return fmt.Errorf("%w: destroy the data key: %w", ErrErasureIncomplete, err)
	}
	if err := h.cfg.Emails.ReleaseAll(ctx, customerID); err != nil {
		return fmt.Errorf("%w: release the emails: %w", ErrErasureIncomplete, err)
	}
	if err := h.cfg.Keys.EndErasure(ctx, customerID); err != nil {
		return fmt.Errorf("%w: %w", ErrErasureIncomplete, err)
	}
	return nil
}

// CompleteErasures completes every erasure that a crash or an outage left
// half done: its event is stored but its key survived. A pending erasure
// whose event is not in the stream is forgotten once older than
// StaleErasure (its append never happened); a younger one may still be
// running elsewhere and is left. Every process runs it at start, and
// periodically.
func (h *Customers) CompleteErasures(ctx context.Context) error {
	pending, err := h.cfg.Keys.PendingErasures(ctx)
	if err != nil {
		return fmt.Errorf("commands: complete erasures: %w", err)
	}
	var errs []error
	for customerID, age := range pending {
		if err := h.completeErasure(ctx, customerID, age); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (h *Customers) completeErasure(ctx context.Context, customerID uuid.UUID, age time.Duration) error {
	entry := h.cache.entry(customerID)
	entry.mu.Lock()
	defer entry.mu.Unlock()
	if err := h.refresh(ctx, entry); err != nil {
		return err
	}
	switch {
	case entry.state.IsErased():
		if err := h.shred(ctx, customerID); err != nil {
			return err
		}
		entry.shredded = true
		h.cfg.Logger.InfoContext(ctx, "commands: completed an interrupted erasure", "customer_id", customerID)
	case age > h.cfg.StaleErasure:
		return h.cfg.Keys.EndErasure(ctx, customerID)
	}
	return nil
}

// newEmail returns the email that events give the customer, if they change
// it ("" when they clear it).
func newEmail(before domain.Customer, events []domain.Event) (string, bool) {
	for _, e := range events {
		switch e := e.(type) {
		case domain.CustomerRegistered:
			return e.Email, e.Email != ""
		case domain.CustomerProfileUpdated:
			if e.Email != nil && EmailKey(*e.Email) != EmailKey(before.Email) {
				return *e.Email, true
			}
		}
	}
	return "", false
}
