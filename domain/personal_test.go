package domain

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// notPersonal lists, per event, the string fields that are deliberately not
// personal data. Together with the personal fields they must cover every
// string field, so that a new field fails this test until someone decides
// which it is.
var notPersonal = map[string][]string{
	"CustomerRegistered":     {"Segment", "Tier", "Region", "Industry"},
	"CustomerProfileUpdated": {},
	"CustomerClassified":     {"Segment", "Tier", "Region", "Industry"},
	"TeamMemberAssigned":     {"Role", "Member", "PreviousMember"},
	"ContactLogged":          {"Channel", "Direction", "By"},
	"FollowUpScheduled":      {"By"},
	"ComplaintFiled":         {"Category", "Severity", "Channel"},
	"ComplaintAssigned":      {"Assignee"},
	"ComplaintAcknowledged":  {"By"},
	"ComplaintEscalated":     {"To"},
	"ComplaintResolved":      {"By"},
	"ComplaintReopened":      {},
	"SurveyRecorded":         {"Channel"},
	"CustomerChurned":        {},
	"CustomerReactivated":    {},
	"CustomerDataErased":     {"Reason"},
	"PurchaseRecorded":       {"Reference", "Currency", "Channel"},
	"PurchaseRefunded":       {"Currency"},
	"PointsAwarded":          {},
	"PointsRedeemed":         {},
	"PointsRevoked":          {},
}

// personal lists the fields PersonalFields must return; tag lists count as
// one entry and stand for each of their tags.
var personal = map[string][]string{
	"CustomerRegistered":     {"Name", "Email", "Phone", "Company", "Tags"},
	"CustomerProfileUpdated": {"Name", "Email", "Phone", "Company", "Tags"},
	"ContactLogged":          {"Summary"},
	"FollowUpScheduled":      {"Note"},
	"ComplaintFiled":         {"Description"},
	"ComplaintAcknowledged":  {"Note"},
	"ComplaintEscalated":     {"Reason"},
	"ComplaintResolved":      {"Resolution"},
	"ComplaintReopened":      {"Reason"},
	"SurveyRecorded":         {"Comment"},
	"CustomerChurned":        {"Reason"},
	"CustomerReactivated":    {"Reason"},
	"PointsAwarded":          {"Reason"},
	"PointsRedeemed":         {"Reason"},
}

// markStrings sets every string held by a field of the event (a string, a
// string pointer, a string list or a pointer to one) to a marker naming the
// field, and returns the markers by field name.
func markStrings(ptrToEvent any) map[string][]string {
	markers := map[string][]string{}
	v := reflect.ValueOf(ptrToEvent).Elem()
	for i := 0; i < v.NumField(); i++ {
		name, field := v.Type().Field(i).Name, v.Field(i)
		one, two := "<"+name+"#0>", "<"+name+"#1>"
		switch {
		case field.Kind() == reflect.String:
			field.SetString(one)
			markers[name] = []string{one}
		case field.Kind() == reflect.Pointer && field.Type().Elem().Kind() == reflect.String:
			field.Set(reflect.New(field.Type().Elem()))
			field.Elem().SetString(one)
			markers[name] = []string{one}
		case field.Type() == reflect.TypeOf([]string{}):
			field.Set(reflect.ValueOf([]string{one, two}))
			markers[name] = []string{one, two}
		case field.Type() == reflect.TypeOf(&[]string{}):
			field.Set(reflect.ValueOf(&[]string{one, two}))
			markers[name] = []string{one, two}
		}
	}
	return markers
}

func TestPersonalFieldsCoverExactlyThePersonalData(t *testing.T) {
	for _, sample := range sampleEvents() {
		name := typeName(sample)
		t.Run(name, func(t *testing.T) {
			ptr := reflect.New(reflect.TypeOf(sample))
			markers := markStrings(ptr.Interface())

			var classified []string
			classified = append(classified, personal[name]...)
			classified = append(classified, notPersonal[name]...)
			fields := make([]string, 0, len(markers))
			for field := range markers {
				fields = append(fields, field)
			}
			slices.Sort(fields)
			slices.Sort(classified)
			if !slices.Equal(fields, classified) {
				t.Fatalf("string fields %v, classified %v: classify every string field", fields, classified)
			}

			pd, ok := ptr.Interface().(PersonalData)
			if len(personal[name]) == 0 {
				if ok {
					t.Fatalf("%s has no personal data but implements PersonalData", name)
				}
				return
			}
			if !ok {
				t.Fatalf("%s must implement PersonalData", name)
			}
			var want, got []string
			for _, field := range personal[name] {
				want = append(want, markers[field]...)
			}
			for _, p := range pd.PersonalFields() {
				got = append(got, *p)
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("PersonalFields %v, want %v", got, want)
			}

			// The pointers point into the event: writing through them
			// rewrites it in place.
			for _, p := range pd.PersonalFields() {
				*p = "ciphertext"
			}
			for _, p := range pd.PersonalFields() {
				if *p != "ciphertext" {
					t.Fatal("PersonalFields does not point into the event")
				}
			}
			encoded, _ := Marshal(ptr.Interface().(Event))
			for _, marker := range want {
				if strings.Contains(string(encoded), marker) {
					t.Fatalf("%s still in the payload after rewriting: %s", marker, encoded)
				}
			}
		})
	}
}

func TestRewritePersonalFieldsLeavesTheOriginalAlone(t *testing.T) {
	upper := func(s string) (string, error) { return strings.ToUpper(s), nil }
	for _, e := range sampleEvents() {
		t.Run(typeName(e), func(t *testing.T) {
			before, _ := Marshal(e)
			rewritten, err := RewritePersonalFields(e, upper)
			if err != nil {
				t.Fatal(err)
			}
			if after, _ := Marshal(e); string(after) != string(before) {
				t.Fatalf("the original changed:\nbefore %s\nafter  %s", before, after)
			}
			if reflect.TypeOf(rewritten) != reflect.TypeOf(e) {
				t.Fatalf("rewritten to %T", rewritten)
			}
			ptr := reflect.New(reflect.TypeOf(e))
			ptr.Elem().Set(reflect.ValueOf(rewritten))
			if pd, ok := ptr.Interface().(PersonalData); ok {
				for _, p := range pd.PersonalFields() {
					if *p != strings.ToUpper(*p) {
						t.Fatalf("field %q was not rewritten", *p)
					}
				}
			} else if !reflect.DeepEqual(rewritten, e) {
				t.Fatal("an event without personal data must come back unchanged")
			}
		})
	}

	t.Run("pointer fields and tags are not shared", func(t *testing.T) {
		e := CustomerProfileUpdated{Name: ptr("ada"), Tags: &[]string{"vip"}}
		rewritten, _ := RewritePersonalFields(&e, upper)
		if *e.Name != "ada" || (*e.Tags)[0] != "vip" {
			t.Fatalf("original changed: %s %v", *e.Name, *e.Tags)
		}
		got := rewritten.(CustomerProfileUpdated)
		if *got.Name != "ADA" || (*got.Tags)[0] != "VIP" {
			t.Fatalf("copy not rewritten: %s %v", *got.Name, *got.Tags)
		}
	})

	t.Run("a failure is returned", func(t *testing.T) {
		boom := errors.New("no key")
		_, err := RewritePersonalFields(registered(), func(string) (string, error) { return "", boom })
		if !errors.Is(err, boom) {
			t.Fatalf("got %v", err)
		}
	})
}
