package domain

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Reminder events are registered apart: no customer projector handles
// them (Types), the registry still decodes them (AllTypes), and
// ReminderTypes lists exactly them.
func TestReminderTypesAreApartFromCustomerTypes(t *testing.T) {
	r := NewRegistry()
	want := []string{TypeComplaintSLAAtRisk, TypeComplaintSLABreached, TypeContactDue, TypeFollowUpDue}
	if got := r.ReminderTypes(); !slices.Equal(got, want) {
		t.Fatalf("ReminderTypes %v, want %v", got, want)
	}
	for _, typ := range want {
		if slices.Contains(r.Types(), typ) || !slices.Contains(r.AllTypes(), typ) || slices.Contains(r.GoalTypes(), typ) {
			t.Errorf("%s: Types %v, AllTypes %v", typ, r.Types(), r.AllTypes())
		}
	}
	last := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := ContactDue{ReminderSubject: ReminderSubject{CustomerID: uuid.New(), CustomerRevision: 7}, Tier: "A", CadenceDays: 14, LastContactAt: &last, DueAt: last.Add(15 * 24 * time.Hour)}
	data, err := Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := r.Decode(TypeContactDue, data)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := back.(ContactDue)
	if !ok || got.CustomerID != e.CustomerID || got.JudgedAtRevision() != 7 || !got.LastContactAt.Equal(last) || !got.BusinessTime().Equal(e.DueAt) {
		t.Fatalf("decoded %#v from %s", back, data)
	}
	if _, ok := back.(ReminderEvent); !ok {
		t.Fatal("ContactDue is no ReminderEvent")
	}
}

// A reminder's id is a function of its kind, subject and basis: the same
// three always give the same id (so replicas agree on the stream), and a
// change in any gives another.
func TestReminderIDIsDeterministic(t *testing.T) {
	subject := uuid.New()
	basis := time.Date(2026, 5, 6, 7, 8, 9, 123, time.UTC)
	id := ReminderID(ReminderSLABreached+"/"+SLAStepFirstResponse, subject, basis)
	if again := ReminderID(ReminderSLABreached+"/"+SLAStepFirstResponse, subject, basis.In(time.FixedZone("x", 3600))); again != id {
		t.Fatalf("the same reminder has ids %s and %s", id, again)
	}
	for name, other := range map[string]uuid.UUID{
		"kind":    ReminderID(ReminderSLAAtRisk+"/"+SLAStepFirstResponse, subject, basis),
		"step":    ReminderID(ReminderSLABreached+"/"+SLAStepResolution, subject, basis),
		"subject": ReminderID(ReminderSLABreached+"/"+SLAStepFirstResponse, uuid.New(), basis),
		"basis":   ReminderID(ReminderSLABreached+"/"+SLAStepFirstResponse, subject, basis.Add(time.Microsecond)),
	} {
		if other == id {
			t.Errorf("another %s gives the same id", name)
		}
	}
	stream := ReminderStreamName(id)
	if back, ok := ReminderIDFromStream(stream); !ok || back != id {
		t.Fatalf("ReminderIDFromStream(%q) = %s, %v", stream, back, ok)
	}
	for _, bad := range []string{"reminder-" + uuid.Nil.String(), "customer-" + id.String(), "reminder-" + stringsToUpper(id.String()), "reminder-x"} {
		if _, ok := ReminderIDFromStream(bad); ok {
			t.Errorf("ReminderIDFromStream accepted %q", bad)
		}
	}
	if _, ok := CustomerIDFromStream(stream); ok {
		t.Error("a reminder stream reads as a customer's")
	}
}

func stringsToUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}
