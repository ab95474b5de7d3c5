package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// EnsureKeyedSince reads the keyed-since mark, writing it when it is
// missing, and returns it for the codec's verifiers. A missing mark is
// written at the head of the log when no event is keyed yet (a new
// deployment, or the first start of a keyed service on a legacy log).
// When keyed events exist it is written at the first one, marked
// re-created: the mark was removed, or the log was keyed before marks
// existed, and verification says so for every unkeyed event. A mark whose
// signature does not verify was forged or moved by a database writer: it
// is left in place and reported the same way.
func EnsureKeyedSince(ctx context.Context, pool *pgxpool.Pool, store eventstore.Store, key eventcodec.ChainKey, logger *slog.Logger) (eventcodec.KeyedSince, error) {
	mark, found, err := readKeyedSince(ctx, pool, key)
	if err != nil || found {
		return mark, err
	}
	first, keyed, err := firstKeyed(ctx, store)
	if err != nil {
		return mark, err
	}
	position, recreated := first, keyed
	if !keyed {
		// After every event committed, not only those readers may pass
		// yet: the readers' head stops at the horizon, which an older
		// write transaction holds back, and a mark placed there would
		// land before committed legacy events.
		head, err := store.HeadPosition(ctx)
		if lc, ok := store.(lastCommitter); ok {
			head, err = lc.LastCommittedPosition(ctx)
		}
		if err != nil {
			return mark, fmt.Errorf("postgres: keyed-since mark: %w", err)
		}
		position = head + 1
	}
	// Of processes starting together, the first to insert wins; the
	// others read its mark.
	if _, err := pool.Exec(ctx, `INSERT INTO rapport.keyed_since (position, recreated, signature) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
		int64(position), recreated, key.SignKeyedSince(position, recreated)); err != nil {
		return mark, fmt.Errorf("postgres: write the keyed-since mark: %w", err)
	}
	if recreated {
		logger.Warn("keyed-since mark missing although keyed events exist: re-created at the first keyed event; audit verification rejects every unkeyed event", "position", position)
	}
	mark, _, err = readKeyedSince(ctx, pool, key)
	return mark, err
}

// lastCommitter is a store whose readers' head can trail what has
// committed (the Postgres store's horizon).
type lastCommitter interface {
	LastCommittedPosition(ctx context.Context) (eventstore.Position, error)
}

func readKeyedSince(ctx context.Context, pool *pgxpool.Pool, key eventcodec.ChainKey) (eventcodec.KeyedSince, bool, error) {
	var (
		position  int64
		recreated bool
		signature string
	)
	err := pool.QueryRow(ctx, `SELECT position, recreated, signature FROM rapport.keyed_since WHERE id = 1`).Scan(&position, &recreated, &signature)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventcodec.KeyedSince{}, false, nil
	}
	if err != nil {
		return eventcodec.KeyedSince{}, false, fmt.Errorf("postgres: read the keyed-since mark: %w", err)
	}
	mark := eventcodec.KeyedSince{Position: eventstore.Position(position)}
	switch {
	case position < 0 || !key.CheckKeyedSince(mark.Position, recreated, signature):
		mark.Problem = "the keyed-since mark's signature does not verify: it was forged or moved by a database writer"
	case recreated:
		mark.Problem = fmt.Sprintf("the keyed-since mark was missing although keyed events exist (re-created at log position %d): a database writer may have removed it", position)
	}
	return mark, true, nil
}

// firstKeyed finds the log's first keyed event by reading the log: only
// when the mark is missing, and it stops at the first keyed event.
func firstKeyed(ctx context.Context, store eventstore.Store) (eventstore.Position, bool, error) {
	const page = 500
	from := eventstore.Start
	for {
		recs, err := store.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Forwards, From: from, Limit: page})
		if err != nil {
			return 0, false, fmt.Errorf("postgres: keyed-since mark: read the log: %w", err)
		}
		for _, rec := range recs {
			from = rec.Position
			var meta struct {
				Chain int `json:"chain"`
			}
			if json.Unmarshal(rec.Metadata, &meta) == nil && meta.Chain == eventcodec.ChainKeyed {
				return rec.Position, true, nil
			}
		}
		if len(recs) < page {
			return 0, false, nil
		}
	}
}
