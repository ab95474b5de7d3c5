package domain

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEveryEventTypeRoundTrips(t *testing.T) {
	registry := NewRegistry()
	var seen []string
	for _, e := range sampleEvents() {
		t.Run(typeName(e), func(t *testing.T) {
			data, err := Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			decoded, err := registry.Decode(e.EventType(), data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(decoded, e) {
				t.Fatalf("round trip differs:\ngot  %#v\nwant %#v", decoded, e)
			}
		})
		seen = append(seen, e.EventType())
	}
	slices.Sort(seen)
	if !slices.Equal(seen, registry.Types()) {
		t.Fatalf("the samples must cover every registered type:\nsamples  %v\nregistry %v", seen, registry.Types())
	}
}

func TestEventTypeNamesAreStableAndVersioned(t *testing.T) {
	name := regexp.MustCompile(`^rapport\.[A-Z][A-Za-z]+\.v1$`)
	for _, e := range sampleEvents() {
		if !name.MatchString(e.EventType()) {
			t.Errorf("%s: type name %q", typeName(e), e.EventType())
		}
		if want := "rapport." + typeName(e) + ".v1"; e.EventType() != want {
			t.Errorf("%s: type name %q, want %q", typeName(e), e.EventType(), want)
		}
	}
}

// Payloads use snake_case keys and always carry occurred_at, because read
// models and auditors read them directly.
func TestPayloadsAreSnakeCaseWithOccurredAt(t *testing.T) {
	key := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	for _, e := range sampleEvents() {
		data, _ := Marshal(e)
		var fields map[string]any
		if err := json.Unmarshal(data, &fields); err != nil {
			t.Fatal(err)
		}
		if _, ok := fields["occurred_at"]; !ok {
			t.Errorf("%s has no occurred_at", e.EventType())
		}
		for k := range fields {
			if !key.MatchString(k) {
				t.Errorf("%s: key %q is not snake_case", e.EventType(), k)
			}
		}
		if !e.BusinessTime().Equal(reflect.ValueOf(e).FieldByName("OccurredAt").Interface().(time.Time)) {
			t.Errorf("%s: BusinessTime is not OccurredAt", e.EventType())
		}
	}
}

func TestProfileUpdateEncodesOnlyChangedFields(t *testing.T) {
	data, _ := Marshal(CustomerProfileUpdated{Phone: ptr(""), Tags: &[]string{}, OccurredAt: now})
	got := string(data)
	if strings.Contains(got, `"name"`) || strings.Contains(got, `"email"`) || !strings.Contains(got, `"phone":""`) || !strings.Contains(got, `"tags":[]`) {
		t.Fatalf("payload %s", got)
	}
}

func TestDecodeUnknownType(t *testing.T) {
	_, err := NewRegistry().Decode("rapport.Nothing.v1", []byte(`{}`))
	var unknown *UnknownEventTypeError
	if !errors.As(err, &unknown) || unknown.Type != "rapport.Nothing.v1" {
		t.Fatalf("want *UnknownEventTypeError, got %v", err)
	}
	if !strings.HasPrefix(err.Error(), "domain: ") {
		t.Fatalf("message %q", err)
	}
}

func TestDecodeMalformedPayload(t *testing.T) {
	if _, err := NewRegistry().Decode(TypeCustomerChurned, []byte(`{"reason":`)); err == nil {
		t.Fatal("want an error")
	}
}

func TestDecodeIgnoresUnknownFields(t *testing.T) {
	e, err := NewRegistry().Decode(TypeCustomerChurned, []byte(`{"reason":"budget","occurred_at":"2025-03-01T09:00:00Z","added_later":1}`))
	if err != nil || !reflect.DeepEqual(e, CustomerChurned{Reason: "budget", OccurredAt: t0}) {
		t.Fatalf("%#v %v", e, err)
	}
}

func TestMarshal(t *testing.T) {
	if _, err := Marshal(nil); err == nil {
		t.Fatal("marshalling nil must fail")
	}
	e := CustomerChurned{Reason: "budget", OccurredAt: t0}
	byValue, _ := Marshal(e)
	byPointer, _ := Marshal(&e)
	if string(byValue) != string(byPointer) {
		t.Fatalf("%s != %s", byValue, byPointer)
	}
}

// churnedV0 is the payload an imagined first release stored: the reason was
// called "why" and the time "at".
const churnedV0 = "rapport.CustomerChurned.v0"

func upcastChurnedV0(data []byte) (string, []byte, error) {
	var v0 struct {
		Why string    `json:"why"`
		At  time.Time `json:"at"`
	}
	if err := json.Unmarshal(data, &v0); err != nil {
		return "", nil, err
	}
	v1, err := json.Marshal(map[string]any{"reason": v0.Why, "occurred_at": v0.At})
	return TypeCustomerChurned, v1, err
}

func TestUpcasterTurnsAnOldPayloadIntoTheCurrentEvent(t *testing.T) {
	registry := NewRegistry()
	if err := registry.RegisterUpcaster(churnedV0, upcastChurnedV0); err != nil {
		t.Fatal(err)
	}
	e, err := registry.Decode(churnedV0, []byte(`{"why":"budget","at":"2025-03-01T09:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e, CustomerChurned{Reason: "budget", OccurredAt: t0}) {
		t.Fatalf("upcast to %#v", e)
	}
	// Current payloads are untouched.
	e, err = registry.Decode(TypeCustomerChurned, []byte(`{"reason":"x","occurred_at":"2025-03-01T09:00:00Z"}`))
	if err != nil || e.(CustomerChurned).Reason != "x" {
		t.Fatalf("%#v %v", e, err)
	}
}

func TestUpcastersChain(t *testing.T) {
	registry := NewRegistry()
	// v-1 only renamed the field "cause" to "why".
	err := registry.RegisterUpcaster("rapport.CustomerChurned.v-1", func(data []byte) (string, []byte, error) {
		return churnedV0, []byte(strings.Replace(string(data), `"cause"`, `"why"`, 1)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := registry.RegisterUpcaster(churnedV0, upcastChurnedV0); err != nil {
		t.Fatal(err)
	}
	e, err := registry.Decode("rapport.CustomerChurned.v-1", []byte(`{"cause":"budget","at":"2025-03-01T09:00:00Z"}`))
	if err != nil || !reflect.DeepEqual(e, CustomerChurned{Reason: "budget", OccurredAt: t0}) {
		t.Fatalf("%#v %v", e, err)
	}
}

func TestUpcasterErrors(t *testing.T) {
	identity := func(name string) Upcaster {
		return func(data []byte) (string, []byte, error) { return name, data, nil }
	}

	t.Run("a current type cannot be upcast", func(t *testing.T) {
		if err := NewRegistry().RegisterUpcaster(TypeCustomerChurned, identity("x")); err == nil {
			t.Fatal("want an error")
		}
	})

	t.Run("one upcaster per type", func(t *testing.T) {
		registry := NewRegistry()
		if err := registry.RegisterUpcaster(churnedV0, upcastChurnedV0); err != nil {
			t.Fatal(err)
		}
		if err := registry.RegisterUpcaster(churnedV0, upcastChurnedV0); err == nil {
			t.Fatal("want an error")
		}
	})

	t.Run("nil upcaster", func(t *testing.T) {
		if err := NewRegistry().RegisterUpcaster(churnedV0, nil); err == nil {
			t.Fatal("want an error")
		}
	})

	t.Run("a loop is detected", func(t *testing.T) {
		registry := NewRegistry()
		_ = registry.RegisterUpcaster("a", identity("b"))
		_ = registry.RegisterUpcaster("b", identity("a"))
		if _, err := registry.Decode("a", []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "loop") {
			t.Fatalf("want a loop error, got %v", err)
		}
	})

	t.Run("an upcaster's failure is reported", func(t *testing.T) {
		registry := NewRegistry()
		_ = registry.RegisterUpcaster(churnedV0, upcastChurnedV0)
		if _, err := registry.Decode(churnedV0, []byte(`not json`)); err == nil {
			t.Fatal("want an error")
		}
	})

	t.Run("a chain ending in an unknown type", func(t *testing.T) {
		registry := NewRegistry()
		_ = registry.RegisterUpcaster(churnedV0, identity("rapport.Gone.v9"))
		var unknown *UnknownEventTypeError
		if _, err := registry.Decode(churnedV0, []byte(`{}`)); !errors.As(err, &unknown) || unknown.Type != "rapport.Gone.v9" {
			t.Fatalf("want unknown rapport.Gone.v9, got %v", err)
		}
	})
}
