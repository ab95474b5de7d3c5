package http_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// BenchmarkBadKeyFlood measures what a flood of unknown API keys costs the
// other clients: 4 clients log contacts with a good key, first alone
// (quiet), then while 24 goroutines send bad keys at 3,000 requests/s in
// all (an open loop, so both builds face the same flood rather than one
// that grows as each bad request gets cheaper). Compare the p50s of one
// run:
//
//	go test ./infra/http -run '^$' -bench BadKeyFlood -benchtime 2000x -count 3
func BenchmarkBadKeyFlood(b *testing.B) {
	const clients, flooders, floodRate = 4, 24, 3000
	m := apptest.MustOpen(b, func(c *app.Config) { c.RunProjections = false })
	var customers []string
	for i := range 64 {
		resp := m.Post(b, "/v1/customers", map[string]any{"name": "Bench", "email": fmt.Sprintf("flood-%d@example.com", i)})
		if resp.Status != http.StatusCreated {
			b.Fatalf("register: %d %s", resp.Status, resp.Body)
		}
		customers = append(customers, resp.Map(b)["customer_id"].(string))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients + flooders}}
	body := []byte(`{"channel":"phone","direction":"inbound","summary":"asked about an invoice","by":"agent-7"}`)
	for _, flood := range []bool{false, true} {
		name := "quiet"
		if flood {
			name = fmt.Sprintf("flood=%d", flooders)
		}
		b.Run(name, func(b *testing.B) {
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var badSent atomic.Int64
			if flood {
				for w := range flooders {
					wg.Add(1)
					go func() {
						defer wg.Done()
						tick := time.NewTicker(time.Second * flooders / floodRate)
						defer tick.Stop()
						for i := 0; ctx.Err() == nil; i++ {
							select {
							case <-ctx.Done():
								return
							case <-tick.C:
							}
							req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+"/v1/customers", nil)
							req.Header.Set("Authorization", fmt.Sprintf("Bearer rpk_bad_%d_%d", w, i))
							resp, err := client.Do(req)
							if err != nil {
								continue
							}
							_, _ = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							badSent.Add(1)
						}
					}()
				}
				time.Sleep(200 * time.Millisecond) // the flood is under way
			}
			latencies := make([]time.Duration, b.N)
			var next atomic.Int64
			b.ResetTimer()
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
			b.StopTimer()
			stop()
			wg.Wait()
			slices.Sort(latencies)
			b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(badSent.Load()), "bad-keys")
		})
	}
}
