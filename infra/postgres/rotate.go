package postgres

import (
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RotateOptions tune RotateMasterKey.
type RotateOptions struct {
	// BatchSize is how many data keys one statement re-wraps. Default 1000.
	BatchSize int
	// Grace is the least time between the start of the rotation (when the
	// next key is published) and its end, so that every running process
	// has learned the next key (they refresh every 2 s) before the current
	// one is retired. Default 10 s.
	Grace time.Duration
	// Progress, if set, is told how many keys were re-wrapped so far.
	Progress func(rewrapped int)
}

func (o *RotateOptions) setDefaults() {
	if o.BatchSize == 0 {
		o.BatchSize = 1000
	}
	if o.Grace == 0 {
		o.Grace = 10 * time.Second
	}
}

// RotateReport says what a rotation did.
type RotateReport struct {
	// Rewrapped counts the data keys re-wrapped under the next key.
	Rewrapped int
	// Passes counts the passes over the keys: more than one when keys
	// were created under the current key while the first ran.
	Passes int
	// Resumed says that a rotation to the same key was already begun.
	Resumed bool
	// Waited is how long the end waited for Grace.
	Waited time.Duration
}

// RotateMasterKey re-wraps every data key under next while the service
// runs. It publishes next wrapped under current (and current under next),
// so that running processes, and processes started with either key,
// accept both; re-wraps the keys in batches (a key destroyed meanwhile
// stays destroyed); and at the end, in one transaction that no key
// creation can cross, checks that no key is left under current, moves the
// key check to next and deletes both published keys. An interrupted
// rotation is resumed by running it again with the same keys.
func RotateMasterKey(ctx context.Context, pool *pgxpool.Pool, current, next []byte, opts RotateOptions) (RotateReport, error) {
	opts.setDefaults()
	var report RotateReport
	curKEK, err := newKEK(current)
	if err != nil {
		return report, err
	}
	nextKEK, err := newKEK(next)
	if err != nil {
		return report, err
	}
	curID, nextID := kekIDOf(current), kekIDOf(next)
	if curID == nextID {
		return report, errors.New("postgres: the new master key is the current one")
	}
	// The current key must be the database's: VerifyMasterKey stores the
	// check on a database that has none.
	verifier, err := NewKeyring(pool, current, KeyringConfig{})
	if err != nil {
		return report, err
	}
	if err := verifier.VerifyMasterKey(ctx); err != nil {
		return report, err
	}
	started, resumed, err := beginRotation(ctx, pool, curKEK, nextKEK, current, next)
	if err != nil {
		return report, err
	}
	report.Resumed = resumed
	for {
		report.Passes++
		n, err := rewrapPass(ctx, pool, curID, nextID, curKEK, nextKEK, opts, report.Rewrapped)
		report.Rewrapped += n
		if err != nil {
			return report, err
		}
		if wait := time.Until(started.Add(opts.Grace)); wait > 0 {
			report.Waited += wait
			select {
			case <-ctx.Done():
				return report, ctx.Err()
			case <-time.After(wait):
			}
		}
		done, err := endRotation(ctx, pool, nextID)
		if err != nil || done {
			return report, err
		}
		if report.Passes >= 20 {
			return report, errors.New("postgres: keys keep being created under the old master key; is a process running that has not learned the new one?")
		}
	}
}

// beginRotation publishes the next key, or finds the same rotation begun.
func beginRotation(ctx context.Context, pool *pgxpool.Pool, curKEK, nextKEK cipher.AEAD, current, next []byte) (started time.Time, resumed bool, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		row, err := readMasterKeyRow(ctx, tx, true)
		if err != nil {
			return err
		}
		if row == nil {
			return errors.New("postgres: no master key check in the database")
		}
		nextCheck := KeyCheck(next)
		if row.rotating() {
			if !bytes.Equal(row.nextKeyCheck, nextCheck) {
				return fmt.Errorf("postgres: a rotation to another master key (%x…) is in progress; finish it with that key first", row.nextKekID)
			}
			started, resumed = *row.rotationStartedAt, true
			return nil
		}
		if !bytes.Equal(row.keyCheck, KeyCheck(current)) {
			return fmt.Errorf("%w: the current master key given is not the database's", ErrMasterKeyMismatch)
		}
		indexSecret, err := open(curKEK, row.indexSecret, adIndexSecret)
		if err != nil {
			return fmt.Errorf("postgres: open the email index secret: %w", err)
		}
		return tx.QueryRow(ctx, `
			UPDATE rapport.master_key SET next_key_check = $1, next_kek_id = $2, next_key = $3, current_key = $4, next_index_secret = $5, rotation_started_at = now()
			RETURNING rotation_started_at`,
			nextCheck, nextCheck[:8], seal(curKEK, next, adNextMasterKey), seal(nextKEK, current, adCurMasterKey), seal(nextKEK, indexSecret, adIndexSecret)).Scan(&started)
	})
	return started, resumed, err
}

