package http_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/audit"
)

func TestAuditorEndpoints(t *testing.T) {
	t.Parallel()
	apptest.ForEachStore(t, testAuditorEndpoints)
}

func testAuditorEndpoints(t *testing.T, m *apptest.Main) {
	id := register(t, m, "audited@example.com")
	base := "/v1/customers/" + id
	for i := range 3 {
		requireStatus(t, m.Post(t, base+"/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "call " + string(rune('a'+i)), "by": "bob"}), http.StatusCreated)
	}
	time.Sleep(10 * time.Millisecond)
	beforeChurn := time.Now().UTC()
	time.Sleep(10 * time.Millisecond)
	requireStatus(t, m.Post(t, base+"/churn", map[string]any{"reason": "price"}), http.StatusOK)

	// Events, paged JSON.
	page := requireStatus(t, m.Get(t, "auditor", base+"/events?limit=2"), http.StatusOK)
	items := page["items"].([]any)
	if len(items) != 2 || page["next_revision"].(float64) != 2 {
		t.Fatalf("first page: %v", page)
	}
	first := items[0].(map[string]any)
	if first["type"] != "rapport.CustomerRegistered.v1" || first["actor"] != "writer" || first["data"].(map[string]any)["name"] != "Ada Lovelace" {
		t.Fatalf("first event: %v", first)
	}
	rest := requireStatus(t, m.Get(t, "auditor", base+"/events?from_revision=2"), http.StatusOK)
	if len(rest["items"].([]any)) != 3 || rest["next_revision"] != nil {
		t.Fatalf("second page: %v", rest)
	}

	// Events, NDJSON stream.
	resp := m.Do(t, apptest.Request{Method: http.MethodGet, Path: base + "/events", Key: m.Keys["auditor"], Header: map[string]string{"Accept": "application/x-ndjson"}})
	if resp.Status != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("ndjson: %d %v", resp.Status, resp.Header)
	}
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(resp.Body))
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e["revision"].(float64) != float64(lines) {
			t.Fatalf("line %d: %s %v", lines, sc.Bytes(), err)
		}
		lines++
	}
	if lines != 5 {
		t.Fatalf("ndjson streamed %d events, want 5", lines)
	}

	// State as of before the churn, and now.
	then := requireStatus(t, m.Get(t, "auditor", base+"/state?as_of="+url.QueryEscape(beforeChurn.Format(time.RFC3339Nano))), http.StatusOK)
	if then["customer"].(map[string]any)["status"] != "active" || then["revision"].(float64) != 3 {
		t.Fatalf("state before churn: %v", then)
	}
	now := requireStatus(t, m.Get(t, "auditor", base+"/state"), http.StatusOK)
	if now["customer"].(map[string]any)["status"] != "churned" || now["revision"].(float64) != 4 {
		t.Fatalf("state now: %v", now)
	}
	requireProblem(t, m.Get(t, "auditor", base+"/state?as_of=yesterday"), 422, "invalid_fields", "as_of")
	requireProblem(t, m.Get(t, "auditor", base+"/state?as_of=2000-01-01T00:00:00Z"), 404, "customer_not_found", "")

	// Verification.
	v := requireStatus(t, m.Get(t, "auditor", base+"/verification"), http.StatusOK)
	if v["intact"] != true || v["events"].(float64) != 5 || v["broken_at"] != nil {
		t.Fatalf("verification: %v", v)
	}
	requireProblem(t, m.Get(t, "auditor", "/v1/customers/7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f/verification"), 404, "customer_not_found", "")

	// Erasure: personal fields null in the events and the state; the
	// chain still verifies.
	requireStatus(t, m.Do(t, apptest.Request{Method: http.MethodPost, Path: base + "/erasure", Key: m.Keys["admin"], Body: map[string]any{"reason": "request 9"}}), http.StatusOK)
	erased := requireStatus(t, m.Get(t, "auditor", base+"/events?limit=1"), http.StatusOK)
	e0 := erased["items"].([]any)[0].(map[string]any)
	if e0["erased"] != true || e0["data"].(map[string]any)["name"] != nil || e0["data"].(map[string]any)["segment"] != "enterprise" {
		t.Fatalf("event after erasure: %v", e0)
	}
	st := requireStatus(t, m.Get(t, "auditor", base+"/state"), http.StatusOK)["customer"].(map[string]any)
	if st["status"] != "erased" || st["name"] != nil || st["email"] != nil || st["segment"] != "enterprise" {
		t.Fatalf("state after erasure: %v", st)
	}
	if v := requireStatus(t, m.Get(t, "auditor", base+"/verification"), http.StatusOK); v["intact"] != true {
		t.Fatalf("verification after erasure: %v", v)
	}
	// The email is free again.
	requireStatus(t, m.Post(t, "/v1/customers", map[string]any{"name": "New", "email": "audited@example.com"}), http.StatusCreated)
}

