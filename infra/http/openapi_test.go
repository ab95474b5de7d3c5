package http_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/infra/http/openapitest"
)

func openAPIValidator(t *testing.T) *openapitest.Validator {
	t.Helper()
	v, err := openapitest.Default()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// openAPIOperations lists the document's operations as "METHOD /path".
func openAPIOperations(doc *openapi3.T) map[string]*openapi3.Operation {
	ops := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[method+" "+path] = op
		}
	}
	return ops
}

var (
	openAPISnakeCase = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	// openAPIMuxVariable is a gorilla/mux variable, with its optional
	// pattern: {id} or {id:[0-9]+}.
	openAPIMuxVariable = regexp.MustCompile(`\{([^{}:]+)(:[^{}]*)?\}`)
)

// TestOpenAPIDocument loads the document, validates it as OpenAPI 3.1 with
// kin-openapi, and checks the conventions the library does not: every
// operation is described, says its roles, and answers errors as problems;
// bodies are closed and snake_case.
func TestOpenAPIDocument(t *testing.T) {
	data, err := openapitest.ReadDocument()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapitest.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	if doc.Components.SecuritySchemes["bearer"] == nil || doc.Components.SecuritySchemes["bearer"].Value.Scheme != "bearer" {
		t.Error("no bearer security scheme")
	}
	for key, op := range openAPIOperations(doc) {
		public := op.Security != nil && len(*op.Security) == 0
		if op.OperationID == "" || op.Summary == "" || op.Description == "" {
			t.Errorf("%s: needs an operationId, a summary and a description", key)
		}
		if roles, ok := op.Extensions["x-roles"].([]any); !public && !ok {
			t.Errorf("%s: needs x-roles", key)
		} else {
			for _, r := range roles {
				if !slices.Contains(rhttp.Roles(), rhttp.Role(fmt.Sprint(r))) {
					t.Errorf("%s: unknown role %v in x-roles", key, r)
				}
			}
		}
		for _, status := range []string{"401", "429"} {
			if !public && op.Responses.Value(status) == nil {
				t.Errorf("%s: needs a key but does not declare %s", key, status)
			}
		}
		for status, resp := range op.Responses.Map() {
			if resp.Value.Headers["X-Request-ID"] == nil {
				t.Errorf("%s %s: does not declare X-Request-ID", key, status)
			}
			if status < "400" || key == "GET /readyz" {
				continue
			}
			mt := resp.Value.Content.Get("application/problem+json")
			if len(resp.Value.Content) != 1 || mt == nil || mt.Schema.Ref != "#/components/schemas/Problem" {
				t.Errorf("%s %s: an error answer must be application/problem+json Problem", key, status)
			}
		}
		if rb := op.RequestBody; rb != nil {
			schema := rb.Value.Content.Get("application/json")
			if schema == nil || schema.Schema.Value.AdditionalProperties.Has == nil || *schema.Schema.Value.AdditionalProperties.Has {
				t.Errorf("%s: the request body must be a closed JSON object (additionalProperties: false)", key)
			}
		}
	}
	for name, schema := range doc.Components.Schemas {
		for prop := range schema.Value.Properties {
			if !openAPISnakeCase.MatchString(prop) {
				t.Errorf("schema %s: property %q is not snake_case", name, prop)
			}
		}
	}
}

// TestOpenAPICoversRouteTable checks that every route the server has is in
// the document with its method, operationId and roles, and lists the
// documented operations that are not implemented yet.
func TestOpenAPICoversRouteTable(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	doc := openAPIValidator(t).Document()
	documented := openAPIOperations(doc)
	implemented := map[string]bool{}
	for _, route := range m.HTTP.Routes() {
		path := openAPIMuxVariable.ReplaceAllString(route.Path, "{$1}")
		key := route.Method + " " + path
		implemented[key] = true
		op := documented[key]
		if op == nil {
			t.Errorf("route %s (%s) is not in the document", key, route.Name)
			continue
		}
		if op.OperationID != route.Name {
			t.Errorf("%s: operationId %q, the route table says %q", key, op.OperationID, route.Name)
		}
		public := op.Security != nil && len(*op.Security) == 0
		if public != route.Public {
			t.Errorf("%s: public in the document %v, in the route table %v", key, public, route.Public)
		}
		if route.Public {
			continue
		}
		var docRoles []string
		if roles, ok := op.Extensions["x-roles"].([]any); ok {
			for _, r := range roles {
				docRoles = append(docRoles, fmt.Sprint(r))
			}
		}
		var routeRoles []string
		for _, r := range route.Roles {
			routeRoles = append(routeRoles, string(r))
		}
		slices.Sort(docRoles)
		slices.Sort(routeRoles)
		if !slices.Equal(docRoles, routeRoles) {
			t.Errorf("%s: x-roles %v, the route table says %v", key, docRoles, routeRoles)
		}
	}
	var missing []string
	for key, op := range documented {
		if !implemented[key] {
			missing = append(missing, fmt.Sprintf("%s (%s)", key, op.OperationID))
		}
	}
	sort.Strings(missing)
	t.Logf("%d documented operations, %d implemented; not implemented yet:\n  %s",
		len(documented), len(implemented), strings.Join(missing, "\n  "))
}

