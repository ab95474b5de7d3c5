package history

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/projections/projectiontest"
)

// TestRenderSplitsAsBefore: render finds the personal fields with one JSON
// round trip of a masked copy; every event of a generated history (every
// type, personal fields present, absent and empty) renders exactly as the
// former way, which compared a masked copy with the plain event, did.
func TestRenderSplitsAsBefore(t *testing.T) {
	types := map[string]bool{}
	withPersonal := 0
	empty, mark, tags := "", personalMark+"0", []string{"vip", "", "x"}
	noTags := []string{}
	histories := [][]domain.Event{
		// Edge cases: empty and mark-like values, empty and nil tags.
		{domain.CustomerRegistered{Name: "", Email: mark, Tags: nil}, domain.CustomerProfileUpdated{Tags: &noTags}, domain.CustomerProfileUpdated{Name: &empty, Tags: &tags},
			domain.CustomerRegistered{Name: "A", Tags: []string{}}, domain.ContactLogged{Summary: ""}, domain.CustomerDataErased{Reason: "asked"}},
	}
	for _, a := range projectiontest.NewGenerator(7).Plan(3000) {
		histories = append(histories, a.Domain)
	}
	for _, h := range histories {
		p, ref := newProfile(), newProfile()
		for _, e := range h {
			d := &eventcodec.Decoded{Event: e}
			got, want := render(d, p), renderBefore(d, ref)
			types[e.EventType()] = true
			if want.personal != nil {
				withPersonal++
			}
			if !sameJSON(got.details, want.details) || !sameJSON(got.personal, want.personal) || !sameJSON(got.changes, want.changes) ||
				!sameJSON(got.personalChanges, want.personalChanges) || got.summary != want.summary {
				t.Fatalf("%s renders\n%s | %s | %s\nbefore:\n%s | %s | %s", e.EventType(), got.details, got.personal, got.summary, want.details, want.personal, want.summary)
			}
		}
	}
	for _, typ := range []string{"CustomerRegistered", "CustomerProfileUpdated", "ContactLogged", "FollowUpScheduled", "ComplaintFiled", "SurveyRecorded", "CustomerChurned", "TeamMemberAssigned"} {
		if !types["rapport."+typ+".v1"] {
			t.Errorf("no %s compared", typ)
		}
	}
	if len(types) < 14 || withPersonal < 100 {
		t.Fatalf("the generated history has %d event types, %d with personal fields: too few to compare", len(types), withPersonal)
	}
}

func newProfile() *profile {
	return &profile{Profile: map[string]any{}, Classification: map[string]string{}, Revision: -1}
}

func sameJSON(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

// renderBefore is how render split an event before: the plain event and a
// copy with every personal field replaced by the same mark, each through
// JSON, compared key by key.
func renderBefore(d *eventcodec.Decoded, p *profile) rendered {
	plain := asMap(d.Event)
	masked, _ := domain.RewritePersonalFields(d.Event, func(string) (string, error) { return personalMark, nil })
	details, personal := map[string]any{}, map[string]any{}
	for k, v := range asMap(masked) {
		if isPersonal(v) {
			personal[k] = plain[k]
			continue
		}
		details[k] = v
	}
	delete(details, "occurred_at")
	// The rest of render (summary, changes, the profile) is unchanged:
	// take it from render itself, on a copy of the profile.
	r := render(d, p)
	r.details, _ = json.Marshal(details)
	r.personal = nil
	if len(personal) > 0 && !d.Erased && !p.Erased {
		r.personal, _ = json.Marshal(personal)
	}
	return r
}
