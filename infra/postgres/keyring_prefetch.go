package postgres

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/eventcodec"
)

var _ eventcodec.KeyPrefetcher = (*Keyring)(nil)

// PrefetchKeys implements eventcodec.KeyPrefetcher: it loads the data keys
// of the customers given that are not cached yet, in one query, so that
// decoding a batch of a rebuild costs one round trip for its keys instead
// of one per customer. Keys it cannot open here (a master key this process
// has not learned yet) and customers without a key are left for DataKey,
// which handles them one by one as before.
func (k *Keyring) PrefetchKeys(ctx context.Context, customerIDs []uuid.UUID) error {
	missing := make([]uuid.UUID, 0, len(customerIDs))
	seen := make(map[uuid.UUID]bool, len(customerIDs))
	for _, id := range customerIDs {
		if id == uuid.Nil || seen[id] || k.cache.Contains(id) {
			continue
		}
		seen[id] = true
		missing = append(missing, id)
	}
	if len(missing) == 0 {
		return nil
	}
	rows, err := k.pool.Query(ctx, `SELECT customer_id, wrapped_key, kek_id FROM rapport.customer_keys WHERE customer_id = ANY($1)`, missing)
	if err != nil {
		return fmt.Errorf("postgres: prefetch data keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id            uuid.UUID
			wrapped, kekB []byte
		)
		if err := rows.Scan(&id, &wrapped, &kekB); err != nil {
			return fmt.Errorf("postgres: prefetch data keys: %w", err)
		}
		if wrapped == nil {
			k.cache.Add(id, nil) // destroyed
			continue
		}
		kek, _, ok := k.kek(kekB)
		if !ok {
			continue
		}
		key, err := open(kek, wrapped, id[:])
		if err != nil {
			continue // DataKey reports it, with its context
		}
		k.cache.Add(id, key)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: prefetch data keys: %w", err)
	}
	return nil
}
