package http_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// BenchmarkLogContactOverHTTP measures what apps see: 16 clients logging
// contacts on existing customers over real HTTP, against the raw
// single-statement insert throughput of the same PostgreSQL at the same
// concurrency, in one run. Run it with:
//
//	go test ./infra/http -run '^$' -bench LogContactOverHTTP -benchtime 20000x
func BenchmarkLogContactOverHTTP(b *testing.B) {
	const clients = 16
	m := apptest.MustOpen(b, func(c *app.Config) { c.RunProjections = os.Getenv("BENCH_NO_PROJECTIONS") == "" })
	var customers []string
	for i := range 200 {
		resp := m.Post(b, "/v1/customers", map[string]any{"name": "Bench", "email": fmt.Sprintf("bench-%d@example.com", i)})
		if resp.Status != http.StatusCreated {
			b.Fatalf("register: %d %s", resp.Status, resp.Body)
		}
		customers = append(customers, resp.Map(b)["customer_id"].(string))
	}
	// A plain client: the benchmark measures the service, not the
	// OpenAPI validation that every test exchange goes through.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	body := []byte(`{"channel":"phone","direction":"inbound","summary":"asked about an invoice","by":"agent-7"}`)

	b.Run(fmt.Sprintf("http/clients=%d", clients), func(b *testing.B) {
		latencies := make([]time.Duration, b.N)
		var next atomic.Int64
		start := time.Now()
		runClients(b, clients, func() error {
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				req, _ := http.NewRequest(http.MethodPost, m.URL+"/v1/customers/"+customers[i%int64(len(customers))]+"/contacts", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+m.Keys["writer"])
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				latencies[i] = time.Since(t0)
				if resp.StatusCode != http.StatusCreated {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			return nil
		})
		elapsed := time.Since(start)
		slices.Sort(latencies)
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commands/s")
		b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
	})

	b.Run(fmt.Sprintf("raw-insert/clients=%d", clients), func(b *testing.B) {
		cfg, err := pgxpool.ParseConfig(m.DatabaseURL)
		if err != nil {
			b.Fatal(err)
		}
		cfg.MaxConns = clients
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		ctx := context.Background()
		if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_raw (id bigserial PRIMARY KEY, stream text, event_id uuid, event_type text, data json, metadata json)`); err != nil {
			b.Fatal(err)
		}
		payload := `{"channel":"phone","direction":"inbound","summary":"enc:v1:` + string(bytes.Repeat([]byte("x"), 60)) + `","by":"agent-7","contact_id":"` + uuid.NewString() + `","occurred_at":"2026-01-01T00:00:00Z"}`
		meta := `{"schema_version":1,"customer_id":"` + uuid.NewString() + `","actor":"writer","correlation_id":"` + uuid.NewString() + `","prev_hash":"` + string(bytes.Repeat([]byte("a"), 64)) + `","hash":"` + string(bytes.Repeat([]byte("b"), 64)) + `"}`
		var next atomic.Int64
		start := time.Now()
		runClients(b, clients, func() error {
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				if _, err := pool.Exec(ctx, `INSERT INTO bench_raw (stream, event_id, event_type, data, metadata) VALUES ($1, $2, 'rapport.ContactLogged.v1', $3, $4)`,
					"customer-"+customers[i%int64(len(customers))], uuid.New(), payload, meta); err != nil {
					return err
				}
			}
			return nil
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "transactions/s")
	})
}

func runClients(b *testing.B, clients int, work func() error) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := work(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkIdempotencyCost measures what a durable Idempotency-Key costs
// a command: the same contact logged over real HTTP without a key and
// with a fresh key each time (one claim and one answer written to
// PostgreSQL), in one run, by 1 client (latency) and by 8 (throughput).
// Run it with:
//
//	go test ./infra/http -run '^$' -bench IdempotencyCost -benchtime 3000x
func BenchmarkIdempotencyCost(b *testing.B) {
	m := apptest.MustOpen(b, func(c *app.Config) { c.RunProjections = false })
	var customers []string
	for i := range 64 {
		resp := m.Post(b, "/v1/customers", map[string]any{"name": "Bench", "email": fmt.Sprintf("idem-%d@example.com", i)})
		if resp.Status != http.StatusCreated {
			b.Fatalf("register: %d %s", resp.Status, resp.Body)
		}
		customers = append(customers, resp.Map(b)["customer_id"].(string))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	body := []byte(`{"channel":"phone","direction":"inbound","summary":"asked about an invoice","by":"agent-7"}`)
	var sent atomic.Int64
	run := uuid.NewString()
	send := func(keyed bool) (time.Duration, error) {
		n := sent.Add(1)
		req, _ := http.NewRequest(http.MethodPost, m.URL+"/v1/customers/"+customers[n%int64(len(customers))]+"/contacts", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+m.Keys["writer"])
		if keyed {
			req.Header.Set("Idempotency-Key", fmt.Sprintf("%s-%d", run, n))
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(t0), nil
	}
	for _, clients := range []int{1, 8} {
		for _, keyed := range []bool{false, true} {
			name := fmt.Sprintf("clients=%d/no-key", clients)
			if keyed {
				name = fmt.Sprintf("clients=%d/key", clients)
			}
			b.Run(name, func(b *testing.B) {
				latencies := make([]time.Duration, b.N)
				var next atomic.Int64
				start := time.Now()
				runClients(b, clients, func() error {
					for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
						d, err := send(keyed)
						if err != nil {
							return err
						}
						latencies[i] = d
					}
					return nil
				})
				elapsed := time.Since(start)
				slices.Sort(latencies)
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commands/s")
				b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}
