package reminders_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/integration"
	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/webhooks"
)

// TestAReminderReachesAWebhookAndTheFeed runs the service with its own
// scheduler on the real clock: a complaint filed two hours ago whose first
// response never came is breached at once; the reminder reaches a webhook
// receiver, signed, and GET /v1/feed lists it (both checked against the
// OpenAPI document). After a restart the scheduler goes on: the next
// complaint's reminder comes, the first is neither emitted nor delivered
// again.
func TestAReminderReachesAWebhookAndTheFeed(t *testing.T) {
	m := apptest.MustOpen(t, func(c *app.Config) {
		c.Webhooks.AllowTargets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.Reminders = app.ReminderSettings{Interval: 50 * time.Millisecond}
	})
	var (
		mu       sync.Mutex
		received []integration.Event
		secret   string
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := webhooks.Verify(secret, r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body, time.Now(), 5*time.Minute); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var e integration.Event
		if err := json.Unmarshal(body, &e); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		received = append(received, e)
	}))
	defer receiver.Close()
	resp := m.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/webhooks", Key: m.Keys["admin"], Body: map[string]any{
		"url": receiver.URL + "/hook", "event_types": []string{integration.TypeReminderComplaintSLABreached},
	}})
	if resp.Status != http.StatusCreated {
		t.Fatalf("subscribe: %d %s", resp.Status, resp.Body)
	}
	mu.Lock()
	secret = resp.Map(t)["secret"].(string)
	mu.Unlock()

	w := newWorld(t, m)
	now := time.Now().UTC()
	customer := w.register(now.Add(-24*time.Hour), "A")
	first := w.do(customer, now.Add(-2*time.Hour), domain.FileComplaint{Category: "billing", Severity: domain.SeverityCritical, Description: "personal words"})

	// delivered waits until n distinct reminders arrived (a webhook is
	// at least once: one may arrive twice, with the same id).
	delivered := func(n int) []integration.Event {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			got := slices.Clone(received)
			mu.Unlock()
			ids := map[uuid.UUID]bool{}
			for _, e := range got {
				ids[e.ID] = true
			}
			if len(ids) >= n || time.Now().After(deadline) {
				return got
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	got := delivered(1)
	if len(got) != 1 || got[0].Type != integration.TypeReminderComplaintSLABreached || got[0].CustomerID != customer {
		t.Fatalf("delivered %+v", got)
	}
	var data integration.ComplaintSLAData
	if err := json.Unmarshal(got[0].Data, &data); err != nil || data.ComplaintID != first || data.Step != domain.SLAStepFirstResponse ||
		!data.DueAt.Equal(data.OpenedAt.Add(time.Hour)) || !got[0].OccurredAt.Equal(data.DueAt) {
		t.Fatalf("data %s (%v)", got[0].Data, err)
	}
	if got[0].Revision != 1 { // registered (0), filed (1): judged on the filing
		t.Fatalf("judged on revision %d", got[0].Revision)
	}

	feedPage := func() []integration.Event {
		t.Helper()
		r := m.Get(t, "analyst", "/v1/feed?types="+integration.TypeReminderComplaintSLABreached)
		if r.Status != http.StatusOK {
			t.Fatalf("feed: %d %s", r.Status, r.Body)
		}
		var page struct {
			Items []integration.Event `json:"items"`
		}
		r.JSON(t, &page)
		return page.Items
	}
	if items := feedPage(); len(items) != 1 || items[0].ID != got[0].ID || items[0].Position != got[0].Position {
		t.Fatalf("feed %+v, delivered %+v", items, got)
	}

	// The delivery recorded before the restart, so that it is not sent
	// again (the restart is about the scheduler, not at-least-once).
	deadline := time.Now().Add(20 * time.Second)
	for {
		var done int
		if err := m.Pool.QueryRow(t.Context(), `SELECT count(*) FROM rapport.webhook_deliveries WHERE delivered`).Scan(&done); err != nil {
			t.Fatal(err)
		}
		if done == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delivery was not recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.Restart(t)
	w.last = 0
	second := w.do(customer, time.Now().UTC().Add(-3*time.Hour), domain.FileComplaint{Category: "delivery", Severity: domain.SeverityCritical, Description: "more words"})
	delivered(2)
	time.Sleep(500 * time.Millisecond) // ten scans after the restart, which would add more
	mu.Lock()
	got = slices.Clone(received)
	mu.Unlock()
	ids := map[uuid.UUID]bool{}
	for _, e := range got {
		ids[e.ID] = true
	}
	if len(got) != 2 || len(ids) != 2 {
		t.Fatalf("after the restart %d deliveries of %d reminders: %+v", len(got), len(ids), got)
	}
	if err := json.Unmarshal(got[1].Data, &data); err != nil || data.ComplaintID != second {
		t.Fatalf("second delivery %s", got[1].Data)
	}
	if items := feedPage(); len(items) != 2 {
		t.Fatalf("feed after the restart: %+v", items)
	}
}
