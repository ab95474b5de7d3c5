package commands_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/domain/eventstore/memstore"
)

// env is the command side on the in-memory event store, keyring and
// email registry: the handler's scenarios need no database.
type env struct {
	store   *memstore.Store
	keys    *memKeys
	emails  *memEmails
	codec   *eventcodec.Codec
	handler *commands.Customers
}

func mustOpen(tb testing.TB) *env {
	tb.Helper()
	keys := newMemKeys()
	e := &env{store: memstore.New(), keys: keys, emails: newMemEmails(), codec: eventcodec.New(domain.NewRegistry(), keys)}
	e.handler = e.newHandler(tb, nil)
	return e
}

// newHandler returns another handler on the same stores, as a second
// process would have, with its own cache.
func (e *env) newHandler(tb testing.TB, adjust func(*commands.Config)) *commands.Customers {
	tb.Helper()
	cfg := commands.Config{Store: e.store, Codec: e.codec, Emails: e.emails, Keys: e.keys}
	if adjust != nil {
		adjust(&cfg)
	}
	h, err := commands.NewCustomers(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func request(customerID uuid.UUID, cmd domain.Command) commands.Request {
	return commands.Request{CustomerID: customerID, Command: cmd, CommandID: uuid.New(), Actor: "tester", CorrelationID: "test"}
}

func (e *env) register(tb testing.TB, email string) uuid.UUID {
	tb.Helper()
	res, err := e.handler.Handle(context.Background(), request(uuid.Nil, domain.RegisterCustomer{Name: "Grace Hopper", Email: email}))
	if err != nil {
		tb.Fatalf("register %s: %v", email, err)
	}
	return res.CustomerID
}

func logContact(summary string) domain.LogContact {
	return domain.LogContact{Channel: domain.ChannelPhone, Direction: domain.DirectionInbound, Summary: summary, By: "agent"}
}

func TestRegisterThenCommandsAppendWithRevisions(t *testing.T) {
	e := mustOpen(t)
	ctx := context.Background()
	res, err := e.handler.Handle(ctx, request(uuid.Nil, domain.RegisterCustomer{Name: "Grace Hopper", Email: "Grace@Example.com"}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Revision != 0 || res.Appended != 1 || res.CustomerID == uuid.Nil || res.CreatedID != res.CustomerID {
		t.Fatalf("register result %+v", res)
	}
	res2, err := e.handler.Handle(ctx, request(res.CustomerID, domain.FileComplaint{Category: "billing", Severity: domain.SeverityHigh, Description: "double charge"}))
	if err != nil {
		t.Fatal(err)
	}
	if res2.Revision != 1 || res2.Position <= res.Position || res2.CreatedID == uuid.Nil {
		t.Fatalf("complaint result %+v after %+v", res2, res)
	}
	events, err := e.store.ReadStream(ctx, domain.StreamName(res.CustomerID), eventstore.ReadStreamOptions{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var v eventcodec.Verifier
	for _, rec := range events {
		if err := v.Verify(rec); err != nil {
			t.Fatalf("hash chain: %v", err)
		}
		d, err := e.codec.Decode(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		if d.Metadata.Actor != "tester" || d.Metadata.CorrelationID != "test" || d.Metadata.CustomerID != res.CustomerID || d.Metadata.CausationID == uuid.Nil || d.Metadata.SchemaVersion != 1 || d.Metadata.RecordedAt.IsZero() || d.Metadata.OccurredAt.IsZero() {
			t.Errorf("metadata %+v", d.Metadata)
		}
	}
	if strings.Contains(string(events[0].Data), "Grace") || strings.Contains(string(events[1].Data), "double charge") {
		t.Errorf("personal data stored in clear: %s %s", events[0].Data, events[1].Data)
	}
}

func TestUnknownCustomerIsNotFound(t *testing.T) {
	e := mustOpen(t)
	_, err := e.handler.Handle(context.Background(), request(uuid.New(), logContact("hello")))
	if !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("got %v, want not found", err)
	}
}

func TestRetriedCommandAppendsNothing(t *testing.T) {
	e := mustOpen(t)
	ctx := context.Background()
	id := e.register(t, "retry@example.com")
	req := request(id, logContact("first try"))
	req.RequestHash = "h1"
	first, err := e.handler.Handle(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// The same command again, through this process and through another
	// whose cache never saw it.
	for _, h := range []*commands.Customers{e.handler, e.newHandler(t, nil)} {
		again, err := h.Handle(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Replayed || again.Revision != first.Revision || again.Position != first.Position || again.CreatedID != first.CreatedID || again.Appended != 0 {
			t.Fatalf("retry gave %+v, first was %+v", again, first)
		}
	}
	req.RequestHash = "h2"
	if _, err := e.handler.Handle(ctx, req); !errors.Is(err, commands.ErrIdempotencyKeyReused) {
		t.Fatalf("same key, other request: %v", err)
	}
	events, _ := e.store.ReadStream(ctx, domain.StreamName(id), eventstore.ReadStreamOptions{Limit: 10})
	if len(events) != 2 {
		t.Fatalf("stream has %d events, want 2", len(events))
	}
}

func TestConditionalCommand(t *testing.T) {
	e := mustOpen(t)
	ctx := context.Background()
	id := e.register(t, "cond@example.com")
	req := request(id, logContact("conditional"))
	stale := uint64(3)
	req.ExpectedRevision = &stale
	var mismatch *commands.RevisionMismatchError
	if _, err := e.handler.Handle(ctx, req); !errors.As(err, &mismatch) || mismatch.Current != 0 {
		t.Fatalf("stale If-Match: %v", err)
	}
	current := uint64(0)
	req.ExpectedRevision = &current
	res, err := e.handler.Handle(ctx, req)
	if err != nil || res.Revision != 1 {
		t.Fatalf("matching If-Match: %+v %v", res, err)
	}
}

// TestConcurrentCommandsOnOneCustomer runs commands from two "processes"
// (handlers with separate caches) at once: every command is accepted
// exactly once and the final revision counts them.
func TestConcurrentCommandsOnOneCustomer(t *testing.T) {
	e := mustOpen(t)
	ctx := context.Background()
	id := e.register(t, "busy@example.com")
	handlers := []*commands.Customers{e.handler, e.newHandler(t, func(c *commands.Config) { c.MaxConflictRetries = 50 })}
	const perHandler, workers = 10, 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	var accepted int
	for _, h := range handlers {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perHandler {
					_, err := h.Handle(ctx, request(id, logContact(fmt.Sprintf("w%d-%d", w, i))))
					if err != nil && !errors.Is(err, commands.ErrTooManyConflicts) {
						t.Error(err)
						return
					}
					if err == nil {
						mu.Lock()
						accepted++
						mu.Unlock()
					}
				}
			}()
		}
	}
	wg.Wait()
	events, err := e.store.ReadStream(ctx, domain.StreamName(id), eventstore.ReadStreamOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != accepted+1 {
		t.Fatalf("stream has %d events for %d accepted commands", len(events), accepted)
	}
	if accepted < len(handlers)*workers*perHandler/2 {
		t.Fatalf("only %d of %d commands accepted", accepted, len(handlers)*workers*perHandler)
	}
}

func TestEmailUniquenessRace(t *testing.T) {
	e := mustOpen(t)
	ctx := context.Background()
	handlers := []*commands.Customers{e.handler, e.newHandler(t, nil)}
	const racers = 8
	var wg sync.WaitGroup
	results := make(chan error, racers)
	winners := make(chan uuid.UUID, racers)
	start := make(chan struct{})
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			email := "Race@Example.com"
			if i%2 == 1 {
				email = "  race@EXAMPLE.com "
			}
			<-start
			res, err := handlers[i%2].Handle(ctx, request(uuid.Nil, domain.RegisterCustomer{Name: fmt.Sprint("racer ", i), Email: email}))
			if err == nil {
				winners <- res.CustomerID
			}
			results <- err
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	close(winners)
	winner := <-winners
	if len(winners) != 0 {
		t.Fatalf("more than one registration won")
	}
	for err := range results {
		if err == nil {
			continue
		}
		var de *domain.Error
		if !errors.As(err, &de) || de.Reason != domain.ReasonEmailTaken || de.ExistingCustomerID != winner {
			t.Fatalf("loser got %v, want email_taken naming %s", err, winner)
		}
	}
}

func TestStaleReservationIsTakenOver(t *testing.T) {
	e := mustOpen(t)
	ctx := context.Background()
	ghost := uuid.New() // reserved the email, then crashed before appending
	if _, _, _, err := e.emails.Reserve(ctx, "ghost@example.com", ghost); err != nil {
		t.Fatal(err)
	}
	_, err := e.handler.Handle(ctx, request(uuid.Nil, domain.RegisterCustomer{Name: "Next", Email: "ghost@example.com"}))
	if !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("fresh reservation should still block: %v", err)
	}
	h := e.newHandler(t, func(c *commands.Config) { c.StaleReservation = time.Nanosecond })
	if _, err := h.Handle(ctx, request(uuid.Nil, domain.RegisterCustomer{Name: "Next", Email: "ghost@example.com"})); err != nil {
		t.Fatalf("stale reservation of a customer that never appended: %v", err)
	}
}

func TestEmailChangeMovesTheReservation(t *testing.T) {
	e := mustOpen(t)
	ctx := context.Background()
	a := e.register(t, "old@example.com")
	newEmail := "new@example.com"
	if _, err := e.handler.Handle(ctx, request(a, domain.UpdateProfile{Email: &newEmail})); err != nil {
		t.Fatal(err)
	}
	e.register(t, "old@example.com") // free again
	_, err := e.handler.Handle(ctx, request(uuid.Nil, domain.RegisterCustomer{Name: "Copycat", Email: "NEW@example.com"}))
	var de *domain.Error
	if !errors.As(err, &de) || de.ExistingCustomerID != a {
		t.Fatalf("new email should be taken by %s: %v", a, err)
	}
}

func TestErasureShredsAndRefusesLaterCommands(t *testing.T) {
	e := mustOpen(t)
	ctx := context.Background()
	id := e.register(t, "erase@example.com")
	if _, err := e.handler.Handle(ctx, request(id, logContact("secret summary"))); err != nil {
		t.Fatal(err)
	}
	if _, err := e.handler.Handle(ctx, request(id, domain.EraseCustomerData{Reason: "GDPR art. 17 request"})); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*commands.Customers{e.handler, e.newHandler(t, nil)} {
		if _, err := h.Handle(ctx, request(id, logContact("after"))); !errors.Is(err, domain.ErrGone) {
			t.Fatalf("command after erasure: %v, want gone", err)
		}
	}
	events, _ := e.store.ReadStream(ctx, domain.StreamName(id), eventstore.ReadStreamOptions{Limit: 10})
	for _, rec := range events {
		d, err := e.codec.Decode(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		if c, ok := d.Event.(domain.ContactLogged); ok && (c.Summary != "" || !d.Erased) {
			t.Fatalf("contact still readable after erasure: %+v", c)
		}
	}
	e.register(t, "erase@example.com") // the email is free again
}

// BenchmarkCommandLatency compares a command on a customer with a long
// history against one on a new customer: with the state cache both read
// only the events they have not seen.
func BenchmarkCommandLatency(b *testing.B) {
	e := mustOpen(b)
	ctx := context.Background()
	for _, history := range []int{1, 10_000} {
		id := e.register(b, fmt.Sprintf("history%d@example.com", history))
		for i := 1; i < history; i += 100 {
			// Build the history fast, straight through the store.
			var events []domain.Event
			for j := 0; j < 100 && i+j < history; j++ {
				events = append(events, domain.ContactLogged{ContactID: uuid.New(), Channel: domain.ChannelEmail, Direction: domain.DirectionOutbound, Summary: "newsletter", By: "bot", OccurredAt: time.Now().UTC()})
			}
			last, err := e.store.ReadStream(ctx, domain.StreamName(id), eventstore.ReadStreamOptions{Direction: eventstore.Backwards, From: eventstore.LastRevision, Limit: 1})
			if err != nil {
				b.Fatal(err)
			}
			var meta eventcodec.Metadata
			d, _ := e.codec.Decode(ctx, last[0])
			meta = d.Metadata
			ids := make([]uuid.UUID, len(events))
			for k := range ids {
				ids[k] = uuid.New()
			}
			data, _, err := e.codec.Encode(ctx, eventcodec.Batch{Stream: domain.StreamName(id), FirstRevision: last[0].Revision + 1, PrevHash: meta.Hash, Metadata: eventcodec.Metadata{CustomerID: id, Actor: "bench"}, Events: events, IDs: ids})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.store.Append(ctx, domain.StreamName(id), eventstore.Exact(last[0].Revision), data); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("history=%d", history), func(b *testing.B) {
			if _, err := e.handler.Handle(ctx, request(id, logContact("warm-up"))); err != nil { // loads the state once
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := e.handler.Handle(ctx, request(id, logContact("benchmark"))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncryption compares command throughput with personal fields
// encrypted (as the service runs) against a plaintext codec, in one run:
// 16 clients log contacts on 64 existing customers.
func BenchmarkEncryption(b *testing.B) {
	e := mustOpen(b)
	for _, variant := range []struct {
		name  string
		codec *eventcodec.Codec
	}{
		{"encrypted", e.codec},
		{"plaintext", eventcodec.NewPlaintext(domain.NewRegistry())},
	} {
		h := e.newHandler(b, func(c *commands.Config) { c.Codec = variant.codec })
		var customers []uuid.UUID
		for i := range 64 {
			res, err := h.Handle(context.Background(), request(uuid.Nil, domain.RegisterCustomer{Name: "Bench", Email: fmt.Sprintf("%s-%d@example.com", variant.name, i)}))
			if err != nil {
				b.Fatal(err)
			}
			customers = append(customers, res.CustomerID)
		}
		b.Run(variant.name, func(b *testing.B) {
			var next atomic.Int64
			b.SetParallelism(8) // 16 goroutines on 2 CPUs
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := customers[next.Add(1)%int64(len(customers))]
					if _, err := h.Handle(context.Background(), request(id, logContact("a summary that is personal data"))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commands/s")
		})
	}
}