// TestStateAsOfBeforeErasureShowsNull: once a customer was erased, its
// state as of an earlier instant cannot show the personal fields either,
// and shows them as null (unreadable), not as "" (empty).
func TestStateAsOfBeforeErasureShowsNull(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	id := register(t, m, "erased-later@example.com")
	base := "/v1/customers/" + id
	time.Sleep(10 * time.Millisecond)
	before := time.Now().UTC()
	time.Sleep(10 * time.Millisecond)
	requireStatus(t, m.Do(t, apptest.Request{Method: http.MethodPost, Path: base + "/erasure", Key: m.Keys["admin"], Body: map[string]any{"reason": "request 9"}}), http.StatusOK)
	st := requireStatus(t, m.Get(t, "auditor", base+"/state?as_of="+url.QueryEscape(before.Format(time.RFC3339Nano))), http.StatusOK)["customer"].(map[string]any)
	if st["status"] != "active" {
		t.Fatalf("as of before the erasure: %v", st)
	}
	for _, field := range []string{"name", "email", "phone", "company", "tags"} {
		if v, ok := st[field]; !ok || v != nil {
			t.Errorf("%s = %#v, want null", field, v)
		}
	}
	if st["segment"] != "enterprise" {
		t.Errorf("segment = %v", st["segment"])
	}
}

// TestVerificationAgainstAnAnchorEntry checks one customer against its
// entry of an anchor: intact while the stream still reaches the anchored
// head, broken once its tail is cut, and 422 for an entry that is not
// this customer's or not signed by this service.
func TestVerificationAgainstAnAnchorEntry(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	id := register(t, m, "anchored@example.com")
	other := register(t, m, "not-anchored@example.com")
	base := "/v1/customers/" + id
	for i := range 2 {
		requireStatus(t, m.Post(t, base+"/contacts", map[string]any{"channel": "phone", "direction": "inbound", "summary": "call " + string(rune('a'+i)), "by": "bob"}), http.StatusCreated)
	}
	auditor := audit.New(m.Store, m.Codec)
	var anchor audit.Anchor
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if anchor, _, err = auditor.Anchor(context.Background(), time.Now(), nil); err != nil {
			t.Fatal(err)
		}
		if len(anchor.Streams) == 2 && (anchor.Streams[0].Revision == 2 || anchor.Streams[1].Revision == 2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the anchor never saw the events: %+v", anchor)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var entry, otherEntry string
	for _, h := range anchor.Streams {
		if h.CustomerID.String() == id {
			entry = h.Entry
		} else {
			otherEntry = h.Entry
		}
	}
	v := requireStatus(t, m.Get(t, "auditor", base+"/verification?anchor="+url.QueryEscape(entry)), http.StatusOK)
	if v["intact"] != true || v["anchor"].(map[string]any)["revision"].(float64) != 2 {
		t.Fatalf("anchored verification: %v", v)
	}
	if _, err := m.Pool.Exec(context.Background(), `DELETE FROM eventstore.events WHERE stream = $1 AND revision = 2`, "customer-"+id); err != nil {
		t.Fatal(err)
	}
	if v := requireStatus(t, m.Get(t, "auditor", base+"/verification"), http.StatusOK); v["intact"] != true {
		t.Fatalf("without the anchor a cut tail is invisible: %v", v)
	}
	v = requireStatus(t, m.Get(t, "auditor", base+"/verification?anchor="+url.QueryEscape(entry)), http.StatusOK)
	if v["intact"] != false || !strings.Contains(v["broken_at"].(map[string]any)["reason"].(string), "truncated") {
		t.Fatalf("cut tail against the anchor: %v", v)
	}
	requireProblem(t, m.Get(t, "auditor", base+"/verification?anchor="+url.QueryEscape(otherEntry)), 422, "invalid_fields", "anchor")
	requireProblem(t, m.Get(t, "auditor", base+"/verification?anchor="+url.QueryEscape(strings.Replace(entry, ".2.", ".1.", 1))), 422, "invalid_fields", "anchor")
	requireProblem(t, m.Get(t, "auditor", base+"/verification?anchor=nonsense"), 422, "invalid_fields", "anchor")
	_ = other
}
