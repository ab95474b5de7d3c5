// Package openapitest checks HTTP traffic against Rapport's OpenAPI
// document (infra/http/openapi.json). Its Transport wraps the
// http.RoundTripper of an end-to-end test's client: every request and
// answer that goes through it is validated against the document, and each
// deviation fails the test with t.Errorf.
//
// Requests are validated only when the answer is a success (status < 400),
// because tests send malformed requests on purpose; answers are always
// validated: the status must be declared for the operation, declared
// headers must be present and well formed, and the body must match the
// schema of its declared media type (error answers are problem+json).
// Bodies of text/plain and text/csv answers are not validated; NDJSON
// answers are validated line by line against the media type's
// x-item-schema.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// DocumentPath is where the document lives, relative to the module root.
const DocumentPath = "infra/http/openapi.json"

// ReadDocument reads the document from the module that contains the
// working directory (go test runs in the package's directory, so it walks
// up to go.mod).
func ReadDocument() ([]byte, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return os.ReadFile(filepath.Join(dir, filepath.FromSlash(DocumentPath)))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, errors.New("openapitest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Load parses an OpenAPI 3.1 document, resolves its references and
// validates it; the error lists every problem found.
func Load(data []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("openapitest: load: %w", err)
	}
	if !doc.IsOpenAPI31OrLater() || doc.IsOpenAPI32OrLater() {
		return nil, fmt.Errorf("openapitest: the document is OpenAPI %q, not 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableMultiError(), openapi3.EnableSchemaFormatValidation(),
		openapi3.EnableSchemaDefaultsValidation(), openapi3.EnableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("openapitest: the document is invalid: %w", err)
	}
	return doc, nil
}

// Validator checks exchanges against one document.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
	// problem is components/schemas/Problem, for the answers of paths the
	// document does not have (404 route_not_found, 405).
	problem *openapi3.Schema
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// New makes a Validator of a document (Load's rules apply).
func New(data []byte) (*Validator, error) {
	doc, err := Load(data)
	if err != nil {
		return nil, err
	}
	// Formats kin-openapi does not check by itself.
	doc.SetStringFormatValidator("uuid", openapi3.NewCallbackValidator(func(s string) error {
		if !uuidPattern.MatchString(s) {
			return errors.New("not a UUID")
		}
		return nil
	}))
	doc.SetStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail))
	// The document declares no servers: match requests to any host.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapitest: router: %w", err)
	}
	problem := doc.Components.Schemas["Problem"]
	if problem == nil || problem.Value == nil {
		return nil, errors.New("openapitest: the document has no components/schemas/Problem")
	}
	return &Validator{doc: doc, router: router, problem: problem.Value}, nil
}

var defaultValidator = sync.OnceValues(func() (*Validator, error) {
	data, err := ReadDocument()
	if err != nil {
		return nil, err
	}
	return New(data)
})

// Default is the Validator of the module's document, loaded once.
func Default() (*Validator, error) { return defaultValidator() }

// Document is the loaded document.
func (v *Validator) Document() *openapi3.T { return v.doc }

// Exchange is one request and its answer, with both bodies read.
type Exchange struct {
	Request     *http.Request
	RequestBody []byte
	Status      int
	Header      http.Header
	Body        []byte
}

// Result is what Check found.
type Result struct {
	// OperationID is the operation the request matched; empty when the
	// document has no operation for its path and method.
	OperationID string
	// Violations are the deviations from the document, each with the
	// library's message.
	Violations []error
}

