package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain/eventstore"
)

// BaselineResult is the raw PostgreSQL append rate measured in the same
// run: one-statement, single-event INSERT transactions (autocommit) into a
// scratch table shaped like the event table, at the load's concurrency,
// with data and metadata the size of a typical stored event.
type BaselineResult struct {
	Table        string  `json:"table"`
	Connections  int     `json:"connections"`
	DataBytes    int     `json:"data_bytes"`
	MetaBytes    int     `json:"metadata_bytes"`
	SampleEvents int     `json:"sampled_events"`
	Seconds      float64 `json:"seconds"`
	Transactions int64   `json:"transactions"`
	TPS          float64 `json:"transactions_per_second"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	// Ratio is Rapport's accepted HTTP commands/s ÷ TPS.
	Ratio float64 `json:"ratio"`
}

// typicalEventSize is the median data and metadata size of the last events
// of the log (as stored: encrypted personal fields included).
func (r *runner) typicalEventSize(ctx context.Context) (data, meta, n int, err error) {
	if r.cfg.Store == nil {
		return 400, 300, 0, nil
	}
	events, err := r.cfg.Store.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 2000})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bench: sample events: %w", err)
	}
	var ds, ms []int
	for _, e := range events {
		if strings.HasPrefix(e.Stream, "customer-") {
			ds = append(ds, len(e.Data))
			ms = append(ms, len(e.Metadata))
		}
	}
	if len(ds) == 0 {
		return 400, 300, 0, nil
	}
	slices.Sort(ds)
	slices.Sort(ms)
	return ds[len(ds)/2], ms[len(ms)/2], len(ds), nil
}

// jsonOfSize is a JSON object of exactly n bytes (n ≥ 16).
func jsonOfSize(n int) string {
	const head, tail = `{"pad":"`, `"}`
	return head + strings.Repeat("x", max(n-len(head)-len(tail), 0)) + tail
}

func (r *runner) baseline(ctx context.Context) (*BaselineResult, error) {
	dataSize, metaSize, sampled, err := r.typicalEventSize(ctx)
	if err != nil {
		return nil, err
	}
	res := &BaselineResult{Table: "public.rapport_bench_" + r.runID, Connections: r.cfg.Clients, DataBytes: dataSize, MetaBytes: metaSize, SampleEvents: sampled}
	pcfg := r.cfg.Pool.Config()
	pcfg.MaxConns = int32(r.cfg.Clients)
	pcfg.MinConns = int32(r.cfg.Clients)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("bench: baseline pool: %w", err)
	}
	defer pool.Close()
	table := pgx.Identifier{"public", "rapport_bench_" + r.runID}.Sanitize()
	if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` (
		id          bigserial   PRIMARY KEY,
		stream      text        NOT NULL,
		revision    bigint      NOT NULL,
		event_id    uuid        NOT NULL,
		event_type  text        NOT NULL,
		data        json        NOT NULL,
		metadata    json,
		recorded_at timestamptz NOT NULL DEFAULT clock_timestamp())`); err != nil {
		return nil, fmt.Errorf("bench: create the baseline's scratch table: %w", err)
	}
	defer func() {
		if _, err := pool.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS `+table); err != nil {
			fmt.Fprintf(r.cfg.Log, "bench: drop %s: %v (drop it by hand)\n", table, err)
		}
	}()
	data, meta := jsonOfSize(dataSize), jsonOfSize(metaSize)
	insert := `INSERT INTO ` + table + ` (stream, revision, event_id, event_type, data, metadata) VALUES ($1, $2, $3, $4, $5, $6)`

	var (
		count    atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		lat      durations
		firstErr error
	)
	bar := newTimeBar(r.cfg.Progress, "baseline", r.cfg.BaselineDuration)
	stopBar := bar.run()
	start := time.Now()
	deadline := start.Add(r.cfg.BaselineDuration)
	for c := range r.cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine durations
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				t := time.Now()
				stream := fmt.Sprintf("customer-bench-%d-%d", c, i/20)
				if _, err := pool.Exec(ctx, insert, stream, i%20, uuid.New(), "rapport.ContactLogged.v1", data, meta); err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
					return
				}
				mine = append(mine, time.Since(t))
				count.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopBar()
	if ctx.Err() != nil {
		return nil, errInterrupted
	}
	if firstErr != nil {
		return nil, fmt.Errorf("bench: baseline insert: %w", firstErr)
	}
	res.Seconds = round3(elapsed.Seconds())
	res.Transactions = count.Load()
	res.TPS = float64(res.Transactions) / elapsed.Seconds()
	res.P50Ms = lat.percentile(50)
	res.P99Ms = lat.percentile(99)
	return res, nil
}
