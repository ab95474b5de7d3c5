package commands

import (
	"context"
	"time"

	"github.com/google/uuid"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// EmailKey is the form in which emails are compared for uniqueness
// (PRODUCT.md, input rules): Unicode NFKC, then case folding, then NFKC
// again (folding may undo the normal form). A full-width ｕｎｉｑ@example.com
// and UNIQ@EXAMPLE.COM are then the same address as uniq@example.com. The
// domain refuses invisible and format characters before this (they would
// survive NFKC), and keeps the address as typed, lower-cased, in the
// events.
func EmailKey(email string) string {
	return norm.NFKC.String(cases.Fold().String(norm.NFKC.String(email)))
}

// emailKeys puts every email through EmailKey on its way to the registry,
// so that each path — registration, a changed email, its release — sees
// the same key.
type emailKeys struct{ EmailRegistry }

func (r emailKeys) Reserve(ctx context.Context, email string, customerID uuid.UUID) (uuid.UUID, bool, time.Duration, error) {
	return r.EmailRegistry.Reserve(ctx, EmailKey(email), customerID)
}

func (r emailKeys) TakeOver(ctx context.Context, email string, from, to uuid.UUID) (bool, error) {
	return r.EmailRegistry.TakeOver(ctx, EmailKey(email), from, to)
}

func (r emailKeys) Confirm(ctx context.Context, email string, customerID uuid.UUID) error {
	return r.EmailRegistry.Confirm(ctx, EmailKey(email), customerID)
}

func (r emailKeys) Release(ctx context.Context, email string, customerID uuid.UUID) error {
	return r.EmailRegistry.Release(ctx, EmailKey(email), customerID)
}
