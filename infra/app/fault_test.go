package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/esdb/esdbtest"
	"github.com/rapport-crm/rapport/infra/pgtest"
)

// acknowledged is a command the service answered 2xx: it must be durable.
type acknowledged struct {
	customerID string
	contactID  string
}

// commandLoad keeps `clients` clients logging contacts on the given
// customers until stop is closed, and tallies the answers.
type commandLoad struct {
	sent, ok, unavailable, other atomic.Int64
	mu                           sync.Mutex
	acked                        []acknowledged
	otherAnswers                 []string
}

func (l *commandLoad) run(t *testing.T, m *apptest.Main, customers []string, clients int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := customers[(c+i)%len(customers)]
				l.sent.Add(1)
				resp := m.Post(t, "/v1/customers/"+id+"/contacts", map[string]any{"channel": "chat", "direction": "inbound", "summary": fmt.Sprintf("client %d message %d", c, i), "by": "bot"})
				switch {
				case resp.Status == http.StatusCreated:
					l.ok.Add(1)
					l.mu.Lock()
					l.acked = append(l.acked, acknowledged{customerID: id, contactID: resp.Map(t)["contact_id"].(string)})
					l.mu.Unlock()
				case resp.Status == http.StatusServiceUnavailable:
					l.unavailable.Add(1)
					if resp.Header.Get("Content-Type") != "application/problem+json" || resp.Header.Get("Retry-After") == "" {
						t.Errorf("503 without a problem body or Retry-After: %v %s", resp.Header, resp.Body)
					}
					time.Sleep(20 * time.Millisecond)
				default:
					l.other.Add(1)
					l.mu.Lock()
					l.otherAnswers = append(l.otherAnswers, fmt.Sprintf("%d %s", resp.Status, resp.Body))
					l.mu.Unlock()
				}
			}
		}()
	}
	return &wg
}