// Check validates an exchange: the request when the answer is a success,
// the answer always.
func (v *Validator) Check(ctx context.Context, ex Exchange) Result {
	var res Result
	fail := func(err error) { res.Violations = append(res.Violations, err) }
	failAll := func(prefix string, err error) {
		for _, e := range flatten(err) {
			fail(fmt.Errorf("%s: %w", prefix, e))
		}
	}
	route, pathParams, err := v.router.FindRoute(requestWithBody(ex.Request, ex.RequestBody))
	if err != nil {
		// Not in the document: only the server's fallback answers may
		// come back, and they are problems.
		if ex.Status != http.StatusNotFound && ex.Status != http.StatusMethodNotAllowed {
			fail(fmt.Errorf("no operation in the document for this request (%v), yet the answer is not 404 or 405", err))
			return res
		}
		v.checkProblem(ex, fail)
		return res
	}
	res.OperationID = route.Operation.OperationID
	opts := &openapi3filter.Options{
		MultiError:            true,
		IncludeResponseStatus: true,
		// A body sent to an operation that takes none is a deviation.
		RejectWhenRequestBodyNotSpecified: true,
		// Validate the request as sent.
		SkipSettingDefaults:     true,
		AuthenticationFunc:      bearerAuthentication,
		SchemaValidationOptions: v.doc.GetSchemaValidationOptions(),
	}
	reqInput := &openapi3filter.RequestValidationInput{
		Request:    requestWithBody(ex.Request, ex.RequestBody),
		PathParams: pathParams,
		Route:      route,
		Options:    opts,
	}
	if ex.Status < 400 {
		if err := openapi3filter.ValidateRequest(ctx, reqInput); err != nil {
			failAll("request", err)
		}
		reqInput.Request = requestWithBody(ex.Request, ex.RequestBody)
	}

	response := route.Operation.Responses.Status(ex.Status)
	if response == nil {
		response = route.Operation.Responses.Default()
	}
	respOpts := *opts
	var ndjsonItem *openapi3.SchemaRef
	if response != nil && response.Value != nil {
		content := response.Value.Content
		ct := ex.Header.Get("Content-Type")
		media, _, _ := mime.ParseMediaType(ct)
		switch {
		case len(content) == 0 && len(ex.Body) > 0:
			fail(fmt.Errorf("response: the document declares no body for status %d, yet there is one (Content-Type %q)", ex.Status, ct))
		case len(content) > 0 && content.Get(ct) == nil:
			fail(fmt.Errorf("response: Content-Type %q is not declared for status %d (declared: %s)", ct, ex.Status, strings.Join(slices.Sorted(maps.Keys(content)), ", ")))
			respOpts.ExcludeResponseBody = true
		case media == "text/plain" || media == "text/csv":
			respOpts.ExcludeResponseBody = true
		case media == "application/x-ndjson":
			respOpts.ExcludeResponseBody = true
			ndjsonItem = itemSchema(v.doc, content.Get(ct))
			if ndjsonItem == nil {
				fail(errors.New("response: application/x-ndjson declared without x-item-schema"))
			}
		}
	}
	respInput := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqInput,
		Status:                 ex.Status,
		Header:                 ex.Header,
		Options:                &respOpts,
	}
	respInput.SetBodyBytes(ex.Body)
	if err := openapi3filter.ValidateResponse(ctx, respInput); err != nil {
		failAll("response", err)
	}
	if ndjsonItem != nil {
		v.checkNDJSON(ex.Body, ndjsonItem.Value, fail)
	}
	return res
}

// checkProblem validates an answer of the server's fallback against the
// Problem schema.
func (v *Validator) checkProblem(ex Exchange, fail func(error)) {
	if media, _, _ := mime.ParseMediaType(ex.Header.Get("Content-Type")); media != "application/problem+json" {
		fail(fmt.Errorf("response: Content-Type %q, want application/problem+json", ex.Header.Get("Content-Type")))
		return
	}
	var body any
	if err := json.Unmarshal(ex.Body, &body); err != nil {
		fail(fmt.Errorf("response: body is not JSON: %w", err))
		return
	}
	if err := v.doc.ValidateSchemaJSON(v.problem, body, openapi3.VisitAsResponse(), openapi3.MultiErrors(), openapi3.EnableJSONSchema2020()); err != nil {
		fail(fmt.Errorf("response: body doesn't match schema Problem: %w", err))
	}
}

// checkNDJSON validates each line of a newline-delimited JSON answer,
// reporting the first few bad lines and how many there were.
func (v *Validator) checkNDJSON(body []byte, item *openapi3.Schema, fail func(error)) {
	const shown = 3
	bad := 0
	for i, line := range bytes.Split(body, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var value any
		err := json.Unmarshal(line, &value)
		if err != nil {
			err = fmt.Errorf("response: NDJSON line %d is not JSON: %w", i+1, err)
		} else if err = v.doc.ValidateSchemaJSON(item, value, openapi3.VisitAsResponse(), openapi3.MultiErrors(), openapi3.EnableJSONSchema2020()); err != nil {
			err = fmt.Errorf("response: NDJSON line %d doesn't match x-item-schema: %w", i+1, err)
		}
		if err != nil {
			if bad++; bad <= shown {
				fail(err)
			}
		}
	}
	if bad > shown {
		fail(fmt.Errorf("response: %d more NDJSON lines are bad", bad-shown))
	}
}

