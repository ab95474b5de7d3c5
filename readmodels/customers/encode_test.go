package customers

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
)

// The hand-written JSON of the risk inputs must read back as
// encoding/json reads it.
func TestEncodeRiskInputsRoundTrip(t *testing.T) {
	at := time.Date(2026, 2, 3, 4, 5, 6, 789, time.FixedZone("x", 3600))
	c := domain.Customer{
		Complaints: []domain.Complaint{
			{ID: uuid.New(), Category: "bil\"ling\\ \n\x01 é", Severity: domain.SeverityHigh, Channel: domain.ChannelEmail, Status: domain.ComplaintStatusReopened,
				Assignee: "bob", FiledAt: at, OpenedAt: at.Add(time.Hour), Acknowledged: true, AcknowledgedAt: at.Add(2 * time.Hour), Openings: 2, Escalations: 1},
			{ID: uuid.New(), Category: "x", Severity: domain.SeverityLow, Status: domain.ComplaintStatusResolved, FiledAt: at, OpenedAt: at, ResolvedAt: at.Add(time.Minute), Openings: 1},
		},
		FollowUps: []domain.FollowUp{
			{ID: uuid.New(), DueAt: at.Add(48 * time.Hour), By: "carol", ScheduledAt: at},
			{ID: uuid.New(), DueAt: at.Add(time.Hour), By: "dave", ScheduledAt: at, Done: true},
			{ID: uuid.New(), DueAt: at.Add(24 * time.Hour), By: "erin", ScheduledAt: at},
		},
	}
	cj, fj, due, _ := encodeRiskInputs(&c, nil)
	var gotC []complaintJSON
	if err := json.Unmarshal([]byte(cj), &gotC); err != nil {
		t.Fatalf("%v: %s", err, cj)
	}
	var wantC []complaintJSON
	for _, x := range c.Complaints {
		j := complaintJSON{ID: x.ID, Category: x.Category, Severity: x.Severity, Channel: x.Channel, Status: x.Status, Assignee: x.Assignee,
			FiledAt: x.FiledAt, OpenedAt: x.OpenedAt, Openings: x.Openings, Escalations: x.Escalations, ResolvedAt: timePtr(x.ResolvedAt)}
		if x.Acknowledged {
			j.AcknowledgedAt = timePtr(x.AcknowledgedAt)
		}
		wantC = append(wantC, j)
	}
	if len(gotC) != 2 {
		t.Fatalf("complaints %s", cj)
	}
	for i := range gotC {
		g, w := gotC[i], wantC[i]
		if g.ID != w.ID || g.Category != w.Category || g.Severity != w.Severity || g.Channel != w.Channel || g.Status != w.Status ||
			g.Assignee != w.Assignee || !g.FiledAt.Equal(w.FiledAt) || !g.OpenedAt.Equal(w.OpenedAt) || g.Openings != w.Openings ||
			g.Escalations != w.Escalations || (g.AcknowledgedAt == nil) != (w.AcknowledgedAt == nil) || (g.ResolvedAt == nil) != (w.ResolvedAt == nil) {
			t.Fatalf("complaint %d: got %+v, want %+v", i, g, w)
		}
	}
	var gotF []followUpJSON
	if err := json.Unmarshal([]byte(fj), &gotF); err != nil {
		t.Fatalf("%v: %s", err, fj)
	}
	if len(gotF) != 2 || gotF[0].By != "carol" || gotF[1].By != "erin" || !due.Equal(at.Add(24*time.Hour)) {
		t.Fatalf("follow-ups %s, next due %v", fj, due)
	}
	empty, emptyF, _, _ := encodeRiskInputs(&domain.Customer{}, nil)
	if empty != "[]" || emptyF != "[]" {
		t.Fatalf("empty: %s %s", empty, emptyF)
	}
	_ = reflect.DeepEqual
}

func TestTextArrayLiteral(t *testing.T) {
	var b = new(stringsBuilder)
	if got := textArray(&b.Builder, []string{`a"b`, `c\d`, "", "x,y"}); got != `{"a\"b","c\\d","","x,y"}` {
		t.Fatalf("literal %s", got)
	}
}

type stringsBuilder struct{ strings.Builder }

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
