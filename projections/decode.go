package projections

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// decode decodes a batch in parallel. On failure it returns the events
// decoded before the first one that failed, that one's index and its error.
// decodeOne decodes an event, or takes it from the events decoded for
// another projector. Decoded events are shared read-only.
func (e *Engine) decodeOne(ctx context.Context, rec eventstore.RecordedEvent) (eventcodec.Decoded, error) {
	if e.decoded != nil {
		if d, ok := e.decoded.Get(rec.Position); ok && d.Record.ID == rec.ID {
			return d, nil
		}
	}
	d, err := e.cfg.Codec.Decode(ctx, rec)
	if err == nil && e.decoded != nil {
		e.decoded.Add(rec.Position, d)
	}
	return d, err
}

// prefetchKeys loads the data keys of the customers of a batch in one
// round trip (when the keyring can), instead of one per customer during
// decoding: with a cold key cache (a rebuild, a process just started) the
// round trips dominated decoding. Events already decoded for another
// projector need no key.
func (e *Engine) prefetchKeys(ctx context.Context, recs []eventstore.RecordedEvent) {
	ids := make([]uuid.UUID, 0, len(recs)/4+1)
	seen := make(map[uuid.UUID]bool)
	for _, rec := range recs {
		if e.decoded != nil && e.decoded.Contains(rec.Position) {
			continue
		}
		id, ok := domain.CustomerIDFromStream(rec.Stream)
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if err := e.cfg.Codec.PrefetchKeys(ctx, ids); err != nil && ctx.Err() == nil {
		e.cfg.Logger.Warn("projections: could not prefetch data keys; decoding looks them up one by one", "err", err)
	}
}

func (e *Engine) decode(ctx context.Context, recs []eventstore.RecordedEvent) ([]eventcodec.Decoded, int, error) {
	e.prefetchKeys(ctx, recs)
	out := make([]eventcodec.Decoded, len(recs))
	errs := make([]error, len(recs))
	workers := min(e.cfg.DecodeWorkers, (len(recs)+31)/32)
	if workers <= 1 {
		for i, rec := range recs {
			d, err := e.decodeOne(ctx, rec)
			if err != nil {
				return out[:i], i, fmt.Errorf("projections: decode %s@%d (position %d): %w", rec.Stream, rec.Revision, rec.Position, err)
			}
			out[i] = d
		}
		return out, 0, nil
	}
	var wg sync.WaitGroup
	chunk := (len(recs) + workers - 1) / workers
	for lo := 0; lo < len(recs); lo += chunk {
		hi := min(lo+chunk, len(recs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				out[i], errs[i] = e.decodeOne(ctx, recs[i])
				if errs[i] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			rec := recs[i]
			return out[:i], i, fmt.Errorf("projections: decode %s@%d (position %d): %w", rec.Stream, rec.Revision, rec.Position, err)
		}
	}
	return out, 0, nil
}
