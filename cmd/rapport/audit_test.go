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
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// TestAuditAnchorCatchesATruncatedTail runs what an auditor runs: `rapport
// audit anchor`, then a database writer cuts a stream's tail, then
// `rapport audit verify --anchor FILE` must fail visibly (exit status 3,
// the stream named BROKEN as truncated), for one customer and for all,
// while the chain alone still calls the cut stream intact. Cutting the
// log's anchored last event is reported as the log broken.
func TestAuditAnchorCatchesATruncatedTail(t *testing.T) {
	m := apptest.MustOpen(t)
	ctx := context.Background()
	t.Setenv("RAPPORT_MASTER_KEY", "")
	t.Setenv("RAPPORT_EVENT_STORE", "")
	handle := func(id uuid.UUID, cmd domain.Command) commands.Result {
		t.Helper()
		res, err := m.Commands.Handle(ctx, commands.Request{CustomerID: id, Command: cmd, CommandID: uuid.New(), Actor: "cli-test"})
		if err != nil {
			t.Fatalf("%T: %v", cmd, err)
		}
		return res
	}
	customer := func() (uuid.UUID, eventstore.Position) {
		res := handle(uuid.Nil, domain.RegisterCustomer{Name: "Ada", Email: "ada-" + uuid.NewString()[:8] + "@example.com", Segment: "enterprise"})
		for range 3 {
			res = handle(res.CustomerID, domain.LogContact{Channel: domain.ChannelEmail, Direction: domain.DirectionOutbound, Summary: "note", By: "bob"})
		}
		return res.CustomerID, res.Position
	}
	cut, _ := customer()
	last, lastPosition := customer()
	// The anchor reads the log: wait until its readers see the last event.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		head, err := m.Store.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(head) == 1 && head[0].Position >= lastPosition {
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
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := m.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	anchorFile := filepath.Join(t.TempDir(), "anchor.json")
	if out, err := rapport("audit", "anchor", "--out", anchorFile); err != nil {
		t.Fatalf("audit anchor: %v\n%s", err, out)
	}
	if out, err := rapport("audit", "verify", "--anchor", anchorFile); err != nil || !strings.Contains(out, "verified 2 customers: 2 intact, 0 broken") {
		t.Fatalf("verify against a fresh anchor: %v\n%s", err, out)
	}

	exec(`DELETE FROM eventstore.events WHERE stream = $1 AND revision = 3`, domain.StreamName(cut))
	// The chain alone cannot see a cut tail.
	if out, err := rapport("audit", "verify", cut.String()); err != nil || !strings.Contains(out, "intact: 3 events, last revision 2") {
		t.Fatalf("verify without the anchor: %v\n%s", err, out)
	}
	var exit exitError
	out, err := rapport("audit", "verify", cut.String(), "--anchor", anchorFile)
	if !errors.As(err, &exit) || exit != 3 || !strings.Contains(out, cut.String()+" BROKEN at revision 3") || !strings.Contains(out, "truncated") {
		t.Fatalf("verify one against the anchor: %v\n%s", err, out)
	}
	out, err = rapport("audit", "verify", "--anchor", anchorFile)
	if !errors.As(err, &exit) || exit != 3 || !strings.Contains(out, "truncated") || !strings.Contains(out, "verified 2 customers: 1 intact, 1 broken") {
		t.Fatalf("verify all against the anchor: %v\n%s", err, out)
	}

	// The log's anchored last event is cut too.
	exec(`DELETE FROM eventstore.events WHERE stream = $1 AND revision = 3`, domain.StreamName(last))
	out, err = rapport("audit", "verify", "--all", "--anchor", anchorFile)
	if !errors.As(err, &exit) || exit != 3 || !strings.Contains(out, "log BROKEN") {
		t.Fatalf("verify all after the log head was cut: %v\n%s", err, out)
	}
}

// TestAuditVerifyRejectsUnkeyedEventsAfterTheMark: `rapport audit verify`
// rejects a stream written without the key after the keyed-since mark
// (exit status 3, the reason named), and once the mark is moved, rejects
// every unkeyed event for that reason.
func TestAuditVerifyRejectsUnkeyedEventsAfterTheMark(t *testing.T) {
	m := apptest.MustOpen(t)
	ctx := context.Background()
	t.Setenv("RAPPORT_MASTER_KEY", "")
	t.Setenv("RAPPORT_EVENT_STORE", "")
	// A process holding no chain key writes under the public rule, as a
	// database writer who read the old code would.
	unkeyed, err := commands.NewCustomers(commands.Config{Store: m.Store, Codec: eventcodec.New(domain.NewRegistry(), m.Keyring),
		Emails: postgres.NewEmailRegistry(m.Pool, make([]byte, 32)), Keys: m.Keyring})
	if err != nil {
		t.Fatal(err)
	}
	res, err := unkeyed.Handle(ctx, commands.Request{Command: domain.RegisterCustomer{Name: "Mallory", Email: "mallory@example.com", Segment: "smb"}, CommandID: uuid.New(), Actor: "cli-test"})
	if err != nil {
		t.Fatal(err)
	}
	rapport := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(ctx, append(args, "--database-url", m.DatabaseURL, "--master-key", base64.StdEncoding.EncodeToString(m.Config.MasterKey)), &stdout, &stderr)
		return stdout.String() + stderr.String(), err
	}
	var exit exitError
	out, err := rapport("audit", "verify", res.CustomerID.String())
	if !errors.As(err, &exit) || exit != 3 || !strings.Contains(out, "BROKEN at revision 0") || !strings.Contains(out, "unkeyed event after the keyed-since mark") {
		t.Fatalf("verify a stream written without the key: %v\n%s", err, out)
	}
	if _, err := m.Pool.Exec(ctx, `UPDATE rapport.keyed_since SET position = position + 1000000`); err != nil {
		t.Fatal(err)
	}
	// One customer: its stream is read at once, where --all would wait
	// for the global log's readers to see the event.
	out, err = rapport("audit", "verify", res.CustomerID.String())
	if !errors.As(err, &exit) || exit != 3 || !strings.Contains(out, "keyed-since mark's signature does not verify") {
		t.Fatalf("verify after the mark was moved: %v\n%s", err, out)
	}
}
