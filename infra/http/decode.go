package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/rapport-crm/rapport/domain"
)

// decodeBody reads a JSON request body strictly into dst and returns the
// raw bytes (for the request fingerprint). Each way a body can be wrong
// has its own answer: not JSON as content type 415, too large 413,
// malformed or unknown field or trailing data 400, a value of the wrong
// type 422 naming the field.
func decodeBody(r *http.Request, maxBytes int64, dst any) ([]byte, error) {
	if err := requireJSON(r); err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		return nil, newProblem(http.StatusBadRequest, "unreadable_body", "the body could not be read")
	}
	return raw, decodeJSON(raw, dst)
}

// decodeJSON is decodeBody's parsing, separate so that fuzz tests reach it
// directly.
func decodeJSON(raw []byte, dst any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return newProblem(http.StatusBadRequest, "malformed_json", "the body is empty; a JSON object is expected")
	}
	if err := strictJSON(raw, dst); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return newProblem(http.StatusBadRequest, "trailing_data", "the body holds more than one JSON value")
	}
	return nil
}

func jsonProblem(err error) error {
	var (
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return newProblem(http.StatusBadRequest, "malformed_json", "the body must be a JSON object")
		}
		return invalidFields(FieldError{Field: field, Message: fmt.Sprintf("must be %s, not %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)})
	case errors.As(err, &syntaxErr):
		return newProblem(http.StatusBadRequest, "malformed_json", fmt.Sprintf("the body is not valid JSON (at byte %d)", syntaxErr.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newProblem(http.StatusBadRequest, "malformed_json", "the body ends in the middle of a JSON value")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return newProblem(http.StatusBadRequest, "unknown_field", fmt.Sprintf("the body has a field %q that this endpoint does not take", name))
	}
	return newProblem(http.StatusBadRequest, "malformed_json", "the body is not valid JSON: "+err.Error())
}

func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int", "int64", "int32", "uint64", "float64":
		return "a whole number"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return "a " + kind
}

// requireJSON answers 415 unless the body is declared as JSON.
func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	media, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || (media != "application/json" && !strings.HasSuffix(media, "+json")) {
		return newProblem(http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be JSON: send Content-Type: application/json")
	}
	return nil
}

// fieldParser collects field errors while converting request values, so
// that one 422 names every bad field at once.
type fieldParser struct {
	errs []FieldError
}

func (p *fieldParser) fail(field, format string, args ...any) {
	p.errs = append(p.errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p *fieldParser) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return invalidFields(p.errs...)
}

// time parses an optional RFC 3339 time, which must lie within the years
// the product accepts (domain.TimeInRange) once converted to UTC.
func (p *fieldParser) time(field string, value *string) *time.Time {
	if value == nil {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, *value)
	if err != nil {
		p.fail(field, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		return nil
	}
	if !domain.TimeInRange(t) {
		p.fail(field, "must lie between 1900-01-01 and 9999-12-31 UTC")
		return nil
	}
	return &t
}

// requiredTime parses a required RFC 3339 time.
func (p *fieldParser) requiredTime(field string, value *string) time.Time {
	if value == nil {
		p.fail(field, "is required")
		return time.Time{}
	}
	if t := p.time(field, value); t != nil {
		return *t
	}
	return time.Time{}
}

// uuid parses an optional id.
func (p *fieldParser) uuid(field string, value *string) *uuid.UUID {
	if value == nil {
		return nil
	}
	id, err := uuid.Parse(*value)
	if err != nil {
		p.fail(field, "must be a UUID")
		return nil
	}
	return &id
}

// int parses an optional whole-number query parameter within bounds.
func (p *fieldParser) int(field, value string, min, max, fallback int) int {
	if value == "" {
		return fallback
	}
	n, err := strconv.Atoi(value)
	if err != nil || n < min || n > max {
		p.fail(field, "must be a whole number from %d to %d", min, max)
		return fallback
	}
	return n
}

// pathID parses a UUID path segment; an id that cannot exist is a 404
// with the given reason.
func pathID(r *http.Request, name, notFoundReason string) (uuid.UUID, error) {
	id, err := uuid.Parse(mux.Vars(r)[name])
	if err != nil {
		return uuid.Nil, newProblem(http.StatusNotFound, notFoundReason, fmt.Sprintf("%q is not a valid id", mux.Vars(r)[name]))
	}
	return id, nil
}
