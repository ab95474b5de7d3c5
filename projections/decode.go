package projections

import (
	"context"
	"fmt"
	"sync"

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

func (e *Engine) decode(ctx context.Context, recs []eventstore.RecordedEvent) ([]eventcodec.Decoded, int, error) {
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
