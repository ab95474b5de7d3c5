package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// feedItem is what the tests read of an integration event.
type feedItem struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	CustomerID string          `json:"customer_id"`
	Revision   uint64          `json:"revision"`
	Position   uint64          `json:"position"`
	Data       json.RawMessage `json:"data"`
}

// feedAll pages through the whole feed with JSON pages of limit.
func feedAll(t *testing.T, m *apptest.Main, query string, limit int) []feedItem {
	t.Helper()
	var all []feedItem
	after := uint64(0)
	for {
		var page struct {
			Items     []feedItem `json:"items"`
			NextAfter uint64     `json:"next_after"`
			HasMore   bool       `json:"has_more"`
		}
		resp := m.Get(t, "analyst", fmt.Sprintf("/v1/feed?after=%d&limit=%d%s", after, limit, query))
		if resp.Status != http.StatusOK {
			t.Fatalf("feed: %d %s", resp.Status, resp.Body)
		}
		resp.JSON(t, &page)
		all = append(all, page.Items...)
		if len(page.Items) == 0 {
			return all
		}
		after = page.NextAfter
	}
}

// logActivity registers a customer and logs n contacts for it, returning
// the position of the last command.
func logActivity(t *testing.T, m *apptest.Main, n int) float64 {
	t.Helper()
	id := register(t, m, fmt.Sprintf("feed-%d@example.com", rand.Int64()))
	var last float64
	for range n {
		last = requireStatus(t, m.Post(t, "/v1/customers/"+id+"/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "private words", "by": "bob"}), http.StatusCreated)["position"].(float64)
	}
	return last
}

func TestFeedPagesNDJSONAndFilters(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	for range 3 {
		logActivity(t, m, 2)
	}
	last := logActivity(t, m, 1)
	// Read your writes: min_position waits for the feed.
	requireStatus(t, m.Get(t, "writer", fmt.Sprintf("/v1/feed?min_position=%.0f", last)), http.StatusOK)

	all := feedAll(t, m, "", 1000)
	if len(all) != 4+7 {
		t.Fatalf("feed has %d events, want 11: %+v", len(all), all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Position <= all[i-1].Position {
			t.Fatalf("feed out of order at %d: %d after %d", i, all[i].Position, all[i-1].Position)
		}
	}
	for _, e := range all {
		if strings.Contains(string(e.Data), "private words") || strings.Contains(string(e.Data), "Ada") {
			t.Fatalf("personal data in the feed: %s", e.Data)
		}
	}
	if paged := feedAll(t, m, "", 3); !slices.EqualFunc(paged, all, func(a, b feedItem) bool { return a.Position == b.Position }) {
		t.Fatalf("pages of 3 read %d events, one page %d", len(paged), len(all))
	}
	contacts := feedAll(t, m, "&types=contact.logged.v1", 2)
	if len(contacts) != 7 {
		t.Fatalf("type filter: %d contacts, want 7", len(contacts))
	}
	both := feedAll(t, m, "&types=contact.logged.v1&types=customer.registered.v1", 100)
	if len(both) != 11 {
		t.Fatalf("two types: %d, want 11", len(both))
	}

	// NDJSON: the same events, one per line.
	resp := m.Do(t, apptest.Request{Method: http.MethodGet, Path: fmt.Sprintf("/v1/feed?after=%d", all[2].Position), Key: m.Keys["writer"], Header: map[string]string{"Accept": "application/x-ndjson"}})
	if resp.Status != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("ndjson: %d %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	lines := strings.Split(strings.TrimSpace(string(resp.Body)), "\n")
	if len(lines) != len(all)-3 {
		t.Fatalf("ndjson has %d lines, want %d", len(lines), len(all)-3)
	}

	requireProblem(t, m.Get(t, "writer", "/v1/feed?types=complaint.filed"), 422, "invalid_fields", "types")
	requireProblem(t, m.Get(t, "writer", "/v1/feed?after=-1"), 422, "invalid_fields", "after")
	requireProblem(t, m.Get(t, "writer", "/v1/feed?limit=0"), 422, "invalid_fields", "limit")
	requireStatus(t, m.Get(t, "auditor", "/v1/feed"), http.StatusForbidden)
}

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	id    string
	event string
	data  string
}

// readSSE reads events from body until it ends, calling got for each
// event dispatched (complete, ended by its blank line). It follows the
// spec's rules only as far as the server uses them.
func readSSE(body io.Reader, got func(sseEvent)) {
	sc := bufio.NewScanner(body)
	var cur sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.data != "" {
				got(cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// cutReader ends after n bytes, as a connection that drops mid-event.
type cutReader struct {
	r io.Reader
	n int
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.EOF
	}
	if len(p) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

// TestFeedEventsResumeAcrossForcedDisconnects streams the feed while
// commands write, and cuts the connection after a random number of bytes
// — mostly in the middle of an event — dozens of times. Each reconnect
// sends the last id received, as EventSource does. The events received
// must be exactly the feed: nothing lost, nothing repeated, in order.
func TestFeedEventsResumeAcrossForcedDisconnects(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	const customers, contacts = 30, 4
	var (
		wg   sync.WaitGroup
		last float64
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range customers {
			last = logActivity(t, m, contacts)
		}
	}()
	want := customers * (1 + contacts)
	rng := rand.New(rand.NewPCG(1, 2))
	var received []sseEvent
	lastID := ""
	reconnects := 0
	deadline := time.Now().Add(25 * time.Second)
	for len(received) < want {
		if time.Now().After(deadline) {
			t.Fatalf("after %d reconnects, %d of %d events", reconnects, len(received), want)
		}
		// A connection is also cut after at most a second: an idle one
		// would otherwise wait for bytes that never come.
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(100+rng.IntN(900))*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+"/v1/feed", nil)
		req.Header.Set("Authorization", "Bearer "+m.Keys["writer"])
		req.Header.Set("Accept", "text/event-stream")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				reconnects++
				continue // cut before the answer came
			}
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		// Cut after 200 bytes to 4 KiB: a few events, the last one torn.
		readSSE(&cutReader{r: resp.Body, n: 200 + rng.IntN(4096)}, func(e sseEvent) {
			received = append(received, e)
			lastID = e.id
		})
		cancel()
		resp.Body.Close()
		reconnects++
	}
	wg.Wait()
	m.Get(t, "writer", fmt.Sprintf("/v1/feed?min_position=%.0f", last))
	all := feedAll(t, m, "", 1000)
	if len(all) != want || len(received) != want {
		t.Fatalf("feed %d, received %d, want %d", len(all), len(received), want)
	}
	for i, e := range received {
		var item feedItem
		if err := json.Unmarshal([]byte(e.data), &item); err != nil {
			t.Fatalf("event %d: %v: %q", i, err, e.data)
		}
		if e.id != strconv.FormatUint(all[i].Position, 10) || item.Position != all[i].Position || item.ID != all[i].ID || e.event != all[i].Type {
			t.Fatalf("event %d: id %s type %s, the feed has %d %s", i, e.id, e.event, all[i].Position, all[i].Type)
		}
	}
	if reconnects < 10 {
		t.Fatalf("only %d reconnects: the test did not force enough disconnects", reconnects)
	}
	t.Logf("%d events over %d connections", len(received), reconnects)
}
