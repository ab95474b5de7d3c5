package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// IdempotencyKeys keeps the first answer to each Idempotency-Key in
// rapport.idempotency_keys (see the migration for the table's rules).
type IdempotencyKeys struct {
	pool *pgxpool.Pool
}

// NewIdempotencyKeys returns the store.
func NewIdempotencyKeys(pool *pgxpool.Pool) *IdempotencyKeys {
	return &IdempotencyKeys{pool: pool}
}

// asyncCommit runs one statement in a transaction that commits without
// waiting for its WAL flush (synchronous_commit off, for this transaction
// only), in one round trip, and scans the row it returns into dest, if
// any. A claim or an answer is then lost only if PostgreSQL itself crashes
// within a fraction of a second (wal_writer_delay, 3 × 200 ms at most) of
// writing it; the retry then runs the command again, and the command side
// recognises it (event ids derived from the key, created ids already
// recorded, the customer's recent commands). Waiting for the flush of
// both writes doubled a command's latency (BenchmarkIdempotencyCost).
func (s *IdempotencyKeys) asyncCommit(ctx context.Context, sql string, args []any, dest ...any) error {
	_, err := withoutFlushWait(ctx, s.pool, sql, args, dest...)
	return err
}

// IdempotentAnswer is a recorded first answer.
type IdempotentAnswer struct {
	Status int
	Header map[string]string
	Body   []byte
}

// IdempotencyState is what Claim found.
type IdempotencyState struct {
	// Claim is set when the caller now holds the key: it runs the request
	// and must Complete or Release the claim.
	Claim uuid.UUID
	// Fingerprint is that of the request that holds the key.
	Fingerprint []byte
	// Answer is the first answer, once that request finished.
	Answer *IdempotentAnswer
	// LeaseLeft is, while the first request runs, how long until its claim
	// may be taken over.
	LeaseLeft time.Duration
}

// Claim takes the key for a request with this fingerprint if the key is
// new, or if its holder never answered and its lease has expired (a crash)
// and the request is the same. Otherwise it reports who holds the key and,
// if they finished, their answer. lease must exceed the longest run.
func (s *IdempotencyKeys) Claim(ctx context.Context, scope, key string, fingerprint []byte, lease time.Duration) (IdempotencyState, error) {
	claim := uuid.New()
	for range 5 {
		var got uuid.UUID
		err := s.asyncCommit(ctx, `
			INSERT INTO rapport.idempotency_keys AS k (scope, key, fingerprint, claim, leased_until)
			VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
			ON CONFLICT (scope, key) DO UPDATE SET claim = EXCLUDED.claim, leased_until = EXCLUDED.leased_until
			WHERE k.status IS NULL AND k.leased_until < now() AND k.fingerprint = EXCLUDED.fingerprint
			RETURNING claim`,
			[]any{scope, key, fingerprint, claim, lease.Seconds()}, &got)
		if err == nil {
			return IdempotencyState{Claim: got, Fingerprint: fingerprint}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return IdempotencyState{}, fmt.Errorf("postgres: claim idempotency key: %w", err)
		}
		var (
			st      IdempotencyState
			status  *int
			headers []byte
			body    []byte
			left    float64
		)
		err = s.pool.QueryRow(ctx, `
			SELECT fingerprint, status, headers, body, greatest(extract(epoch FROM leased_until - now()), 0)::float8
			FROM rapport.idempotency_keys WHERE scope = $1 AND key = $2`,
			scope, key).Scan(&st.Fingerprint, &status, &headers, &body, &left)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // released meanwhile: claim again
		}
		if err != nil {
			return IdempotencyState{}, fmt.Errorf("postgres: read idempotency key: %w", err)
		}
		if status != nil {
			st.Answer = &IdempotentAnswer{Status: *status, Body: body}
			if err := json.Unmarshal(headers, &st.Answer.Header); err != nil {
				return IdempotencyState{}, fmt.Errorf("postgres: read idempotency key: headers: %w", err)
			}
		} else {
			st.LeaseLeft = time.Duration(left * float64(time.Second))
		}
		return st, nil
	}
	return IdempotencyState{}, errors.New("postgres: claim idempotency key: the key keeps being released and claimed")
}

// Complete records the answer of the run that holds claim. A run whose
// claim was taken over (it outlived its lease) records nothing: the run
// that took over answers.
func (s *IdempotencyKeys) Complete(ctx context.Context, scope, key string, claim uuid.UUID, answer IdempotentAnswer) error {
	headers, err := json.Marshal(answer.Header)
	if err != nil {
		return err
	}
	if err := s.asyncCommit(ctx, `
		UPDATE rapport.idempotency_keys SET status = $4, headers = $5, body = $6, completed_at = now()
		WHERE scope = $1 AND key = $2 AND claim = $3 AND status IS NULL`,
		[]any{scope, key, claim, answer.Status, headers, answer.Body}); err != nil {
		return fmt.Errorf("postgres: record idempotent answer: %w", err)
	}
	return nil
}

// Release gives the key up without an answer (the run failed in a way a
// retry may fix), so that the next retry runs the request again.
func (s *IdempotencyKeys) Release(ctx context.Context, scope, key string, claim uuid.UUID) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM rapport.idempotency_keys WHERE scope = $1 AND key = $2 AND claim = $3 AND status IS NULL`, scope, key, claim); err != nil {
		return fmt.Errorf("postgres: release idempotency key: %w", err)
	}
	return nil
}

// DeleteOlderThan deletes the keys created more than age ago, in batches
// so that no statement holds many locks, and returns how many it deleted.
func (s *IdempotencyKeys) DeleteOlderThan(ctx context.Context, age time.Duration) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `
			DELETE FROM rapport.idempotency_keys WHERE ctid = ANY (ARRAY(
				SELECT ctid FROM rapport.idempotency_keys WHERE created_at < now() - make_interval(secs => $1) LIMIT 5000))`,
			age.Seconds())
		if err != nil {
			return total, fmt.Errorf("postgres: delete old idempotency keys: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 5000 {
			return total, nil
		}
	}
}
