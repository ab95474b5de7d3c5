package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"
)

// strictJSON checks what encoding/json lets through (PRODUCT.md, input
// rules): the body must be UTF-8 with no lone surrogate escape (the
// decoder would put U+FFFD in their place), no object may repeat a key
// (the decoder keeps the last), and the top-level field names must match
// dst's exactly (the decoder matches them case-insensitively). Each is a
// 400. Malformed JSON is left to the decoder, which says where.
func strictJSON(raw []byte, dst any) error {
	if !utf8.Valid(raw) {
		return newProblem(http.StatusBadRequest, "malformed_json", "the body is not valid UTF-8")
	}
	if at := loneSurrogate(raw); at >= 0 {
		return newProblem(http.StatusBadRequest, "malformed_json", fmt.Sprintf("the body holds a lone surrogate escape (at byte %d)", at))
	}
	top, err := objectKeys(raw)
	if err != nil {
		return err
	}
	if known, ok := jsonFieldNames(dst); ok {
		for _, key := range top {
			if !known[key] {
				return newProblem(http.StatusBadRequest, "unknown_field", fmt.Sprintf("the body has a field %q that this endpoint does not take", key))
			}
		}
	}
	return nil
}

// loneSurrogate returns the offset of the first \u escape in a string that
// is a UTF-16 surrogate without its other half, or -1.
func loneSurrogate(raw []byte) int {
	inString := false
	pendingHigh := -1 // offset of a high surrogate waiting for its low half
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			if pendingHigh >= 0 {
				return pendingHigh
			}
			inString = false
		case '\\':
			if i+1 >= len(raw) {
				return -1 // truncated: the decoder says so
			}
			if raw[i+1] != 'u' {
				if pendingHigh >= 0 {
					return pendingHigh
				}
				i++
				continue
			}
			r, ok := hex4(raw[i+2:])
			if !ok {
				return -1 // malformed: the decoder says so
			}
			switch {
			case r >= 0xD800 && r < 0xDC00:
				if pendingHigh >= 0 {
					return pendingHigh
				}
				pendingHigh = i
			case r >= 0xDC00 && r < 0xE000:
				if pendingHigh < 0 {
					return i
				}
				pendingHigh = -1
			default:
				if pendingHigh >= 0 {
					return pendingHigh
				}
			}
			i += 5
		default:
			if pendingHigh >= 0 {
				return pendingHigh
			}
		}
	}
	return -1
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// objectKeys walks the body's tokens, refuses a key repeated within one
// object at any depth, and returns the keys of the top-level object (nil
// when the body is not an object).
func objectKeys(raw []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	// One frame per open object or array: an object's keys seen so far,
	// and whether its next string token is a key.
	type frame struct {
		keys      map[string]bool
		expectKey bool
	}
	var (
		stack []*frame
		top   []string
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return top, nil
		}
		if err != nil {
			return top, nil // malformed: the decoder says where
		}
		var cur *frame
		if len(stack) > 0 {
			cur = stack[len(stack)-1]
		}
		if cur != nil && cur.keys != nil && cur.expectKey {
			if key, ok := tok.(string); ok {
				if cur.keys[key] {
					return nil, newProblem(http.StatusBadRequest, "duplicate_key", fmt.Sprintf("the body repeats the key %q in one object", key))
				}
				cur.keys[key] = true
				if len(stack) == 1 {
					top = append(top, key)
				}
				cur.expectKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, expectKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 {
			return top, nil // the first value ended; trailing data is the decoder's
		}
		// A value ended: in an object the next token is a key.
		if len(stack) > 0 && stack[len(stack)-1].keys != nil {
			stack[len(stack)-1].expectKey = true
		}
	}
}

// jsonFieldNames returns the JSON names of the fields of the struct dst
// points to.
func jsonFieldNames(dst any) (map[string]bool, bool) {
	t := reflect.TypeOf(dst)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	t = t.Elem()
	names := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		names[name] = true
	}
	return names, true
}
