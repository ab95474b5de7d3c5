package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// The steps around an append that keep state outside the customer's
// stream consistent with it: email uniqueness and erasure.

// beforeAppend reserves a new email for the customer. The returned undo
// releases it if the append does not happen.
func (h *Customers) beforeAppend(ctx context.Context, customerID uuid.UUID, before domain.Customer, events []domain.Event) (undo func(context.Context), err error) {
	undo = func(context.Context) {}
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
			if err := h.cfg.Emails.Confirm(ctx, email, customerID); err != nil {
				return err
			}
		}
		if before.Email != "" && before.Email != email {
			if err := h.cfg.Emails.Release(ctx, before.Email, customerID); err != nil {
				return err
			}
		}
	}
	for _, e := range events {
		if _, ok := e.(domain.CustomerDataErased); ok {
			if err := h.shred(ctx, customerID); err != nil {
				return err
			}
			entry.shredded = true
		}
	}
	return nil
}

// shred destroys the customer's data key, which makes every personal field
// of its events unreadable, and frees its emails for other customers.
func (h *Customers) shred(ctx context.Context, customerID uuid.UUID) error {
	if err := h.cfg.Keys.Destroy(ctx, customerID); err != nil {
		return fmt.Errorf("commands: shred data key: %w", err)
	}
	if err := h.cfg.Emails.ReleaseAll(ctx, customerID); err != nil {
		return fmt.Errorf("commands: release emails: %w", err)
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
			if e.Email != nil && *e.Email != before.Email {
				return *e.Email, true
			}
		}
	}
	return "", false
}
