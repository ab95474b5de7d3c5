package readmodel

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Key is where a list sorted by (At, ID) continues: the sort time and the
// id of the last item of the previous page.
type Key struct {
	At time.Time
	ID uuid.UUID
}

// ErrBadCursor is returned for a cursor its list did not make.
var ErrBadCursor = errors.New("readmodel: not a cursor of this list")

// CursorKind names a list: its cursors are refused by the other lists, so
// that a client cannot page one list with another's cursor.
//
// A cursor is the unpadded base64url of "<kind>.<unix micros>.<id>". The
// customer directory's kind is "" (no prefix, "<unix micros>.<id>"): its
// cursors predate kinds, and clients may hold them.
type CursorKind string

// Encode makes the cursor that continues the list after key.
func (k CursorKind) Encode(key Key) string {
	s := strconv.FormatInt(key.At.UnixMicro(), 10) + "." + key.ID.String()
	if k != "" {
		s = string(k) + "." + s
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// Decode reads a cursor of the list: ErrBadCursor for anything Encode did
// not make for this kind, or whose time PostgreSQL cannot take (outside
// the years 1–9999).
func (k CursorKind) Decode(cursor string) (Key, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return Key{}, ErrBadCursor
	}
	rest := string(raw)
	if k != "" {
		kind, after, ok := strings.Cut(rest, ".")
		if !ok || kind != string(k) {
			return Key{}, ErrBadCursor
		}
		rest = after
	}
	micros, idText, ok := strings.Cut(rest, ".")
	if !ok {
		return Key{}, ErrBadCursor
	}
	us, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return Key{}, ErrBadCursor
	}
	id, err := uuid.Parse(idText)
	if err != nil || id.String() != idText {
		return Key{}, ErrBadCursor
	}
	at := time.UnixMicro(us).UTC()
	if at.Year() < 1 || at.Year() > 9999 {
		return Key{}, ErrBadCursor
	}
	return Key{At: at, ID: id}, nil
}

// Valid reports whether cursor is one of this list's.
func (k CursorKind) Valid(cursor string) bool {
	_, err := k.Decode(cursor)
	return err == nil
}

// Continue checks a list's request and says where its page starts: nil
// for cursor "" (the first page), else after the cursor's key. The limit
// must be positive; a cursor of another kind is ErrBadCursor.
func (k CursorKind) Continue(cursor string, limit int) (*Key, error) {
	if limit < 1 {
		return nil, fmt.Errorf("readmodel: limit %d is not positive", limit)
	}
	if cursor == "" {
		return nil, nil
	}
	key, err := k.Decode(cursor)
	if err != nil {
		return nil, err
	}
	return &key, nil
}

// Page is one page of a list.
type Page[T any] struct {
	Items []T
	// NextCursor continues the list; empty on the last page.
	NextCursor string
}

// PageOf makes the page of a list read with limit+1 rows: at most limit
// items, and the cursor after the last one when the read found more.
func PageOf[T any](items []T, limit int, kind CursorKind, key func(T) Key) Page[T] {
	if len(items) <= limit {
		return Page[T]{Items: items}
	}
	items = items[:limit]
	return Page[T]{Items: items, NextCursor: kind.Encode(key(items[limit-1]))}
}
