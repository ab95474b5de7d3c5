package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"unicode/utf8"
)

// TestStrictJSON: what encoding/json lets through and PRODUCT.md's input
// rules refuse, each a 400; and what stays welcome.
func TestStrictJSON(t *testing.T) {
	type body struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
		Meta *struct {
			A int `json:"a"`
		} `json:"meta"`
	}
	refused := map[string]string{
		"invalid UTF-8 in a value":  "{\"name\":\"a\xffb\"}",
		"invalid UTF-8 in a key":    "{\"\xff\":1}",
		"truncated UTF-8":           "{\"name\":\"\xe2\x82\"}",
		"lone high surrogate":       `{"name":"\ud800"}`,
		"high surrogate then text":  `{"name":"\ud800x"}`,
		"two high surrogates":       `{"name":"\ud800\ud800"}`,
		"lone low surrogate":        `{"name":"\udc00"}`,
		"surrogate in a key":        `{"\ud800":1}`,
		"duplicate key":             `{"name":"a","name":"b"}`,
		"duplicate nested key":      `{"meta":{"a":1,"a":2}}`,
		"duplicate key in an array": `{"name":"x","tags":[],"meta":{"a":1},"tags":[]}`,
		"upper-case field":          `{"NAME":"a"}`,
		"mixed-case field":          `{"Name":"a"}`,
	}
	for name, raw := range refused {
		t.Run(name, func(t *testing.T) {
			var dst body
			err := decodeJSON([]byte(raw), &dst)
			var p *Problem
			if !errors.As(err, &p) || p.Status != 400 {
				t.Fatalf("decodeJSON(%q) = %v, want a 400 problem", raw, err)
			}
		})
	}
	for _, raw := range []string{
		`{"name":"\ud83d\ude00","tags":["a","a"]}`, `{"name":"\u00e9\\\"\ud800\udc00"}`, `{"meta":{"a":1},"name":"x"}`,
		`{"name":"\\ud800"}`, // an escaped backslash, not an escape
	} {
		var dst body
		if err := decodeJSON([]byte(raw), &dst); err != nil {
			t.Errorf("decodeJSON(%q) = %v, want accepted", raw, err)
		}
	}
}

// FuzzDecodeJSON: decodeJSON never panics, refuses only with a problem of
// 400 or 422, and what it accepts is valid UTF-8 JSON without repeated
// keys that encoding/json reads the same way.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		`{"name":"a","tags":["x"]}`, `{"name":"a","name":"b"}`, `{"NAME":"a"}`, `{"name":"\ud800"}`,
		"{\"name\":\"\xff\"}", `{"name":"\ud83d\ude00"}`, `{"tags":[{"a":1,"a":1}]}`, `{} {}`, `[]`, ``, `{"name":"\\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	type body struct {
		Name string `json:"name"`
		Tags []any  `json:"tags"`
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var dst body
		err := decodeJSON(raw, &dst)
		if err != nil {
			var p *Problem
			if !errors.As(err, &p) || (p.Status != 400 && p.Status != 422) {
				t.Fatalf("decodeJSON(%q) = %v, want a 400 or 422 problem", raw, err)
			}
			return
		}
		if !utf8.Valid(raw) || !json.Valid(bytes.TrimSpace(raw)) {
			t.Fatalf("decodeJSON accepted %q, which is not valid UTF-8 JSON", raw)
		}
		if loneSurrogate(raw) >= 0 {
			t.Fatalf("decodeJSON accepted %q with a lone surrogate", raw)
		}
		var again body
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&again); err != nil {
			t.Fatalf("decodeJSON accepted %q, encoding/json refuses it: %v", raw, err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			t.Fatalf("decodeJSON accepted %q with trailing data", raw)
		}
	})
}
