package esdb_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/esdb/esdbtest"
)

func benchServer(b *testing.B) *esdbtest.Server {
	b.Helper()
	srv, err := esdbtest.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	return srv
}

// BenchmarkAppend measures appends through the adapter, the client and
// gRPC to the test server: what the adapter and the client cost, not what
// EventStoreDB's disk costs.
func BenchmarkAppend(b *testing.B) {
	srv := benchServer(b)
	s := newStore(b, srv.ConnectionString())
	for _, n := range []int{1, 10} {
		for _, p := range []int{1, 16} {
			b.Run(fmt.Sprintf("events=%d/parallel=%d", n, p), func(b *testing.B) {
				prefix := unique("bench")
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for w := range p {
					wg.Add(1)
					go func() {
						defer wg.Done()
						stream := fmt.Sprintf("%s%d", prefix, w)
						exp := eventstore.NoStream
						for next.Add(1) <= int64(b.N) {
							evs := make([]eventstore.EventData, n)
							for i := range evs {
								evs[i] = newEvent("bench")
							}
							res, err := s.Append(context.Background(), stream, exp, evs)
							if err != nil {
								b.Error(err)
								return
							}
							exp = eventstore.Exact(res.Revision)
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// BenchmarkSubscribe measures catch-up: subscribing from Start with a
// prefix filter and reading until caught up.
func BenchmarkSubscribe(b *testing.B) {
	const events = 5000
	srv := benchServer(b)
	s := newStore(b, srv.ConnectionString())
	prefix := unique("benchsub")
	for i := 0; i < events; i += 100 {
		batch := make([]eventstore.EventData, 100)
		for j := range batch {
			batch[j] = newEvent("catch-up")
		}
		mustAppend(b, s, fmt.Sprintf("%s%d", prefix, i%7), eventstore.Any, batch...)
	}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		sub, err := s.SubscribeAll(ctx, eventstore.SubscribeOptions{From: eventstore.Start, StreamPrefixes: []string{prefix}})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if m.Kind == eventstore.EventAppeared {
				n++
			}
			if m.Kind == eventstore.CaughtUp {
				break
			}
		}
		_ = sub.Close()
		if n != events {
			b.Fatalf("caught up after %d events, want %d", n, events)
		}
	}
	b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "events/s")
}