// contactIDs lists the contacts that the event store holds for a customer.
func contactIDs(t *testing.T, store eventstore.Store, m *apptest.Main, customerID string) map[string]bool {
	t.Helper()
	id := uuid.MustParse(customerID)
	events, err := store.ReadStream(context.Background(), domain.StreamName(id), eventstore.ReadStreamOptions{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, rec := range events {
		if rec.Type != domain.TypeContactLogged {
			continue
		}
		var c struct {
			ContactID string `json:"contact_id"`
		}
		if err := json.Unmarshal(rec.Data, &c); err != nil {
			t.Fatal(err)
		}
		found[c.ContactID] = true
	}
	return found
}

func waitReady(t *testing.T, m *apptest.Main, ready bool, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	want := http.StatusOK
	if !ready {
		want = http.StatusServiceUnavailable
	}
	for time.Since(start) < within {
		if resp := m.Do(t, apptest.Request{Method: http.MethodGet, Path: "/readyz"}); resp.Status == want {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("/readyz did not answer %d within %s", want, within)
	return 0
}

// TestPostgresRestartDuringCommandLoad restarts the database under load:
// the service reports not ready, recovers by itself, and every command it
// acknowledged is in the event store afterwards.
func TestPostgresRestartDuringCommandLoad(t *testing.T) {
	pg := pgtest.NewPrivateServer(t)
	m := apptest.MustOpen(t, func(c *app.Config) {
		c.DatabaseURL = pg.NewDatabase()
		c.CommandTimeout = 2 * time.Second
	})
	var customers []string
	for i := range 4 {
		resp := m.Post(t, "/v1/customers", map[string]any{"name": fmt.Sprint("load ", i), "phone": fmt.Sprintf("+1 555 010%d", i)})
		if resp.Status != http.StatusCreated {
			t.Fatalf("register: %d %s", resp.Status, resp.Body)
		}
		customers = append(customers, resp.Map(t)["customer_id"].(string))
	}
	var load commandLoad
	stop := make(chan struct{})
	wg := load.run(t, m, customers, 8, stop)
	time.Sleep(700 * time.Millisecond)
	pg.Stop()
	notReadyAfter := waitReady(t, m, false, 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	pg.Start()
	recoveredAfter := waitReady(t, m, true, 30*time.Second)
	okBefore := load.ok.Load()
	time.Sleep(700 * time.Millisecond)
	close(stop)
	wg.Wait()
	if load.ok.Load() == okBefore {
		t.Fatal("no command succeeded after the database came back")
	}
	for _, a := range load.otherAnswers {
		t.Errorf("unexpected answer during the restart: %s", a)
	}
	found := map[string]map[string]bool{}
	for _, c := range customers {
		found[c] = contactIDs(t, m.Store, m, c)
	}
	lost := 0
	for _, a := range load.acked {
		if !found[a.customerID][a.contactID] {
			lost++
		}
	}
	t.Logf("Postgres restart: %d commands sent, %d answered 2xx, %d answered 503, %d found afterwards, %d lost; not ready after %s, ready again %s after restart",
		load.sent.Load(), load.ok.Load(), load.unavailable.Load(), len(load.acked)-lost, lost, notReadyAfter.Round(time.Millisecond), recoveredAfter.Round(time.Millisecond))
	if lost > 0 {
		t.Fatalf("%d acknowledged commands are not in the event store", lost)
	}
	// And in the read models: the projectors recovered by themselves,
	// reached the head, and every read model reconciles with the log.
	head, err := m.Store.ReadAll(context.Background(), eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Engine.WaitForPosition(waitCtx, head[0].Position); err != nil {
		t.Fatalf("read models did not catch up after the restart: %v", err)
	}
	report, err := m.Engine.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() {
		t.Fatalf("read models differ from the log after the restart: %+v", report)
	}
	inHistory := 0
	for _, c := range customers {
		cursor := ""
		for {
			resp := m.Get(t, "auditor", "/v1/customers/"+c+"/history?type=ContactLogged&limit=200"+cursor)
			var page struct {
				Items []struct {
					Details map[string]any `json:"details"`
				} `json:"items"`
				NextCursor *string `json:"next_cursor"`
			}
			resp.JSON(t, &page)
			for _, it := range page.Items {
				if found[c][it.Details["contact_id"].(string)] {
					inHistory++
				}
			}
			if page.NextCursor == nil {
				break
			}
			cursor = "&cursor=" + *page.NextCursor
		}
	}
	if inHistory < len(load.acked) {
		t.Fatalf("the history read model shows %d of %d acknowledged contacts", inHistory, len(load.acked))
	}
	t.Logf("read models: all %d acknowledged contacts reflected; %d read models reconcile with the log", inHistory, len(report.Projectors))
}

// TestEventStoreUnreachable stops EventStoreDB (its test server): commands
// answer 503 with a problem body, nothing is half-written, and the service
// recovers when the store is back.
func TestEventStoreUnreachable(t *testing.T) {
	server := esdbtest.Start(t)
	m := apptest.MustOpen(t, func(c *app.Config) {
		c.EventStore = server.ConnectionString()
		c.CommandTimeout = time.Second
	})
	resp := m.Post(t, "/v1/customers", map[string]any{"name": "Esme", "email": "esme@example.com"})
	if resp.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.Status, resp.Body)
	}
	id := resp.Map(t)["customer_id"].(string)
	restarted := make(chan error, 1)
	go func() { restarted <- server.RestartAfter(8 * time.Second) }()
	time.Sleep(100 * time.Millisecond) // the server is down now
	for i := range 2 {
		resp := m.Post(t, "/v1/customers/"+id+"/contacts", map[string]any{"channel": "chat", "direction": "inbound", "summary": fmt.Sprint("during outage ", i), "by": "bot"})
		if resp.Status != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/problem+json" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("command during the outage: %d %v %s, want 503 problem with Retry-After", resp.Status, resp.Header, resp.Body)
		}
	}
	resp = m.Post(t, "/v1/customers", map[string]any{"name": "Finn", "email": "finn@example.com"})
	if resp.Status != http.StatusServiceUnavailable {
		t.Fatalf("registration during the outage: %d %s", resp.Status, resp.Body)
	}
	waitReady(t, m, false, 10*time.Second)
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	waitReady(t, m, true, 30*time.Second)
	resp = m.Post(t, "/v1/customers/"+id+"/contacts", map[string]any{"channel": "chat", "direction": "inbound", "summary": "after", "by": "bot"})
	if resp.Status != http.StatusCreated {
		t.Fatalf("command after the outage: %d %s", resp.Status, resp.Body)
	}
	// Nothing of the refused commands was written: the stream holds the
	// registration and the one contact after the outage.
	events, err := m.Store.ReadStream(context.Background(), domain.StreamName(uuid.MustParse(id)), eventstore.ReadStreamOptions{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 {
		t.Fatalf("stream holds %d events, want 2 (registration, contact after the outage)", len(events))
	}
}
