package integration

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
)

// TestEveryDomainEventIsMapped fails, naming the type, when the domain's
// registry knows an event type the table does not map: a new event must
// decide what of it is public before it can ship.
func TestEveryDomainEventIsMapped(t *testing.T) {
	m := NewMapper()
	registry := domain.NewRegistry()
	for _, typ := range published(registry) {
		if _, ok := m.PublicType(typ); !ok {
			t.Errorf("domain event %s has no integration mapping: add an entry(...) line for it to table() in domain/integration/mapping.go (and its data schema to infra/http/openapi.json)", typ)
		}
	}
	known := map[string]bool{}
	for _, typ := range published(registry) {
		known[typ] = true
	}
	public := map[string]string{}
	for _, typ := range m.DomainTypes() {
		if !known[typ] {
			t.Errorf("the table maps %s, which is no current domain event type", typ)
		}
		p, _ := m.PublicType(typ)
		if other, dup := public[p]; dup {
			t.Errorf("%s and %s both map to %s", other, typ, p)
		}
		public[p] = typ
	}
}

// TestEveryDomainEventMapsToItsEnvelope maps a sample of each event and
// checks the envelope and that the data is a JSON object.
func TestEveryDomainEventMapsToItsEnvelope(t *testing.T) {
	m := NewMapper()
	for _, typ := range m.DomainTypes() {
		e, _ := sample(t, typ, func(string) string { return "plain" }, func(string) string { return "secret" })
		src := Source{EventID: uuid.New(), CustomerID: uuid.New(), Revision: 3, Position: 1 << 20, RecordedAt: time.Now(), Event: e}
		got, err := m.Map(src)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		want, _ := m.PublicType(typ)
		customer, revision := src.CustomerID, uint64(3)
		if r, ok := e.(domain.ReminderEvent); ok {
			// A reminder is not in the customer's stream: it names its
			// customer and the revision it was judged on itself.
			customer, revision = r.ReminderCustomer(), r.JudgedAtRevision()
			if !strings.HasPrefix(got.Type, ReminderPrefix) || customer == src.CustomerID || revision == 3 {
				t.Errorf("%s: type %s, customer %s, revision %d", typ, got.Type, customer, revision)
			}
		}
		if got.ID != src.EventID || got.Type != want || got.CustomerID != customer || got.Revision != revision || got.Position != 1<<20 {
			t.Errorf("%s: envelope %+v", typ, got)
		}
		var data map[string]any
		if err := json.Unmarshal(got.Data, &data); err != nil {
			t.Errorf("%s: data is not an object: %s", typ, got.Data)
		}
		// A pointer to the event maps the same.
		ptr := reflect.New(reflect.TypeOf(e))
		ptr.Elem().Set(reflect.ValueOf(e))
		src.Event = ptr.Interface().(domain.Event)
		again, err := m.Map(src)
		if err != nil || string(again.Data) != string(got.Data) {
			t.Errorf("%s: pointer maps to %s, %v; value to %s", typ, again.Data, err, got.Data)
		}
	}
	if _, err := m.Map(Source{}); err == nil {
		t.Error("mapping no event succeeded")
	}
}

// TestNoPersonalFieldEverAppears fills every field of every domain event,
// marks the fields the domain declares personal (PersonalFields) with
// unique values, and requires that none of them appears anywhere in the
// integration event: in any string, any key, the envelope included.
func TestNoPersonalFieldEverAppears(t *testing.T) {
	m := NewMapper()
	for _, typ := range published(domain.NewRegistry()) {
		if _, ok := m.PublicType(typ); !ok {
			continue // TestEveryDomainEventIsMapped names it
		}
		n := 0
		e, personal := sample(t, typ, func(path string) string { return "plain:" + path }, func(string) string {
			n++
			return fmt.Sprintf("personal-%d-%s", n, uuid.NewString())
		})
		if len(personal) == 0 && hasPersonal(e) {
			t.Fatalf("%s: the sample has no personal values", typ)
		}
		for _, leak := range leaks(t, m, e, personal) {
			t.Errorf("%s: %s", typ, leak)
		}
	}
}

// FuzzNoPersonalFieldEverAppears does the same with arbitrary text in the
// personal and the other fields (a mapping could copy a personal field
// only when it looks a certain way).
func FuzzNoPersonalFieldEverAppears(f *testing.F) {
	f.Add("plain", "secret", uint8(0))
	f.Add("", "a", uint8(3))
	f.Add("§", "ü\u2028\"<", uint8(200))
	m := NewMapper()
	types := m.DomainTypes()
	f.Fuzz(func(t *testing.T, plain, secret string, which uint8) {
		typ := types[int(which)%len(types)]
		if strings.Contains(plain, personalMark) {
			t.Skip()
		}
		n := 0
		e, personal := sample(t, typ, func(string) string { return plain }, func(string) string {
			n++
			return fmt.Sprintf("%s%d:%s", personalMark, n, secret)
		})
		for _, leak := range leaks(t, m, e, personal) {
			t.Errorf("%s: %s", typ, leak)
		}
	})
}

// personalMark starts every personal value of the fuzz test, so that a
// short fuzzed value cannot match by chance.
const personalMark = "§personal§"

