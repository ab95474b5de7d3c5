package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	rhttp "github.com/rapport-crm/rapport/infra/http"
)

// appendPoison writes, through the store port (so past the API's
// validation), a registration whose name holds a NUL: PostgreSQL refuses
// it in a text column (SQLSTATE 22021), so the projectors that store the
// name cannot apply it, ever.
func appendPoison(t *testing.T, m *apptest.Main) (uuid.UUID, eventstore.Position) {
	t.Helper()
	ctx := context.Background()
	id := uuid.New()
	data, _, err := m.Codec.Encode(ctx, eventcodec.Batch{
		Stream: domain.StreamName(id), Metadata: eventcodec.Metadata{CustomerID: id, Actor: "test", RecordedAt: time.Now().UTC()},
		Events: []domain.Event{domain.CustomerRegistered{CustomerID: id, Name: "Nul\x00Byte", Email: "nul@example.com", OccurredAt: time.Now().UTC()}},
		IDs:    []uuid.UUID{uuid.New()},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Store.Append(ctx, domain.StreamName(id), eventstore.NoStream, data)
	if err != nil {
		t.Fatal(err)
	}
	return id, res.Position
}

type parkedJSON struct {
	Stream    string `json:"stream"`
	Position  uint64 `json:"position"`
	EventType string `json:"event_type"`
	Message   string `json:"message"`
	Attempts  int    `json:"attempts"`
	Waiting   int64  `json:"waiting"`
}

type projectionJSON struct {
	Name       string       `json:"name"`
	State      string       `json:"state"`
	Checkpoint uint64       `json:"checkpoint"`
	Degraded   bool         `json:"degraded"`
	Parked     []parkedJSON `json:"parked"`
}

func projectionsByName(t *testing.T, m *apptest.Main) map[string]projectionJSON {
	t.Helper()
	resp := m.Get(t, "admin", "/v1/projections")
	if resp.Status != http.StatusOK {
		t.Fatalf("GET /v1/projections: %d %s", resp.Status, resp.Body)
	}
	var list struct {
		Items []projectionJSON `json:"items"`
	}
	resp.JSON(t, &list)
	out := map[string]projectionJSON{}
	for _, p := range list.Items {
		out[p.Name] = p
	}
	return out
}

// TestPoisonEventParksOneCustomer: an event no projector can store parks
// that customer's stream; the service stays ready, other customers read
// their own writes, GET /v1/projections and the metrics show the parked
// stream, and a retry that fails again keeps it parked with one more
// attempt.
func TestPoisonEventParksOneCustomer(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	poisoned, poisonPos := appendPoison(t, m)
	stream := domain.StreamName(poisoned)

	// Another customer's write, after the poison, is readable with
	// min_position.
	resp := m.Post(t, "/v1/customers", map[string]any{"name": "Barbara Liskov", "email": "barbara@example.com"})
	if resp.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.Status, resp.Body)
	}
	var created struct {
		CustomerID uuid.UUID `json:"customer_id"`
		Position   uint64    `json:"position"`
	}
	resp.JSON(t, &created)
	if created.Position <= uint64(poisonPos) {
		t.Fatalf("the write at %d is not after the poison at %d", created.Position, poisonPos)
	}
	for _, path := range []string{
		fmt.Sprintf("/v1/customers/%s?min_position=%d", created.CustomerID, created.Position),
		fmt.Sprintf("/v1/customers?min_position=%d", created.Position),
	} {
		if resp := m.Get(t, "writer", path); resp.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.Status, resp.Body)
		}
	}
	if resp := m.Do(t, apptest.Request{Method: http.MethodGet, Path: "/readyz"}); resp.Status != http.StatusOK {
		t.Fatalf("/readyz with a parked stream: %d %s", resp.Status, resp.Body)
	}

	projs := projectionsByName(t, m)
	cust := projs["customers"]
	if !cust.Degraded || len(cust.Parked) != 1 || cust.State == "stopped" || cust.Checkpoint < created.Position {
		t.Fatalf("customers projection %+v: want it degraded with the poisoned stream parked", cust)
	}
	p := cust.Parked[0]
	if p.Stream != stream || p.Position != uint64(poisonPos) || p.EventType != domain.TypeCustomerRegistered || p.Attempts != 1 ||
		!strings.Contains(p.Message, "22021") {
		t.Fatalf("parked %+v, want %s at %d failing with SQLSTATE 22021", p, stream, poisonPos)
	}
	for name, pj := range projs {
		for _, pk := range pj.Parked {
			if pk.Stream != stream {
				t.Errorf("%s parked %s, only %s is poisoned", name, pk.Stream, stream)
			}
		}
	}

	// The metric says which projector is degraded.
	metrics := m.Get(t, "admin", "/metrics")
	if !strings.Contains(string(metrics.Body), `rapport_projection_parked_streams{projector="customers"} 1`) {
		t.Fatalf("no parked-streams gauge for customers in /metrics:\n%s", grepLines(string(metrics.Body), "parked"))
	}

	// A NUL cannot be fixed: the retry fails again and counts an attempt.
	retry := m.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/projections/customers/parked/" + stream + "/retry", Key: m.Keys["admin"]})
	var prob rhttp.Problem
	if retry.Status == http.StatusConflict {
		retry.JSON(t, &prob)
	}
	if retry.Status != http.StatusConflict || prob.Reason != "still_parked" || !strings.Contains(prob.Detail, "22021") {
		t.Fatalf("retry: %d %s", retry.Status, retry.Body)
	}
	if p := projectionsByName(t, m)["customers"]; len(p.Parked) != 1 || p.Parked[0].Attempts != 2 {
		t.Fatalf("after the retry: %+v", p)
	}
	// Only admins retry; a stream not parked is a 404.
	if resp := m.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/projections/customers/parked/" + stream + "/retry", Key: m.Keys["writer"]}); resp.Status != http.StatusForbidden {
		t.Fatalf("retry as writer: %d", resp.Status)
	}
	other := domain.StreamName(created.CustomerID)
	if resp := m.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/projections/customers/parked/" + other + "/retry", Key: m.Keys["admin"]}); resp.Status != http.StatusNotFound {
		t.Fatalf("retry of a stream not parked: %d %s", resp.Status, resp.Body)
	}
	if resp := m.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/projections/nope/parked/" + stream + "/retry", Key: m.Keys["admin"]}); resp.Status != http.StatusNotFound {
		t.Fatalf("retry in an unknown projector: %d %s", resp.Status, resp.Body)
	}
	if resp := m.Do(t, apptest.Request{Method: http.MethodGet, Path: "/readyz"}); resp.Status != http.StatusOK {
		t.Fatalf("/readyz: %d %s", resp.Status, resp.Body)
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// parkFixAndRetry parks a customer on a failure that can be fixed: a
// constraint an operator added to the customer directory's table refuses
// the customer's new company (SQLSTATE 23514). Meanwhile the customer reads
// in its last good state with stale: true, and a later event waits. Once
// the constraint is dropped, a retry applies the waiting events in order
// and the customer reads current again. The OpenAPI traffic test uses it
// for the retry's success.
func parkFixAndRetry(t *testing.T, m *apptest.Main) {
	t.Helper()
	ctx := context.Background()
	resp := m.Post(t, "/v1/customers", map[string]any{"name": "Parked Customer", "company": "Before Ltd", "email": fmt.Sprintf("parked-%s@example.com", uuid.NewString()[:8])})
	if resp.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.Status, resp.Body)
	}
	var reg struct {
		CustomerID uuid.UUID `json:"customer_id"`
		Position   uint64    `json:"position"`
	}
	resp.JSON(t, &reg)
	path := "/v1/customers/" + reg.CustomerID.String()
	if resp := m.Get(t, "writer", fmt.Sprintf("%s?min_position=%d", path, reg.Position)); resp.Status != http.StatusOK {
		t.Fatalf("get: %d %s", resp.Status, resp.Body)
	}

	var schema string
	if err := m.Pool.QueryRow(ctx, `SELECT schema_name FROM projections.generations WHERE projector = 'customers' AND state = 'active'`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	table := schema + ".customers"
	if _, err := m.Pool.Exec(ctx, `ALTER TABLE `+table+` ADD CONSTRAINT parking_trap CHECK (company IS NULL OR company NOT LIKE 'Trapped%')`); err != nil {
		t.Fatal(err)
	}
	dropped := false
	drop := func() {
		if !dropped {
			dropped = true
			if _, err := m.Pool.Exec(ctx, `ALTER TABLE `+table+` DROP CONSTRAINT IF EXISTS parking_trap`); err != nil {
				t.Error(err)
			}
		}
	}
	defer drop()
	if resp := m.Do(t, apptest.Request{Method: http.MethodPatch, Path: path, Key: m.Keys["writer"], Body: map[string]any{"company": "Trapped Inc"}}); resp.Status != http.StatusOK {
		t.Fatalf("update: %d %s", resp.Status, resp.Body)
	}
	// A later event of the parked stream waits behind the first.
	contact := m.Post(t, path+"/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "waits", "by": "bob"})
	if contact.Status != http.StatusCreated {
		t.Fatalf("contact: %d %s", contact.Status, contact.Body)
	}
	var logged struct {
		Position uint64 `json:"position"`
	}
	contact.JSON(t, &logged)
	stream := domain.StreamName(reg.CustomerID)
	// The read side passes both events: waiting for the contact's position
	// answers, with the customer's last good state, marked stale.
	got := m.Get(t, "writer", fmt.Sprintf("%s?min_position=%d", path, logged.Position))
	var c struct {
		Company       *string `json:"company"`
		LastContactAt *string `json:"last_contact_at"`
		Stale         *bool   `json:"stale"`
	}
	if got.Status == http.StatusOK {
		got.JSON(t, &c)
	}
	if got.Status != http.StatusOK || c.Company == nil || *c.Company != "Before Ltd" || c.LastContactAt != nil || c.Stale == nil || !*c.Stale {
		t.Fatalf("the parked customer: %d %s, want its last good state with stale: true", got.Status, got.Body)
	}
	cust := projectionsByName(t, m)["customers"]
	var p *parkedJSON
	for i := range cust.Parked {
		if cust.Parked[i].Stream == stream {
			p = &cust.Parked[i]
		}
	}
	if p == nil || !strings.Contains(p.Message, "23514") || p.Waiting != 1 || !cust.Degraded {
		t.Fatalf("customers %+v: want %s parked on 23514 with one event waiting", cust, stream)
	}

	// The fix, then the retry.
	drop()
	retry := m.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/projections/customers/parked/" + stream + "/retry", Key: m.Keys["admin"]})
	if retry.Status != http.StatusOK {
		t.Fatalf("retry after the fix: %d %s", retry.Status, retry.Body)
	}
	var after projectionJSON
	retry.JSON(t, &after)
	for _, pk := range after.Parked {
		if pk.Stream == stream {
			t.Fatalf("still parked after a successful retry: %+v", after)
		}
	}
	got = m.Get(t, "writer", path)
	c.Company, c.LastContactAt, c.Stale = nil, nil, nil
	if got.Status == http.StatusOK {
		got.JSON(t, &c)
	}
	if got.Status != http.StatusOK || c.Company == nil || *c.Company != "Trapped Inc" || c.LastContactAt == nil || c.Stale != nil {
		t.Fatalf("the customer after the retry: %d %s", got.Status, got.Body)
	}
}

// TestParkedStreamRetryAfterFix: a stream parked on a failure an operator
// can fix is applied, waiting events included, by the retry after the fix.
func TestParkedStreamRetryAfterFix(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	parkFixAndRetry(t, m)
	if p := projectionsByName(t, m)["customers"]; p.Degraded || len(p.Parked) != 0 {
		t.Fatalf("customers after the retry: %+v", p)
	}
	metrics := m.Get(t, "admin", "/metrics")
	if !strings.Contains(string(metrics.Body), `rapport_projection_parked_streams{projector="customers"} 0`) {
		t.Fatalf("parked-streams gauge after the retry:\n%s", grepLines(string(metrics.Body), "parked"))
	}
}

// TestParkedActivityListsSayStale: while the contacts projector has a
// customer's stream parked, that customer's contact list answers its last
// good state with stale: true; another customer's list carries no marker.
func TestParkedActivityListsSayStale(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	ctx := context.Background()
	register := func(email string) uuid.UUID {
		resp := m.Post(t, "/v1/customers", map[string]any{"name": "Activity", "email": email})
		if resp.Status != http.StatusCreated {
			t.Fatalf("register: %d %s", resp.Status, resp.Body)
		}
		var reg struct {
			CustomerID uuid.UUID `json:"customer_id"`
		}
		resp.JSON(t, &reg)
		if resp := m.Post(t, "/v1/customers/"+reg.CustomerID.String()+"/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "fine", "by": "bob"}); resp.Status != http.StatusCreated {
			t.Fatalf("contact: %d %s", resp.Status, resp.Body)
		}
		return reg.CustomerID
	}
	poisoned, healthy := register("stale-a@example.com"), register("stale-b@example.com")

	// A contact no read model can store, appended past the API's checks.
	data, _, err := m.Codec.Encode(ctx, eventcodec.Batch{
		Stream: domain.StreamName(poisoned), FirstRevision: 2,
		Metadata: eventcodec.Metadata{CustomerID: poisoned, Actor: "test", RecordedAt: time.Now().UTC()},
		Events: []domain.Event{domain.ContactLogged{ContactID: uuid.New(), Channel: "phone", Direction: "inbound",
			Summary: "Nul\x00Byte", By: "bob", OccurredAt: time.Now().UTC()}},
		IDs: []uuid.UUID{uuid.New()},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Store.Append(ctx, domain.StreamName(poisoned), eventstore.Any, data)
	if err != nil {
		t.Fatal(err)
	}
	list := func(id uuid.UUID) (items []json.RawMessage, stale *bool) {
		t.Helper()
		resp := m.Get(t, "writer", fmt.Sprintf("/v1/customers/%s/contacts?min_position=%d", id, res.Position))
		if resp.Status != http.StatusOK {
			t.Fatalf("contacts of %s: %d %s", id, resp.Status, resp.Body)
		}
		var page struct {
			Items []json.RawMessage `json:"items"`
			Stale *bool             `json:"stale"`
		}
		resp.JSON(t, &page)
		return page.Items, page.Stale
	}
	if items, stale := list(poisoned); len(items) != 1 || stale == nil || !*stale {
		t.Fatalf("the parked customer's contacts: %d items, stale %v; want its one good contact, stale: true", len(items), stale)
	}
	if items, stale := list(healthy); len(items) != 1 || stale != nil {
		t.Fatalf("a healthy customer's contacts: %d items, stale %v; want one contact and no marker", len(items), stale)
	}
}
