package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/audit"
)

// goalCommand runs a goal command and returns the goal's id and the
// position of its events.
func goalCommand(t *testing.T, m *apptest.Main, id uuid.UUID, cmd domain.GoalCommand) (uuid.UUID, eventstore.Position) {
	t.Helper()
	res, err := m.Goals.Handle(context.Background(), commands.GoalRequest{GoalID: id, Command: cmd, CommandID: uuid.New(), Actor: "analyst-ana", At: time.Now()})
	if err != nil {
		t.Fatalf("%T: %v", cmd, err)
	}
	return res.GoalID, res.Position
}

// goalWith sets a goal and revises it revisions times.
func goalWith(t *testing.T, m *apptest.Main, revisions int) (uuid.UUID, eventstore.Position) {
	t.Helper()
	target, from, to := 80.0, time.Now().Add(-24*time.Hour), time.Now().Add(90*24*time.Hour)
	id, pos := goalCommand(t, m, uuid.Nil, domain.SetGoal{Name: "csat up", Figure: "csat_pct", Comparator: domain.AtLeast, Target: &target, From: &from, To: &to})
	for i := range revisions {
		next := target + float64(i+1)
		_, pos = goalCommand(t, m, id, domain.ReviseGoal{Target: &next})
	}
	return id, pos
}

