package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EmailRegistry keeps customer emails unique at command time, with both
// event stores: rapport.customer_emails holds one row per email in use,
// keyed by an HMAC of the normalised email so that no address is stored in
// clear outside the (encrypted) events.
type EmailRegistry struct {
	pool    *pgxpool.Pool
	hmacKey []byte
	// flushedByAppends: see FlushedByAppends.
	flushedByAppends bool
}

// FlushedByAppends returns the registry for a service whose event store is
// the embedded one, in the same PostgreSQL cluster: a reservation then
// commits without waiting for its WAL flush, since the append that follows
// it flushes it (withoutFlushWait), one commit wait fewer per registration.
// Not with EventStoreDB, whose appends do not flush PostgreSQL.
func (r *EmailRegistry) FlushedByAppends() *EmailRegistry {
	c := *r
	c.flushedByAppends = true
	return &c
}

// NewEmailRegistry returns a registry whose email hashes are keyed with a
// key derived from masterKey: the index secret that the first start stores
// (wrapped) in the database. A service uses NewEmailIndex with the
// keyring's IndexSecret instead, which a rotation of the master key does
// not change.
func NewEmailRegistry(pool *pgxpool.Pool, masterKey []byte) *EmailRegistry {
	mac := hmac.New(sha256.New, masterKey)
	mac.Write([]byte(emailIndexLabel))
	return NewEmailIndex(pool, mac.Sum(nil))
}

// NewEmailIndex returns a registry whose email hashes are keyed with
// secret (Keyring.IndexSecret).
func NewEmailIndex(pool *pgxpool.Pool, secret []byte) *EmailRegistry {
	return &EmailRegistry{pool: pool, hmacKey: secret}
}

func (r *EmailRegistry) hash(email string) []byte {
	mac := hmac.New(sha256.New, r.hmacKey)
	mac.Write([]byte(email))
	return mac.Sum(nil)
}

// Reserve claims a normalised email for customerID. It returns who holds
// the email now — customerID when the claim succeeded or was already its
// own — whether the holder's append was confirmed, and how old the
// reservation is.
func (r *EmailRegistry) Reserve(ctx context.Context, email string, customerID uuid.UUID) (holder uuid.UUID, confirmed bool, age time.Duration, err error) {
	h := r.hash(email)
	// The insert and the read of a conflicting row run as one statement;
	// its snapshot may predate a conflicting row that committed while the
	// insert waited for it, so an empty answer means "look again".
	for range 5 {
		err = r.queryRow(ctx, `
			WITH claimed AS (
				INSERT INTO rapport.customer_emails (email_hash, customer_id) VALUES ($1, $2)
				ON CONFLICT (email_hash) DO NOTHING
				RETURNING customer_id, confirmed, interval '0'
			)
			SELECT * FROM claimed
			UNION ALL
			SELECT customer_id, confirmed, now() - reserved_at FROM rapport.customer_emails
			WHERE email_hash = $1 AND NOT EXISTS (SELECT 1 FROM claimed)`,
			[]any{h, customerID}, &holder, &confirmed, &age)
		if !errors.Is(err, pgx.ErrNoRows) {
			break
		}
	}
	if err != nil {
		return uuid.Nil, false, 0, fmt.Errorf("postgres: reserve email: %w", err)
	}
	return holder, confirmed, age, nil
}

// queryRow runs a one-row write, without waiting for its flush when the
// appends flush it.
func (r *EmailRegistry) queryRow(ctx context.Context, sql string, args []any, dest ...any) error {
	if r.flushedByAppends {
		_, err := withoutFlushWait(ctx, r.pool, sql, args, dest...)
		return err
	}
	return r.pool.QueryRow(ctx, sql, args...).Scan(dest...)
}

// TakeOver moves an unconfirmed reservation from a customer whose append
// never happened to customerID. It reports whether it did.
func (r *EmailRegistry) TakeOver(ctx context.Context, email string, from, to uuid.UUID) (bool, error) {
	tag, err := r.pool.Exec(ctx, `
		UPDATE rapport.customer_emails SET customer_id = $3, reserved_at = now(), confirmed = false
		WHERE email_hash = $1 AND customer_id = $2 AND NOT confirmed`,
		r.hash(email), from, to)
	if err != nil {
		return false, fmt.Errorf("postgres: take over email: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Confirm marks the customer's reservation as backed by an appended event.
func (r *EmailRegistry) Confirm(ctx context.Context, email string, customerID uuid.UUID) error {
	_, err := r.pool.Exec(ctx, `UPDATE rapport.customer_emails SET confirmed = true WHERE email_hash = $1 AND customer_id = $2`, r.hash(email), customerID)
	if err != nil {
		return fmt.Errorf("postgres: confirm email: %w", err)
	}
	return nil
}

// Release frees the email if customerID holds it.
func (r *EmailRegistry) Release(ctx context.Context, email string, customerID uuid.UUID) error {
	_, err := r.pool.Exec(ctx, `DELETE FROM rapport.customer_emails WHERE email_hash = $1 AND customer_id = $2`, r.hash(email), customerID)
	if err != nil {
		return fmt.Errorf("postgres: release email: %w", err)
	}
	return nil
}

// ReleaseAll frees every email the customer holds (erasure).
func (r *EmailRegistry) ReleaseAll(ctx context.Context, customerID uuid.UUID) error {
	_, err := r.pool.Exec(ctx, `DELETE FROM rapport.customer_emails WHERE customer_id = $1`, customerID)
	if err != nil {
		return fmt.Errorf("postgres: release emails: %w", err)
	}
	return nil
}
