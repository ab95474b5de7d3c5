package app_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// TestAnotherMasterKeyRefusesToStart: two processes share a database with
// different master keys (two checkouts running `make run` on one
// PostgreSQL). The second refuses to start, naming the cause, instead of
// starting and then failing every command; the first goes on.
func TestAnotherMasterKeyRefusesToStart(t *testing.T) {
	m := apptest.MustOpen(t)
	resp := m.Post(t, "/v1/customers", map[string]any{"name": "Ada", "email": "ada@example.com"})
	if resp.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.Status, resp.Body)
	}
	for name, key := range map[string][]byte{
		"another key":     bytes.Repeat([]byte{7}, 32),
		"yet another key": bytes.Repeat([]byte{9}, 32),
	} {
		cfg := m.Config
		cfg.MasterKey = key
		second, err := app.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = second.Open(ctx)
		cancel()
		if err == nil {
			_ = second.Close(context.Background())
			t.Fatalf("%s: a process with another master key started on the database", name)
		}
		if msg := err.Error(); !strings.Contains(msg, "master key") || !strings.Contains(msg, "does not match") {
			t.Fatalf("%s: the refusal does not name the cause: %v", name, err)
		}
	}
	if resp := m.Post(t, "/v1/customers", map[string]any{"name": "Bob", "email": "bob@example.com"}); resp.Status != http.StatusCreated {
		t.Fatalf("the first process after the second was refused: %d %s", resp.Status, resp.Body)
	}
	m.Restart(t) // its own key still starts
}

// TestRotateMasterKeyUnderLoad rotates the master key while clients
// register customers (each making a data key) and log contacts on a
// service started with the old key: every command succeeds during and
// after the rotation, the service restarted with the new key decodes every
// event of the log, and the old key no longer starts.
func TestRotateMasterKeyUnderLoad(t *testing.T) {
	m := apptest.MustOpen(t)
	oldKey := m.Config.MasterKey
	newKey := bytes.Repeat([]byte{42}, 32)
	var customers []string
	for i := range 20 {
		resp := m.Post(t, "/v1/customers", map[string]any{"name": fmt.Sprint("Before ", i), "email": fmt.Sprintf("before-%d@example.com", i)})
		if resp.Status != http.StatusCreated {
			t.Fatalf("register: %d %s", resp.Status, resp.Body)
		}
		customers = append(customers, resp.Map(t)["customer_id"].(string))
	}
	var (
		wg         sync.WaitGroup
		ok, failed atomic.Int64
		mu         sync.Mutex
		answers    []string
	)
	stop := make(chan struct{})
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var resp *apptest.Response
				if i%2 == 0 {
					resp = m.Post(t, "/v1/customers", map[string]any{"name": fmt.Sprintf("During %d-%d", c, i), "email": fmt.Sprintf("during-%d-%d@example.com", c, i)})
				} else {
					resp = m.Post(t, "/v1/customers/"+customers[(c+i)%len(customers)]+"/contacts", map[string]any{"channel": "chat", "direction": "inbound", "summary": "personal words", "by": "bot"})
				}
				if resp.Status == http.StatusCreated {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				mu.Lock()
				answers = append(answers, fmt.Sprintf("%d %s", resp.Status, resp.Body))
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	report, err := postgres.RotateMasterKey(context.Background(), m.Pool, oldKey, newKey, postgres.RotateOptions{BatchSize: 50, Grace: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rotated := time.Since(start)
	okAtEnd := ok.Load()
	time.Sleep(500 * time.Millisecond) // the old-key process goes on after the end
	close(stop)
	wg.Wait()
	t.Logf("rotation under load: %+v in %s; %d commands succeeded, %d failed", report, rotated.Round(time.Millisecond), ok.Load(), failed.Load())
	for _, a := range answers {
		t.Errorf("a command failed during the rotation: %s", a)
	}
	if okAtEnd == 0 || ok.Load() == okAtEnd {
		t.Fatalf("no load during (%d) or after (%d) the rotation", okAtEnd, ok.Load()-okAtEnd)
	}

	m.Restart(t, func(c *app.Config) { c.MasterKey = newKey })
	events, err := m.Store.ReadAll(context.Background(), eventstore.ReadAllOptions{Limit: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range events {
		d, err := m.Codec.Decode(context.Background(), rec)
		if err != nil {
			t.Fatalf("%s@%d does not decode under the new key: %v", rec.Stream, rec.Revision, err)
		}
		if d.Erased {
			t.Fatalf("%s@%d reads as erased under the new key", rec.Stream, rec.Revision)
		}
	}
	t.Logf("%d events decode under the new key alone", len(events))
	// The keyed hash chain survives the rotation: histories hashed before it
	// still verify under the new master key.
	for _, id := range customers {
		resp := m.Get(t, "auditor", "/v1/customers/"+id+"/verification")
		if resp.Status != http.StatusOK || resp.Map(t)["intact"] != true {
			t.Fatalf("verification of %s after the rotation: %d %s", id, resp.Status, resp.Body)
		}
	}
	if resp := m.Post(t, "/v1/customers/"+customers[0]+"/contacts", map[string]any{"channel": "chat", "direction": "inbound", "summary": "after", "by": "bot"}); resp.Status != http.StatusCreated {
		t.Fatalf("a command under the new key: %d %s", resp.Status, resp.Body)
	}
	cfg := m.Config
	cfg.MasterKey = oldKey
	old, err := app.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Open(context.Background()); err == nil {
		_ = old.Close(context.Background())
		t.Fatal("the retired master key still starts a process")
	}
}