// itemSchema resolves a media type's x-item-schema ({"$ref":
// "#/components/schemas/Name"}).
func itemSchema(doc *openapi3.T, mt *openapi3.MediaType) *openapi3.SchemaRef {
	if mt == nil {
		return nil
	}
	ext, ok := mt.Extensions["x-item-schema"].(map[string]any)
	if !ok {
		return nil
	}
	ref, _ := ext["$ref"].(string)
	name, ok := strings.CutPrefix(ref, "#/components/schemas/")
	if !ok {
		return nil
	}
	s := doc.Components.Schemas[name]
	if s == nil || s.Value == nil {
		return nil
	}
	return s
}

// bearerAuthentication checks that a request that needs the bearer scheme
// sends a key. Whether the key is good is the server's business.
func bearerAuthentication(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	scheme := in.SecurityScheme
	if scheme == nil || scheme.Type != "http" || !strings.EqualFold(scheme.Scheme, "bearer") {
		return in.NewError(fmt.Errorf("unsupported security scheme %q", in.SecuritySchemeName))
	}
	authScheme, key, ok := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	ok = ok && strings.EqualFold(authScheme, "Bearer") // RFC 9110 §11.1: the scheme is case-insensitive
	if !ok || strings.TrimSpace(key) == "" {
		return in.NewError(errors.New("no Authorization: Bearer <key> header"))
	}
	return nil
}

// flatten splits the library's multi-error (what it returns with
// Options.MultiError: one error per violation, each with its context) into
// its errors.
func flatten(err error) []error {
	if me, ok := err.(openapi3.MultiError); ok && len(me) > 0 {
		var out []error
		for _, e := range me {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func requestWithBody(r *http.Request, body []byte) *http.Request {
	c := r.Clone(r.Context())
	if body == nil {
		c.Body = http.NoBody
		return c
	}
	c.Body = io.NopCloser(bytes.NewReader(body))
	c.ContentLength = int64(len(body))
	return c
}

// Transport is a validating http.RoundTripper.
type Transport struct {
	tb   testing.TB
	v    *Validator
	base http.RoundTripper

	mu   sync.Mutex
	seen map[string]map[int]int
}

// Wrap returns base wrapped in a validating transport that checks every
// exchange against the module's document and reports each violation with
// tb.Errorf. A nil base is http.DefaultTransport.
func Wrap(tb testing.TB, base http.RoundTripper) *Transport {
	tb.Helper()
	v, err := Default()
	if err != nil {
		tb.Fatalf("openapitest: %v", err)
	}
	return WrapWith(tb, v, base)
}

// WrapWith is Wrap with a given Validator.
func WrapWith(tb testing.TB, v *Validator, base http.RoundTripper) *Transport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &Transport{tb: tb, v: v, base: base, seen: map[string]map[int]int{}}
}

// RoundTrip implements http.RoundTripper. It reads both bodies whole; the
// caller gets the answer's body from memory.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		reqBody, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req = requestWithBody(req, reqBody)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	res := t.v.Check(req.Context(), Exchange{Request: req, RequestBody: reqBody, Status: resp.StatusCode, Header: resp.Header, Body: body})
	t.record(res.OperationID, resp.StatusCode)
	for _, violation := range res.Violations {
		op := res.OperationID
		if op == "" {
			op = "no operation"
		}
		t.tb.Errorf("openapi: %s %s (%s) answered %d: %v\nrequest body: %s\nresponse body: %s",
			req.Method, req.URL.RequestURI(), op, resp.StatusCode, violation, clip(reqBody), clip(body))
	}
	return resp, nil
}

func (t *Transport) record(operationID string, status int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[operationID] == nil {
		t.seen[operationID] = map[int]int{}
	}
	t.seen[operationID][status]++
}

// Seen reports, for each operation id ("" for requests the document has
// no operation for), how many answers of each status went through.
func (t *Transport) Seen() map[string]map[int]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]map[int]int, len(t.seen))
	for op, statuses := range t.seen {
		out[op] = make(map[int]int, len(statuses))
		for s, n := range statuses {
			out[op][s] = n
		}
	}
	return out
}

func clip(b []byte) string {
	const max = 600
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

var _ http.RoundTripper = (*Transport)(nil)