// TestOpenAPITraffic drives every implemented route, and the answers of
// each error status, through a client whose transport validates every
// exchange against the document: any deviation fails the test.
func TestOpenAPITraffic(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	transport := openapitest.Wrap(t, http.DefaultTransport)
	m.Client.Transport = transport
	writer, admin := m.Keys["writer"], m.Keys["admin"]
	do := func(method, path, key string, body any, header map[string]string, want int) *apptest.Response {
		t.Helper()
		resp := m.Do(t, apptest.Request{Method: method, Path: path, Key: key, Body: body, Header: header})
		if resp.Status != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.Status, resp.Body, want)
		}
		return resp
	}
	field := func(resp *apptest.Response, name string) string {
		t.Helper()
		v, ok := resp.Map(t)[name].(string)
		if !ok {
			t.Fatalf("no %s in %s", name, resp.Body)
		}
		return v
	}

	// Ops.
	do(http.MethodGet, "/healthz", "", nil, nil, http.StatusOK)
	do(http.MethodGet, "/readyz", "", nil, nil, http.StatusOK)
	do(http.MethodGet, "/metrics", admin, nil, nil, http.StatusOK)
	served := do(http.MethodGet, "/openapi.json", writer, nil, nil, http.StatusOK)
	if file, err := openapitest.ReadDocument(); err != nil || !bytes.Equal(served.Body, file) {
		t.Errorf("GET /openapi.json does not serve %s (%v)", openapitest.DocumentPath, err)
	}

	// A stream parked on a failure that is then fixed, and its retry.
	parkFixAndRetry(t, m)
	// Complaint routing rules, and a complaint the policy routes.
	routingJourney(t, m)

	// Every command.
	now := time.Now().UTC()
	reg := do(http.MethodPost, "/v1/customers", writer, map[string]any{
		"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000", "company": "Analytical Engines",
		"segment": "enterprise", "tier": "A", "region": "emea", "industry": "computing", "tags": []string{"vip"},
	}, map[string]string{"X-Request-ID": "openapi-traffic-1", "X-Correlation-ID": "journey-1"}, http.StatusCreated)
	id := field(reg, "customer_id")
	base := "/v1/customers/" + id
	do(http.MethodPatch, base, writer, map[string]any{"company": "Babbage & Co", "tags": []string{}}, map[string]string{"If-Match": reg.Header.Get("ETag")}, http.StatusOK)
	do(http.MethodPut, base+"/classification", writer, map[string]any{"segment": "smb", "tier": "B"}, nil, http.StatusOK)
	do(http.MethodPut, base+"/team/account_manager", writer, map[string]any{"member": "carol"}, nil, http.StatusOK)
	contactID := field(do(http.MethodPost, base+"/contacts", writer, map[string]any{"channel": "phone", "direction": "inbound", "summary": "asked about invoices", "by": "bob", "occurred_at": now.Add(-time.Hour).Format(time.RFC3339Nano)}, nil, http.StatusCreated), "contact_id")
	followUpID := field(do(http.MethodPost, base+"/follow-ups", writer, map[string]any{"due_at": now.Add(48 * time.Hour).Format(time.RFC3339), "by": "bob", "note": "call back"}, nil, http.StatusCreated), "follow_up_id")
	complaint := do(http.MethodPost, base+"/complaints", writer, map[string]any{"category": "billing", "severity": "high", "description": "charged twice", "channel": "email"},
		map[string]string{"Idempotency-Key": "ticket-1"}, http.StatusCreated)
	// A retry answers the first answer.
	do(http.MethodPost, base+"/complaints", writer, map[string]any{"category": "billing", "severity": "high", "description": "charged twice", "channel": "email"},
		map[string]string{"Idempotency-Key": "ticket-1"}, http.StatusCreated)
	cbase := base + "/complaints/" + field(complaint, "complaint_id")
	do(http.MethodPost, cbase+"/assignment", writer, map[string]any{"assignee": "dave"}, nil, http.StatusOK)
	do(http.MethodPost, cbase+"/acknowledgement", writer, map[string]any{"by": "dave"}, nil, http.StatusOK)
	do(http.MethodPost, cbase+"/escalation", writer, map[string]any{"to": "billing-team", "reason": "needs a refund"}, nil, http.StatusOK)
	do(http.MethodPost, cbase+"/resolution", writer, map[string]any{"by": "erin", "resolution": "refunded"}, nil, http.StatusOK)
	do(http.MethodPost, cbase+"/reopening", writer, map[string]any{"reason": "refund never arrived"}, nil, http.StatusOK)
	surveyID := field(do(http.MethodPost, base+"/surveys", writer, map[string]any{"csat": 2, "nps": 3, "comment": "slow", "channel": "email", "answered_at": now.Add(-time.Minute).Format(time.RFC3339), "complaint_id": field(complaint, "complaint_id")}, nil, http.StatusCreated), "survey_id")
	do(http.MethodPost, base+"/surveys", writer, map[string]any{"nps": 10}, nil, http.StatusCreated)
	// churned_at may not precede the registration (now, on the server).
	do(http.MethodPost, base+"/churn", writer, map[string]any{"reason": "moved to a competitor", "churned_at": now.Add(-time.Minute).Format(time.RFC3339)}, nil, http.StatusUnprocessableEntity)
	do(http.MethodPost, base+"/churn", writer, map[string]any{"reason": "moved to a competitor", "churned_at": time.Now().UTC().Format(time.RFC3339Nano)}, nil, http.StatusOK)
	do(http.MethodPost, base+"/reactivation", writer, map[string]any{}, nil, http.StatusOK)
	do(http.MethodPost, base+"/churn", writer, map[string]any{"reason": "gone again"}, nil, http.StatusOK)
	do(http.MethodPost, base+"/reactivation", writer, map[string]any{"reason": "won back"}, nil, http.StatusOK)
	// A registration by phone only, retried with its key.
	byPhone := map[string]any{"name": "Bo", "phone": "+1 555 0100"}
	do(http.MethodPost, "/v1/customers", writer, byPhone, map[string]string{"Idempotency-Key": "signup-1"}, http.StatusCreated)
	do(http.MethodPost, "/v1/customers", writer, byPhone, map[string]string{"Idempotency-Key": "signup-1"}, http.StatusCreated)
	valueTraffic(t, base, writer, do)

	// Every query the server has, read back before and after the erasure.
	routes := map[string]bool{}
	for _, route := range m.HTTP.Routes() {
		routes[route.Name] = true
	}
	queries := openAPIQueries(m.Keys, base, field(complaint, "complaint_id"), contactID, surveyID, followUpID)
	readBack := func() {
		t.Helper()
		// The position of a fresh write, for min_position.
		var fresh struct{ Position uint64 }
		do(http.MethodPost, "/v1/customers", writer, map[string]any{"name": "Reader", "phone": "+1 555 0199"}, nil, http.StatusCreated).JSON(t, &fresh)
		position := fmt.Sprint(fresh.Position)
		for _, q := range queries {
			if !routes[q.route] {
				continue
			}
			path := strings.ReplaceAll(q.path, "{position}", position)
			do(http.MethodGet, path, q.key, nil, q.header, q.status)
		}
		if routes["listProjections"] && routes["rebuildProjection"] {
			list := do(http.MethodGet, "/v1/projections", admin, nil, nil, http.StatusOK).Map(t)
			items, _ := list["items"].([]any)
			if len(items) > 0 {
				name := fmt.Sprint(items[0].(map[string]any)["name"])
				do(http.MethodPost, "/v1/projections/"+name+"/rebuild", admin, nil, nil, http.StatusAccepted)
			}
		}
	}
	readBack()
	goalTraffic(t, m, do)

	// Each error status.
	contact := map[string]any{"channel": "phone", "direction": "inbound", "summary": "hi", "by": "bob"}
	// The transport is shared by concurrent requests.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if resp := m.Post(t, base+"/contacts", contact); resp.Status != http.StatusCreated {
				t.Errorf("concurrent contact: %d %s", resp.Status, resp.Body)
			}
		})
	}
	wg.Wait()
	unknown := "/v1/customers/7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f"
	do(http.MethodPost, base+"/contacts", writer, `{"channel":"phone","direction":"inbound","summary":"hi","by":"bob","mood":"happy"}`, nil, http.StatusBadRequest)
	do(http.MethodPost, base+"/contacts", writer, `{"channel":`, nil, http.StatusBadRequest)
	do(http.MethodPost, base+"/contacts", "", contact, nil, http.StatusUnauthorized)
	do(http.MethodPost, base+"/contacts", m.Keys["analyst"], contact, nil, http.StatusForbidden)
	do(http.MethodGet, "/metrics", writer, nil, nil, http.StatusForbidden)
	do(http.MethodPost, unknown+"/contacts", writer, contact, nil, http.StatusNotFound)
	do(http.MethodPost, "/v1/customers/nope/contacts", writer, contact, nil, http.StatusNotFound)
	do(http.MethodPost, base+"/complaints/7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f/resolution", writer, map[string]any{"by": "x", "resolution": "y"}, nil, http.StatusNotFound)
	do(http.MethodGet, "/v1/nothing", writer, nil, nil, http.StatusNotFound)
	do(http.MethodDelete, base, writer, nil, nil, http.StatusMethodNotAllowed)
	do(http.MethodPost, "/v1/customers", writer, map[string]any{"name": "Copy", "email": "ADA@example.com"}, nil, http.StatusConflict)
	do(http.MethodPost, base+"/reactivation", writer, map[string]any{}, nil, http.StatusConflict)
	do(http.MethodPost, base+"/contacts", writer, contact, map[string]string{"If-Match": `"1"`}, http.StatusPreconditionFailed)
	do(http.MethodPost, base+"/contacts", writer, `{"summary":"`+strings.Repeat("x", 1<<20)+`"}`, nil, http.StatusRequestEntityTooLarge)
	do(http.MethodPost, base+"/contacts", writer, "channel=phone", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType)
	do(http.MethodPost, base+"/contacts", writer, map[string]any{"channel": "phone", "direction": "inbound", "summary": "hi"}, nil, http.StatusUnprocessableEntity)
	do(http.MethodPost, base+"/contacts", writer, `{"channel":"phone","direction":"inbound","summary":42,"by":"bob"}`, nil, http.StatusUnprocessableEntity)
	do(http.MethodPut, base+"/team/ceo", writer, map[string]any{"member": "carol"}, nil, http.StatusUnprocessableEntity)
	do(http.MethodPost, base+"/complaints", writer, map[string]any{"category": "billing", "severity": "low", "description": "other"},
		map[string]string{"Idempotency-Key": "ticket-1"}, http.StatusUnprocessableEntity)
	do(http.MethodPost, base+"/erasure", admin, map[string]any{"reason": "GDPR request 42"}, nil, http.StatusOK)
	do(http.MethodPost, base+"/contacts", writer, contact, nil, http.StatusGone)
	readBack()

	// Webhooks: the whole admin API (a documentation-range target, which
	// no delivery reaches).
	hook := do(http.MethodPost, "/v1/webhooks", admin, map[string]any{"url": "http://203.0.113.10/hook", "event_types": []string{"complaint.filed.v1"}, "description": "traffic"}, nil, http.StatusCreated)
	hookPath := "/v1/webhooks/" + field(hook, "id")
	do(http.MethodPost, "/v1/webhooks", admin, map[string]any{"url": "http://127.0.0.1/hook"}, nil, http.StatusUnprocessableEntity)
	do(http.MethodGet, "/v1/webhooks", admin, nil, nil, http.StatusOK)
	do(http.MethodGet, hookPath, admin, nil, nil, http.StatusOK)
	do(http.MethodPost, hookPath+"/secret", admin, nil, nil, http.StatusOK)
	do(http.MethodPost, hookPath+"/disable", admin, nil, nil, http.StatusOK)
	do(http.MethodPost, hookPath+"/enable", admin, nil, nil, http.StatusOK)
	do(http.MethodPost, hookPath+"/replay", admin, map[string]any{"from_position": 0}, nil, http.StatusAccepted)
	do(http.MethodGet, hookPath+"/deliveries?limit=5", admin, nil, nil, http.StatusOK)
	do(http.MethodGet, hookPath+"/deliveries?state=lost", admin, nil, nil, http.StatusUnprocessableEntity)
	do(http.MethodDelete, hookPath, admin, nil, nil, http.StatusNoContent)
	do(http.MethodGet, hookPath, admin, nil, nil, http.StatusNotFound)

	// Rate limit: a service whose keys may send one request.
	limited := apptest.MustOpen(t, func(c *app.Config) { c.RateLimit, c.RateBurst = 0.01, 1 })
	limited.Client.Transport = transport
	limited.Do(t, apptest.Request{Method: http.MethodGet, Path: "/openapi.json", Key: limited.Keys["writer"]})
	if resp := limited.Do(t, apptest.Request{Method: http.MethodGet, Path: "/openapi.json", Key: limited.Keys["writer"]}); resp.Status != http.StatusTooManyRequests {
		t.Errorf("rate limit: %d, want 429", resp.Status)
	}

	// Every route went through the validator with a success.
	seen := transport.Seen()
	for _, route := range m.HTTP.Routes() {
		ok := false
		for status := range seen[route.Name] {
			ok = ok || status < 400
		}
		if !ok {
			t.Errorf("route %s was not exercised with a success (saw %v)", route.Name, seen[route.Name])
		}
	}
	statuses := map[int]bool{}
	for _, byStatus := range seen {
		for status := range byStatus {
			statuses[status] = true
		}
	}
	for _, status := range []int{200, 201, 400, 401, 403, 404, 405, 409, 410, 412, 413, 415, 422, 429} {
		if !statuses[status] {
			t.Errorf("no answer with status %d went through the validator", status)
		}
	}
	t.Logf("validated exchanges by operation and status: %v", seen)
}