// rewrapPass re-wraps, in customer order, every data key not yet under
// next. Each batch's update only replaces a key that is still the one it
// read, so a key destroyed or re-wrapped meanwhile is left as it is.
func rewrapPass(ctx context.Context, pool *pgxpool.Pool, curID, nextID kekID, curKEK, nextKEK cipher.AEAD, opts RotateOptions, before int) (int, error) {
	total := 0
	var after uuid.UUID
	ids := make([]uuid.UUID, 0, opts.BatchSize)
	olds := make([][]byte, 0, opts.BatchSize)
	news := make([][]byte, 0, opts.BatchSize)
	for {
		ids, olds, news = ids[:0], olds[:0], news[:0]
		rows, err := pool.Query(ctx, `
			SELECT customer_id, wrapped_key, kek_id FROM rapport.customer_keys
			WHERE customer_id > $1 AND wrapped_key IS NOT NULL AND kek_id IS DISTINCT FROM $2
			ORDER BY customer_id LIMIT $3`, after, nextID[:], opts.BatchSize)
		if err != nil {
			return total, fmt.Errorf("postgres: rotate: read data keys: %w", err)
		}
		var (
			id      uuid.UUID
			wrapped []byte
			kek     []byte
		)
		_, err = pgx.ForEachRow(rows, []any{&id, &wrapped, &kek}, func() error {
			if kek != nil && kekID(kek) != curID {
				return fmt.Errorf("postgres: rotate: the data key of %s is wrapped by an unknown master key %x…", id, kek)
			}
			key, err := open(curKEK, wrapped, id[:])
			if err != nil {
				return fmt.Errorf("postgres: rotate: unwrap the data key of %s: %w", id, err)
			}
			ids, olds, news = append(ids, id), append(olds, wrapped), append(news, seal(nextKEK, key, id[:]))
			return nil
		})
		if err != nil {
			return total, err
		}
		if len(ids) == 0 {
			return total, nil
		}
		tag, err := pool.Exec(ctx, `
			UPDATE rapport.customer_keys AS k SET wrapped_key = v.wrapped, kek_id = $4
			FROM unnest($1::uuid[], $2::bytea[], $3::bytea[]) AS v(customer_id, old, wrapped)
			WHERE k.customer_id = v.customer_id AND k.wrapped_key = v.old`,
			ids, olds, news, nextID[:])
		if err != nil {
			return total, fmt.Errorf("postgres: rotate: re-wrap data keys: %w", err)
		}
		total += int(tag.RowsAffected())
		if opts.Progress != nil {
			opts.Progress(before + total)
		}
		after = ids[len(ids)-1]
	}
}

// endRotation ends the rotation if no data key is left under another key
// than next. It holds the master_key row's lock, which every key creation
// shares, so that no key is created under the retired key after the check.
func endRotation(ctx context.Context, pool *pgxpool.Pool, nextID kekID) (done bool, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		row, err := readMasterKeyRow(ctx, tx, true)
		if err != nil {
			return err
		}
		if row == nil || !row.rotating() || kekID(row.nextKekID) != nextID {
			return errors.New("postgres: rotate: the rotation was changed by someone else")
		}
		var left bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rapport.customer_keys WHERE wrapped_key IS NOT NULL AND kek_id IS DISTINCT FROM $1)`, nextID[:]).Scan(&left); err != nil {
			return fmt.Errorf("postgres: rotate: check the data keys: %w", err)
		}
		if left {
			return nil // another pass
		}
		if _, err := tx.Exec(ctx, `
			UPDATE rapport.master_key SET key_check = next_key_check, kek_id = next_kek_id, index_secret = next_index_secret,
				next_key_check = NULL, next_kek_id = NULL, next_key = NULL, current_key = NULL, next_index_secret = NULL,
				rotation_started_at = NULL, rotated_at = now()`); err != nil {
			return fmt.Errorf("postgres: rotate: retire the old master key: %w", err)
		}
		done = true
		return nil
	})
	return done, err
}
