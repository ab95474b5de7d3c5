package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestAuditCoversGoalsAndRouting: `rapport audit anchor` and `verify
// --all` count goal streams and the routing rules' stream beside the
// customers; one of each can be verified by its stream name; a goal's cut
// tail is caught against the anchor and an edited routing version by its
// chain, with exit status 3.
func TestAuditCoversGoalsAndRouting(t *testing.T) {
	m := apptest.MustOpen(t)
	ctx := context.Background()
	t.Setenv("RAPPORT_MASTER_KEY", "")
	t.Setenv("RAPPORT_EVENT_STORE", "")
	target, from, to := 80.0, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour)
	res, err := m.Goals.Handle(ctx, commands.GoalRequest{Command: domain.SetGoal{Name: "csat", Figure: "csat_pct", Comparator: domain.AtLeast, Target: &target, From: &from, To: &to},
		CommandID: uuid.New(), Actor: "cli-test"})
	if err != nil {
		t.Fatal(err)
	}
	goal := domain.GoalStreamName(res.GoalID)
	for _, next := range []float64{81, 82} {
		if _, err := m.Goals.Handle(ctx, commands.GoalRequest{GoalID: res.GoalID, Command: domain.ReviseGoal{Target: &next}, CommandID: uuid.New(), Actor: "cli-test"}); err != nil {
			t.Fatal(err)
		}
	}
	set, err := m.Routing.Set(ctx, commands.RoutingRequest{Command: domain.SetComplaintRouting{Rules: []domain.RoutingRule{{Name: "all", Assignee: "alice"}}}, CommandID: uuid.New(), Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		head, err := m.Store.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(head) == 1 && head[0].Position >= set.Position {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the last event never became visible in the global log")
		}
	}
	rapport := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(ctx, append(args, "--database-url", m.DatabaseURL, "--master-key", base64.StdEncoding.EncodeToString(m.Config.MasterKey)), &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}
	anchorFile := filepath.Join(t.TempDir(), "anchor.json")
	if out, err := rapport("audit", "anchor", "--out", anchorFile); err != nil || !strings.Contains(out, "anchored 2 streams") {
		t.Fatalf("audit anchor: %v\n%s", err, out)
	}
	out, err := rapport("audit", "verify", "--all")
	if err != nil || !strings.Contains(out, "verified 1 goals: 1 intact, 0 broken") || !strings.Contains(out, "verified 1 routing streams: 1 intact, 0 broken") {
		t.Fatalf("verify --all: %v\n%s", err, out)
	}
	if out, err := rapport("audit", "verify", goal); err != nil || !strings.Contains(out, goal+" intact: 3 events, last revision 2") {
		t.Fatalf("verify the goal: %v\n%s", err, out)
	}

	if _, err := m.Pool.Exec(ctx, `DELETE FROM eventstore.events WHERE stream = $1 AND revision = 2`, goal); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Pool.Exec(ctx, `UPDATE eventstore.events SET data = replace(data::text, 'alice', 'mallory')::json WHERE stream = $1`, domain.RoutingStream); err != nil {
		t.Fatal(err)
	}
	var exit exitError
	if out, err := rapport("audit", "verify", goal, "--anchor", anchorFile); !errors.As(err, &exit) || exit != 3 || !strings.Contains(out, goal+" BROKEN at revision 2") || !strings.Contains(out, "truncated") {
		t.Fatalf("verify the cut goal against the anchor: %v\n%s", err, out)
	}
	if out, err := rapport("audit", "verify", domain.RoutingStream); !errors.As(err, &exit) || exit != 3 || !strings.Contains(out, "routing-complaints BROKEN at revision 0") {
		t.Fatalf("verify the edited routing rules: %v\n%s", err, out)
	}
	out, err = rapport("audit", "verify", "--anchor", anchorFile)
	if !errors.As(err, &exit) || exit != 3 || !strings.Contains(out, "verified 1 goals: 0 intact, 1 broken") || !strings.Contains(out, "verified 1 routing streams: 0 intact, 1 broken") {
		t.Fatalf("verify all against the anchor: %v\n%s", err, out)
	}
}
