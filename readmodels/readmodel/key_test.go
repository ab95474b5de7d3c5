package readmodel_test

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

func TestCursorRoundTrip(t *testing.T) {
	key := readmodel.Key{At: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), ID: uuid.New()}
	for _, kind := range []readmodel.CursorKind{"", "c", "k"} {
		got, err := kind.Decode(kind.Encode(key))
		if err != nil || !got.At.Equal(key.At) || got.ID != key.ID {
			t.Errorf("kind %q: %+v, %v; want %+v", kind, got, err, key)
		}
	}
	// Microseconds are the cursor's precision (PostgreSQL's).
	got, err := readmodel.CursorKind("c").Decode(readmodel.CursorKind("c").Encode(readmodel.Key{At: key.At.Add(999), ID: key.ID}))
	if err != nil || !got.At.Equal(key.At) {
		t.Errorf("nanoseconds: %v, %v", got.At, err)
	}
}

// TestCursorRefusals: a cursor of one list is not one of another, and
// nothing a client makes up passes.
func TestCursorRefusals(t *testing.T) {
	key := readmodel.Key{At: time.Unix(1760000000, 0), ID: uuid.New()}
	contacts, complaints, directory := readmodel.CursorKind("c"), readmodel.CursorKind("k"), readmodel.CursorKind("")
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for kind, cursors := range map[readmodel.CursorKind][]string{
		contacts: {complaints.Encode(key), directory.Encode(key), "", "nope", "%%%", contacts.Encode(key) + "x",
			b64("c.1." + key.ID.String() + ".x"), b64("c.x." + key.ID.String()), b64("c.1." + key.ID.String()[1:]),
			b64("c.1." + uuid.New().URN()), b64("c.-9223372036854775808." + key.ID.String()), b64("c.253402300800000000." + key.ID.String())},
		directory: {contacts.Encode(key), "MTIzNDU", b64("-9223372036854775808.00000000-0000-0000-0000-000000000000"), b64("1.2.3")},
	} {
		for _, c := range cursors {
			if _, err := kind.Decode(c); !errors.Is(err, readmodel.ErrBadCursor) || kind.Valid(c) {
				t.Errorf("kind %q took %q (%v)", kind, c, err)
			}
		}
	}
	// The customer directory's cursors of before kinds still read.
	if _, err := directory.Decode(b64("1760000000000000.00000000-0000-0000-0000-000000000000")); err != nil {
		t.Errorf("a directory cursor: %v", err)
	}
}

func TestPageOf(t *testing.T) {
	kind := readmodel.CursorKind("s")
	items := []int{1, 2, 3}
	key := func(i int) readmodel.Key { return readmodel.Key{At: time.Unix(int64(i), 0), ID: uuid.Nil} }
	if p := readmodel.PageOf(items, 3, kind, key); len(p.Items) != 3 || p.NextCursor != "" {
		t.Errorf("last page: %+v", p)
	}
	p := readmodel.PageOf(items, 2, kind, key)
	next, err := kind.Decode(p.NextCursor)
	if len(p.Items) != 2 || err != nil || !next.At.Equal(time.Unix(2, 0)) {
		t.Errorf("a page with more: %+v (%v, %v)", p, next, err)
	}
}

// FuzzCursor: whatever decodes re-encodes to a cursor that decodes to the
// same key.
func FuzzCursor(f *testing.F) {
	f.Add("c", readmodel.CursorKind("c").Encode(readmodel.Key{At: time.Unix(0, 0), ID: uuid.Nil}))
	f.Add("", "MTc2MDAwMDAwMDAwMDAwMC4wMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA")
	f.Add("k", "garbage")
	f.Fuzz(func(t *testing.T, kind, cursor string) {
		k := readmodel.CursorKind(kind)
		key, err := k.Decode(cursor)
		if err != nil {
			if !errors.Is(err, readmodel.ErrBadCursor) {
				t.Fatalf("%q: %v", cursor, err)
			}
			return
		}
		again, err := k.Decode(k.Encode(key))
		if err != nil || !again.At.Equal(key.At) || again.ID != key.ID || key.At.Year() < 1 || key.At.Year() > 9999 {
			t.Fatalf("%q: %+v does not round-trip: %+v, %v", cursor, key, again, err)
		}
	})
}