func setRouting(t *testing.T, m *apptest.Main, assignee string) eventstore.Position {
	t.Helper()
	res, err := m.Routing.Set(context.Background(), commands.RoutingRequest{
		Command:   domain.SetComplaintRouting{Rules: []domain.RoutingRule{{Name: "all", Assignee: assignee}}},
		CommandID: uuid.New(), Actor: "admin",
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Position
}

// TestGoalAndRoutingStreamsAreAuditedLikeCustomers: goal streams and the
// routing rules' stream are verified by VerifyAll, sealed in an anchor,
// and an edit by a database writer to either (a payload, an actor, a
// chain recomputed under the public rule, a cut tail) is reported, with
// the cut seen against the anchor only, as for customers.
func TestGoalAndRoutingStreamsAreAuditedLikeCustomers(t *testing.T) {
	m := apptest.MustOpen(t)
	a := audit.New(m.Store, m.Codec)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := m.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	customer := history(t, m, 1)
	edited, _ := goalWith(t, m, 1)
	truncated, _ := goalWith(t, m, 2)
	forged, _ := goalWith(t, m, 1)
	setRouting(t, m, "alice")
	waitVisible(t, m, setRouting(t, m, "bob"))
	goalStream := domain.GoalStreamName

	all := map[string]audit.Verification{}
	if err := a.VerifyAll(ctx, nil, func(v audit.Verification) error { all[v.Stream] = v; return nil }); err != nil {
		t.Fatal(err)
	}
	wantEvents := map[string]int{domain.StreamName(customer): 2, goalStream(edited): 2, goalStream(truncated): 3, goalStream(forged): 2, domain.RoutingStream: 2}
	if len(all) != len(wantEvents) {
		t.Fatalf("VerifyAll reported %d streams, want %d: %+v", len(all), len(wantEvents), all)
	}
	for stream, n := range wantEvents {
		if v := all[stream]; !v.Intact || v.Events != n || v.LastHash == "" {
			t.Errorf("before tampering %s: %+v, want intact with %d events", stream, v, n)
		}
	}

	anchor, broken, err := a.Anchor(ctx, time.Now(), nil)
	if err != nil || len(broken) != 0 {
		t.Fatalf("anchor: %v %+v", err, broken)
	}
	if err := a.CheckAnchor(&anchor); err != nil {
		t.Fatal(err)
	}
	// Through a file and back, as `rapport audit anchor` keeps it.
	raw, _ := json.Marshal(anchor)
	var reread audit.Anchor
	if err := json.Unmarshal(raw, &reread); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckAnchor(&reread); err != nil {
		t.Fatalf("the anchor read back from JSON: %v", err)
	}
	entries := map[string]string{}
	for _, h := range reread.Streams {
		entries[h.StreamName()] = h.Entry
	}
	for stream := range wantEvents {
		if entries[stream] == "" {
			t.Errorf("the anchor has no head for %s: %s", stream, raw)
		}
	}

	exec(`UPDATE eventstore.events SET data = replace(data::text, '81', '99')::json WHERE stream = $1 AND revision = 1`, goalStream(edited))
	exec(`UPDATE eventstore.events SET metadata = replace(metadata::text, '"actor":"admin"', '"actor":"mallory"')::json WHERE stream = $1 AND revision = 0`, domain.RoutingStream)
	exec(`DELETE FROM eventstore.events WHERE stream = $1 AND revision = 2`, goalStream(truncated))
	forgeStream(t, m, goalStream(forged), 0)

	want := map[string]struct {
		revision uint64
		reason   string
	}{
		goalStream(edited):   {1, "content does not match its hash"},
		domain.RoutingStream: {0, "content does not match its hash"},
		goalStream(forged):   {0, "keyed-since mark"},
	}
	for stream, w := range want {
		v, err := a.VerifyStream(ctx, stream)
		if err != nil || v.Intact || v.BrokenAt == nil || v.BrokenAt.Revision != w.revision || !strings.Contains(v.BrokenAt.Reason, w.reason) {
			t.Errorf("VerifyStream %s: %+v (break %+v) %v, want broken at %d: …%s…", stream, v, v.BrokenAt, err, w.revision, w.reason)
		}
	}
	// The goal's history answer says so too.
	if h, err := a.History(ctx, goalStream(edited)); err != nil || h.Verification.Intact || len(h.Events) != 2 || h.Events[1].Stream != goalStream(edited) {
		t.Errorf("history of the edited goal: %+v %v", h.Verification, err)
	}
	// The chain alone cannot see the cut tail; the anchor can.
	if v, err := a.VerifyStream(ctx, goalStream(truncated)); err != nil || !v.Intact || *v.LastRevision != 1 {
		t.Errorf("without the anchor the truncated goal: %+v %v", v, err)
	}
	head, err := a.ParseAnchorEntry(entries[goalStream(truncated)])
	if err != nil {
		t.Fatal(err)
	}
	if v, err := a.VerifyStreamAnchored(ctx, goalStream(truncated), head); err != nil || v.Intact || v.BrokenAt == nil || !strings.Contains(v.BrokenAt.Reason, "truncated") {
		t.Errorf("against its entry the truncated goal: %+v (break %+v) %v", v, v.BrokenAt, err)
	}
	if _, err := a.VerifyStreamAnchored(ctx, goalStream(edited), head); !errors.Is(err, audit.ErrInvalidAnchor) {
		t.Errorf("another goal's entry was accepted: %v", err)
	}
	if _, err := a.VerifyAnchored(ctx, customer, head); !errors.Is(err, audit.ErrInvalidAnchor) {
		t.Errorf("a goal's entry was accepted for a customer: %v", err)
	}

	want[goalStream(truncated)] = struct {
		revision uint64
		reason   string
	}{2, "truncated"}
	for _, anchored := range []bool{false, true} {
		got := map[string]audit.Verification{}
		report := func(v audit.Verification) error { got[v.Stream] = v; return nil }
		if anchored {
			err = a.VerifyAllAnchored(ctx, &reread, nil, report)
		} else {
			err = a.VerifyAll(ctx, nil, report)
		}
		if err != nil {
			t.Fatal(err)
		}
		for stream, w := range want {
			if stream == goalStream(truncated) && !anchored {
				continue
			}
			v := got[stream]
			if v.Intact || v.BrokenAt == nil || v.BrokenAt.Revision != w.revision || !strings.Contains(v.BrokenAt.Reason, w.reason) {
				t.Errorf("anchored %v, %s: %+v (break %+v), want broken at %d: …%s…", anchored, stream, v, v.BrokenAt, w.revision, w.reason)
			}
		}
		if v := got[domain.StreamName(customer)]; !v.Intact || v.CustomerID != customer {
			t.Errorf("anchored %v, the untouched customer: %+v", anchored, v)
		}
	}
}

// TestAnchorsOfCustomersOnlyStillVerify: an anchor's customer heads read
// as they did before other streams were anchored (no stream field), so an
// anchor taken then, which knows no goal, still checks; the goal streams
// written since must then be keyed throughout, and are.
func TestAnchorsOfCustomersOnlyStillVerify(t *testing.T) {
	m := apptest.MustOpen(t)
	a := audit.New(m.Store, m.Codec)
	ctx := context.Background()
	id := history(t, m, 1)
	_, pos := goalWith(t, m, 1)
	waitVisible(t, m, pos)
	anchor, _, err := a.Anchor(ctx, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(anchor.Streams)
	if !strings.Contains(string(raw), `{"customer_id":"`+id.String()+`","revision"`) || strings.Contains(string(raw), `"customer_id":"00000000`) {
		t.Errorf("heads: %s", raw)
	}
	if !strings.HasPrefix(anchor.Streams[0].Entry, "a1."+id.String()+".") {
		t.Errorf("a customer's entry changed form: %s", anchor.Streams[0].Entry)
	}
}
