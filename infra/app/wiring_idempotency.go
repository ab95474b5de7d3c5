package app

import (
	"context"
	"time"

	"github.com/google/uuid"

	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// idempotencyCleanupEvery is how often expired Idempotency-Keys are
// deleted; they are kept for the retention at least, and at most this much
// longer.
const idempotencyCleanupEvery = time.Hour

// startIdempotencyCleanup deletes Idempotency-Keys older than the
// retention, at start and then hourly, until Close. Several processes
// doing it at once is harmless.
func (m *Main) startIdempotencyCleanup(ctx context.Context) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	keys := postgres.NewIdempotencyKeys(m.Pool)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := time.NewTicker(idempotencyCleanupEvery)
		defer ticker.Stop()
		for {
			n, err := keys.DeleteOlderThan(ctx, m.cfg.IdempotencyRetention)
			switch {
			case err != nil && ctx.Err() == nil:
				m.cfg.Logger.Warn("rapport: delete expired idempotency keys", "err", err)
			case n > 0:
				m.cfg.Logger.Info("rapport: deleted expired idempotency keys", "count", n, "older_than", m.cfg.IdempotencyRetention)
			}
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}()
	m.closers = append(m.closers, func(context.Context) error { cancel(); <-done; return nil })
}

// idempotencyStore adapts the Postgres store to the HTTP layer.
type idempotencyStore struct{ keys *postgres.IdempotencyKeys }

func (s idempotencyStore) Claim(ctx context.Context, scope, key string, fingerprint []byte, lease time.Duration) (rhttp.IdempotencyClaim, error) {
	st, err := s.keys.Claim(ctx, scope, key, fingerprint, lease)
	if err != nil {
		return rhttp.IdempotencyClaim{}, err
	}
	c := rhttp.IdempotencyClaim{Claim: st.Claim, Fingerprint: st.Fingerprint}
	if st.Answer != nil {
		c.Answer = &rhttp.StoredAnswer{Status: st.Answer.Status, Header: st.Answer.Header, Body: st.Answer.Body}
	}
	return c, nil
}

func (s idempotencyStore) Complete(ctx context.Context, scope, key string, claim uuid.UUID, a rhttp.StoredAnswer) error {
	return s.keys.Complete(ctx, scope, key, claim, postgres.IdempotentAnswer{Status: a.Status, Header: a.Header, Body: a.Body})
}

func (s idempotencyStore) Release(ctx context.Context, scope, key string, claim uuid.UUID) error {
	return s.keys.Release(ctx, scope, key, claim)
}