// openAPIQuery is one read of TestOpenAPITraffic, sent when the server has
// its route.
type openAPIQuery struct {
	route  string
	path   string // {position} is replaced by a fresh write's position
	key    string
	header map[string]string
	status int
}

// openAPIQueries lists a read of every query of the document. A route
// added to the server is exercised here once it is listed.
func openAPIQueries(keys map[string]string, base, complaintID, contactID, surveyID, followUpID string) []openAPIQuery {
	writer, analyst, auditor, admin := keys["writer"], keys["analyst"], keys["auditor"], keys["admin"]
	wait := "?min_position={position}"
	ndjson := map[string]string{"Accept": "application/x-ndjson"}
	csv := map[string]string{"Accept": "text/csv"}
	past := url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	qs := []openAPIQuery{
		{"getCustomer", base + wait, writer, nil, http.StatusOK},
		{"listCustomers", "/v1/customers" + wait + "&limit=1", analyst, nil, http.StatusOK},
		{"listCustomers", "/v1/customers" + wait + "&segment=smb&tier=B&status=active&risk=high&q=ada&owner=carol", writer, nil, http.StatusOK},
		{"listContacts", base + "/contacts" + wait, writer, nil, http.StatusOK},
		{"getContact", base + "/contacts/" + contactID + wait, writer, nil, http.StatusOK},
		{"listComplaints", base + "/complaints" + wait, writer, nil, http.StatusOK},
		{"getComplaint", base + "/complaints/" + complaintID + wait, writer, nil, http.StatusOK},
		{"listSurveys", base + "/surveys" + wait, writer, nil, http.StatusOK},
		{"getSurvey", base + "/surveys/" + surveyID + wait, writer, nil, http.StatusOK},
		{"listFollowUps", base + "/follow-ups" + wait, writer, nil, http.StatusOK},
		{"getFollowUp", base + "/follow-ups/" + followUpID + wait, writer, nil, http.StatusOK},
		{"getHistory", base + "/history" + wait, auditor, nil, http.StatusOK},
		{"getEvents", base + "/events", auditor, nil, http.StatusOK},
		{"getEvents", base + "/events?from_revision=2&limit=3", auditor, nil, http.StatusOK},
		{"getEvents", base + "/events", auditor, ndjson, http.StatusOK},
		{"getStateAsOf", base + "/state", auditor, nil, http.StatusOK},
		{"getStateAsOf", base + "/state?as_of=" + past, auditor, nil, http.StatusNotFound},
		{"getStateAsOf", base + "/state?as_of=yesterday", auditor, nil, http.StatusUnprocessableEntity},
		{"verifyHistory", base + "/verification", auditor, nil, http.StatusOK},
		{"listProjections", "/v1/projections", admin, nil, http.StatusOK},
		{"listComplaintQueue", "/v1/work/complaints" + wait, writer, nil, http.StatusOK},
		{"listComplaintQueue", "/v1/work/complaints?sla=late", analyst, nil, http.StatusUnprocessableEntity},
		{"listFollowUpQueue", "/v1/work/follow-ups" + wait + "&state=upcoming", writer, nil, http.StatusOK},
		{"listContactDue", "/v1/work/contact-due" + wait, analyst, nil, http.StatusOK},
		{"listAtRisk", "/v1/work/at-risk" + wait + "&level=high", analyst, nil, http.StatusOK},
		{"getFeed", "/v1/feed" + wait, writer, nil, http.StatusOK},
		{"getFeed", "/v1/feed" + wait + "&types=complaint.filed.v1,survey.recorded.v1&limit=5", analyst, nil, http.StatusOK},
		{"getFeed", "/v1/feed" + wait, analyst, ndjson, http.StatusOK},
		{"getFeed", "/v1/feed?types=nonsense", writer, nil, http.StatusUnprocessableEntity},
	}
	qs = append(qs, valueQueries(keys, base, wait)...)
	for _, a := range []string{"getSatisfaction:satisfaction", "getChurn:churn", "getComplaintAnalytics:complaints", "getContactAnalytics:contacts", "getKPIs:kpis"} {
		route, path, _ := strings.Cut(a, ":")
		qs = append(qs,
			openAPIQuery{route, "/v1/analytics/" + path + wait, analyst, nil, http.StatusOK},
			openAPIQuery{route, "/v1/analytics/" + path + wait + "&group_by=segment", analyst, csv, http.StatusOK},
			openAPIQuery{route, "/v1/analytics/" + path + wait + "&group_by=month&from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z", analyst, nil, http.StatusOK},
			openAPIQuery{route, "/v1/analytics/" + path + "?group_by=colour", analyst, nil, http.StatusUnprocessableEntity},
		)
	}
	return qs
}