// TestTheCheckCatchesALeak plants mappings that copy personal data — a
// field as it is, a field embedded in a longer value, and a field as a
// key — and requires the check to report each, so that the two tests above
// are seen able to fail.
func TestTheCheckCatchesALeak(t *testing.T) {
	type leakyContact struct {
		ContactID uuid.UUID `json:"contact_id"`
		Summary   string    `json:"summary"`
	}
	type leakyComplaint struct {
		Title string `json:"title"`
	}
	type leakyProfile struct {
		Changed map[string]bool `json:"changed"`
	}
	plants := []mapping{
		entry(TypeContactLogged, func(e domain.ContactLogged) leakyContact {
			return leakyContact{ContactID: e.ContactID, Summary: e.Summary}
		}),
		entry(TypeComplaintFiled, func(e domain.ComplaintFiled) leakyComplaint {
			return leakyComplaint{Title: e.Category + ": " + e.Description}
		}),
		entry(TypeCustomerProfileUpdated, func(e domain.CustomerProfileUpdated) leakyProfile {
			changed := map[string]bool{}
			if e.Email != nil {
				changed[*e.Email] = true
			}
			return leakyProfile{Changed: changed}
		}),
	}
	for _, plant := range plants {
		m := NewMapper()
		m.byDomain[plant.domainType] = plant
		n := 0
		e, personal := sample(t, plant.domainType, func(path string) string { return "plain:" + path }, func(string) string {
			n++
			return fmt.Sprintf("personal-%d-%s", n, uuid.NewString())
		})
		if got := leaks(t, m, e, personal); len(got) == 0 {
			t.Errorf("the leak planted in %s went unnoticed", plant.domainType)
		}
	}
}

// published lists the domain event types that leave as integration
// events: the customer streams' and the reminders'.
func published(r *domain.Registry) []string {
	return append(r.Types(), r.ReminderTypes()...)
}

func hasPersonal(e domain.Event) bool {
	ptr := reflect.New(reflect.TypeOf(e))
	ptr.Elem().Set(reflect.ValueOf(e))
	p, ok := ptr.Interface().(domain.PersonalData)
	return ok && len(p.PersonalFields()) > 0
}

// leaks maps e and reports every personal value found in the JSON of the
// integration event, in a string value (whole or part) or an object key.
func leaks(t *testing.T, m *Mapper, e domain.Event, personal []string) []string {
	t.Helper()
	ev, err := m.Map(Source{EventID: uuid.New(), CustomerID: uuid.New(), Revision: 1, Position: 1, RecordedAt: time.Now(), Event: e})
	if err != nil {
		t.Fatalf("map %s: %v", e.EventType(), err)
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var found []string
	var walk func(path string, v any)
	check := func(path, s string) {
		for _, p := range personal {
			if p != "" && strings.Contains(s, p) {
				found = append(found, fmt.Sprintf("personal value %q appears at %s", p, path))
			}
		}
	}
	walk = func(path string, v any) {
		switch v := v.(type) {
		case string:
			check(path, v)
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		case map[string]any:
			for k, x := range v {
				check(path+" (key)", k)
				walk(path+"."+k, x)
			}
		}
	}
	walk("$", doc)
	return found
}

// sample makes an event of type typ with every field set: strings from
// plain (given the field's path), slices with two elements, pointers
// allocated, numbers and times non-zero. Then it replaces each personal
// field (PersonalFields) with a value from personal, and returns the event
// and those values.
func sample(t testing.TB, typ string, plain, personal func(path string) string) (domain.Event, []string) {
	t.Helper()
	zero, err := domain.NewRegistry().Decode(typ, []byte("{}"))
	if err != nil {
		t.Fatalf("decode %s: %v", typ, err)
	}
	v := reflect.New(reflect.TypeOf(zero)).Elem()
	fill(v, typ, plain)
	e := v.Interface().(domain.Event)
	var values []string
	marked, err := domain.RewritePersonalFields(e, func(string) (string, error) {
		p := personal(typ)
		values = append(values, p)
		return p, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return marked, values
}

var (
	uuidType = reflect.TypeOf(uuid.UUID{})
	timeType = reflect.TypeOf(time.Time{})
)

func fill(v reflect.Value, path string, plain func(string) string) {
	switch {
	case v.Type() == uuidType:
		v.Set(reflect.ValueOf(uuid.New()))
		return
	case v.Type() == timeType:
		v.Set(reflect.ValueOf(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(plain(path))
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(4)
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		v.SetUint(5)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), path, plain)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), fmt.Sprintf("%s[%d]", path, i), plain)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, x := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, path+".key", plain)
		fill(x, path+".value", plain)
		m.SetMapIndex(k, x)
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), path+"."+v.Type().Field(i).Name, plain)
			}
		}
	}
}

// The reminders' public types are exactly those with the reminder prefix,
// and ReminderTypes lists them.
func TestReminderTypesHaveTheirPrefix(t *testing.T) {
	var prefixed []string
	for _, typ := range NewMapper().Types() {
		if strings.HasPrefix(typ, ReminderPrefix) {
			prefixed = append(prefixed, typ)
		}
	}
	if fmt.Sprint(prefixed) != fmt.Sprint(ReminderTypes()) {
		t.Fatalf("prefixed types %v, ReminderTypes %v", prefixed, ReminderTypes())
	}
	m := NewMapper()
	for _, typ := range domain.NewRegistry().ReminderTypes() {
		if p, _ := m.PublicType(typ); !strings.HasPrefix(p, ReminderPrefix) {
			t.Errorf("%s maps to %q", typ, p)
		}
	}
}