// TestOpenAPIValidatorCatchesViolations proves that the validator fails:
// hand-made answers that break the document are reported, and the same
// exchanges done right are not.
func TestOpenAPIValidatorCatchesViolations(t *testing.T) {
	v := openAPIValidator(t)
	const (
		customer  = "7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f"
		complaint = "0b4f6a2c-3d5e-4f70-8192-a3b4c5d6e7f8"
	)
	request := func(method, path, body string, header ...string) (*http.Request, []byte) {
		var raw []byte
		if body != "" {
			raw = []byte(body)
		}
		r := httptest.NewRequest(method, "http://rapport.test"+path, bytes.NewReader(raw))
		r.Header.Set("Authorization", "Bearer k")
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return r, raw
	}
	answer := func(contentType string, header ...string) http.Header {
		h := http.Header{"Content-Type": {contentType}, "X-Request-Id": {"r1"}, "X-Correlation-Id": {"r1"}}
		for i := 0; i+1 < len(header); i += 2 {
			h.Set(header[i], header[i+1])
		}
		return h
	}
	registered := answer("application/json", "ETag", `"0"`, "Location", "/v1/customers/"+customer)
	register := `{"name":"Ada","email":"ada@example.com"}`
	problem404 := `{"type":"tag:rapport-crm.github.io,2026:problem:customer_not_found","title":"Not Found","status":404,"reason":"customer_not_found","instance":"/v1/customers/x","request_id":"r1"}`
	erased := `{"id":"` + customer + `","name":null,"email":null,"phone":null,"company":null,"tags":null,"segment":"smb","tier":"B","region":null,"industry":null,
		"team":{"support":"dave"},"status":"erased","registered_at":"2026-01-02T15:04:05Z","last_contact_at":null,"open_complaints":0,
		"last_csat":2,"last_nps":null,"risk":null,"revision":7,"position":99,"due_for_contact":false,"contact_due_at":null,"over_contacted":false}`
	event := `{"revision":0,"position":1,"event_id":"` + complaint + `","customer_id":"` + complaint + `","type":"rapport.CustomerRegistered.v1","schema_version":1,` +
		`"recorded_at":"2026-01-02T15:04:05.5Z","occurred_at":"2026-01-02T15:04:05Z","actor":"writer","correlation_id":"c","causation_id":"` + complaint + `",` +
		`"data":{"name":null},"erased":true,"prev_hash":"","hash":"ab"}`
	cases := []struct {
		name      string
		method    string
		path      string
		reqBody   string
		reqHeader []string
		status    int
		header    http.Header
		body      string
		violation string // "" when the exchange is right
	}{
		{"right registration", "POST", "/v1/customers", register, nil, 201, registered,
			`{"customer_id":"` + customer + `","revision":0,"position":12}`, ""},
		{"revision of the wrong type", "POST", "/v1/customers", register, nil, 201, registered,
			`{"customer_id":"` + customer + `","revision":"0","position":12}`, "revision"},
		{"undocumented field", "POST", "/v1/customers", register, nil, 201, registered,
			`{"customer_id":"` + customer + `","revision":0,"position":12,"extra":true}`, "extra"},
		{"id that is not a UUID", "POST", "/v1/customers", register, nil, 201, registered,
			`{"customer_id":"nope","revision":0,"position":12}`, "customer_id"},
		{"created id missing", "POST", "/v1/customers/" + customer + "/complaints", `{"category":"billing","severity":"high","description":"twice"}`, nil, 201,
			answer("application/json", "ETag", `"3"`, "Location", "/v1/customers/"+customer+"/complaints/"+complaint),
			`{"customer_id":"` + customer + `","revision":3,"position":12}`, "complaint_id"},
		{"Location missing", "POST", "/v1/customers", register, nil, 201, answer("application/json", "ETag", `"0"`),
			`{"customer_id":"` + customer + `","revision":0,"position":12}`, "Location"},
		{"ETag malformed", "PATCH", "/v1/customers/" + customer, `{"name":"Ada"}`, nil, 200, answer("application/json", "ETag", "3"),
			`{"customer_id":"` + customer + `","revision":3,"position":12}`, "ETag"},
		{"undeclared status", "POST", "/v1/customers", register, nil, http.StatusTeapot, answer("application/problem+json"),
			`{"type":"x:y","title":"t","status":418,"reason":"teapot"}`, "status"},
		{"error as plain JSON", "POST", "/v1/customers/" + customer + "/contacts", `{}`, nil, 404, answer("application/json"), problem404, "Content-Type"},
		{"problem without reason", "POST", "/v1/customers/" + customer + "/contacts", `{}`, nil, 404, answer("application/problem+json"),
			`{"type":"x:y","title":"Not Found","status":404}`, "reason"},
		{"right problem", "POST", "/v1/customers/" + customer + "/contacts", `{}`, nil, 404, answer("application/problem+json"), problem404, ""},
		{"429 without Retry-After", "POST", "/v1/customers", register, nil, 429, answer("application/problem+json"),
			`{"type":"x:y","title":"Too Many Requests","status":429,"reason":"rate_limited"}`, "Retry-After"},
		{"accepted request with an unknown field", "POST", "/v1/customers", `{"name":"Ada","email":"ada@example.com","mood":"happy"}`, nil, 201, registered,
			`{"customer_id":"` + customer + `","revision":0,"position":12}`, "mood"},
		{"accepted request without email or phone", "POST", "/v1/customers", `{"name":"Ada"}`, nil, 201, registered,
			`{"customer_id":"` + customer + `","revision":0,"position":12}`, "request"},
		{"rejected request is not validated", "POST", "/v1/customers", `{"name":"Ada","mood":"happy"}`, nil, 400, answer("application/problem+json"),
			`{"type":"x:y","title":"Bad Request","status":400,"reason":"unknown_field"}`, ""},
		{"accepted request with a malformed Idempotency-Key", "POST", "/v1/customers", register, []string{"Idempotency-Key", "two words"}, 201, registered,
			`{"customer_id":"` + customer + `","revision":0,"position":12}`, "Idempotency-Key"},
		{"success without a key", "POST", "/v1/customers", register, []string{"Authorization", ""}, 201, registered,
			`{"customer_id":"` + customer + `","revision":0,"position":12}`, "security"},
		{"unknown route answered 200", "GET", "/v1/nothing", "", nil, 200, answer("application/json"), `{}`, "no operation"},
		{"unknown route answered with a problem", "GET", "/v1/nothing", "", nil, 404, answer("application/problem+json"),
			`{"type":"x:y","title":"Not Found","status":404,"reason":"route_not_found"}`, ""},
		{"erased customer", "GET", "/v1/customers/" + customer, "", nil, 200, answer("application/json"), erased, ""},
		{"erased customer with a name", "GET", "/v1/customers/" + customer, "", nil, 200, answer("application/json"),
			strings.Replace(erased, `"name":null`, `"name":42`, 1), "name"},
		{"risk level unknown", "GET", "/v1/customers/" + customer, "", nil, 200, answer("application/json"),
			strings.Replace(erased, `"risk":null`, `"risk":{"score":40,"level":"severe","factors":[]}`, 1), "level"},
		{"min_position of the wrong type on success", "GET", "/v1/customers/" + customer + "?min_position=soon", "", nil, 200, answer("application/json"), erased, "min_position"},
		{"events as NDJSON", "GET", "/v1/customers/" + customer + "/events", "", nil, 200, answer("application/x-ndjson"), event + "\n" + event + "\n", ""},
		{"events as NDJSON with a bad line", "GET", "/v1/customers/" + customer + "/events", "", nil, 200, answer("application/x-ndjson"),
			event + "\n" + strings.Replace(event, `"revision":0`, `"revision":-1`, 1) + "\n", "line 2"},
		{"analytics as CSV", "GET", "/v1/analytics/kpis?group_by=segment", "", nil, 200, answer("text/csv"), "key,csat_pct\nsmb,50\n", ""},
		{"analytics as XML", "GET", "/v1/analytics/kpis", "", nil, 200, answer("application/xml"), "<kpis/>", "Content-Type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, raw := request(c.method, c.path, c.reqBody, c.reqHeader...)
			res := v.Check(context.Background(), openapitest.Exchange{Request: req, RequestBody: raw, Status: c.status, Header: c.header, Body: []byte(c.body)})
			var msgs []string
			for _, e := range res.Violations {
				msgs = append(msgs, e.Error())
			}
			all := strings.Join(msgs, "\n")
			switch {
			case c.violation == "" && len(msgs) > 0:
				t.Errorf("a right exchange was reported:\n%s", all)
			case c.violation != "" && len(msgs) == 0:
				t.Errorf("not reported (want a violation about %q)", c.violation)
			case c.violation != "" && !strings.Contains(all, c.violation):
				t.Errorf("reported, but not about %q:\n%s", c.violation, all)
			default:
				t.Logf("%s", all)
			}
		})
	}

	// Through the transport: a deviation becomes t.Errorf naming the
	// method, path and status.
	rec := &openAPIRecordingTB{TB: t}
	bad := openapitest.WrapWith(rec, v, openAPIRoundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 201, Header: registered.Clone(), Request: r,
			Body: io.NopCloser(strings.NewReader(`{"customer_id":"` + customer + `","revision":"zero","position":12}`))}, nil
	}))
	client := &http.Client{Transport: bad}
	req, err := http.NewRequest(http.MethodPost, "http://rapport.test/v1/customers", strings.NewReader(register))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer k")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"zero"`) {
		t.Errorf("the caller did not get the answer's body: %s", body)
	}
	if errs := rec.errors(); len(errs) == 0 || !strings.Contains(errs[0], "POST /v1/customers (registerCustomer) answered 201") || !strings.Contains(errs[0], "revision") {
		t.Errorf("the transport reported %q", errs)
	}
}

// openAPIRecordingTB records Errorf instead of failing.
type openAPIRecordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *openAPIRecordingTB) Helper() {}

func (r *openAPIRecordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *openAPIRecordingTB) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

type openAPIRoundTripFunc func(*http.Request) (*http.Response, error)

func (f openAPIRoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
