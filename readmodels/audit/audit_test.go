package audit_test

import (
	"context"
	"errors"
	"fmt"
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

func handle(t testing.TB, m *apptest.Main, customerID uuid.UUID, cmd domain.Command) commands.Result {
	t.Helper()
	res, err := m.Commands.Handle(context.Background(), commands.Request{CustomerID: customerID, Command: cmd, CommandID: uuid.New(), Actor: "auditor-test", CorrelationID: "corr-1"})
	if err != nil {
		t.Fatalf("%T: %v", cmd, err)
	}
	return res
}

// history makes a customer with a few events and returns its id.
func history(t testing.TB, m *apptest.Main, contacts int) uuid.UUID {
	t.Helper()
	res := handle(t, m, uuid.Nil, domain.RegisterCustomer{Name: "Ada Lovelace", Email: fmt.Sprintf("ada-%s@example.com", uuid.NewString()[:8]), Segment: "enterprise"})
	for i := range contacts {
		handle(t, m, res.CustomerID, domain.LogContact{Channel: domain.ChannelEmail, Direction: domain.DirectionOutbound, Summary: fmt.Sprint("note ", i), By: "bob"})
	}
	return res.CustomerID
}

func TestEventsAreTheAuthoritativeLog(t *testing.T) {
	m := apptest.MustOpen(t)
	a := audit.New(m.Store, m.Codec)
	id := history(t, m, 3)
	var got []audit.Event
	if err := a.Events(context.Background(), id, 0, func(e audit.Event) (bool, error) { got = append(got, e); return true, nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Type != domain.TypeCustomerRegistered || got[3].Revision != 3 {
		t.Fatalf("events %+v", got)
	}
	for i, e := range got {
		if e.Actor != "auditor-test" || e.CorrelationID != "corr-1" || e.CausationID == uuid.Nil || e.RecordedAt.IsZero() || e.OccurredAt.IsZero() || e.Hash == "" || (i > 0 && e.PrevHash != got[i-1].Hash) {
			t.Errorf("event %d metadata: %+v", i, e)
		}
	}
	if !strings.Contains(string(got[0].Data), `"name":"Ada Lovelace"`) {
		t.Errorf("payload not decrypted: %s", got[0].Data)
	}
	if err := a.Events(context.Background(), uuid.New(), 0, func(audit.Event) (bool, error) { return true, nil }); !errors.Is(err, audit.ErrCustomerNotFound) {
		t.Fatalf("unknown customer: %v", err)
	}
}

func TestStateAsOfFoldsWhatWasRecordedByThen(t *testing.T) {
	m := apptest.MustOpen(t)
	a := audit.New(m.Store, m.Codec)
	id := history(t, m, 1)
	time.Sleep(20 * time.Millisecond)
	between := time.Now()
	time.Sleep(20 * time.Millisecond)
	handle(t, m, id, domain.MarkChurned{Reason: "price"})
	before, err := a.StateAsOf(context.Background(), id, between)
	if err != nil {
		t.Fatal(err)
	}
	if before.Customer.Status != domain.StatusActive || before.Revision != 1 || before.Events != 2 {
		t.Fatalf("as of before the churn: %+v", before)
	}
	now, err := a.StateAsOf(context.Background(), id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if now.Customer.Status != domain.StatusChurned || now.Revision != 2 {
		t.Fatalf("as of now: %+v", now)
	}
	if _, err := a.StateAsOf(context.Background(), id, between.Add(-time.Hour)); !errors.Is(err, audit.ErrCustomerNotFound) {
		t.Fatalf("before registration: %v", err)
	}
}

// TestVerificationDetectsTampering edits, deletes and reorders stored events
// in the Postgres store, each on its own customer, and checks that both the
// per-customer and the whole-log verification find the first broken link.
func TestVerificationDetectsTampering(t *testing.T) {
	m := apptest.MustOpen(t)
	a := audit.New(m.Store, m.Codec)
	ctx := context.Background()
	intact := history(t, m, 4)
	edited, deleted, reordered, metaEdited := history(t, m, 4), history(t, m, 4), history(t, m, 4), history(t, m, 4)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := m.Pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	stream := domain.StreamName
	exec(`UPDATE eventstore.events SET data = replace(data::text, '"email"', '"e_mail"')::json WHERE stream = $1 AND revision = 2`, stream(edited))
	exec(`UPDATE eventstore.events SET data = '{"channel":"visit","direction":"inbound","summary":"","by":"mallory"}' WHERE stream = $1 AND revision = 2`, stream(edited))
	exec(`DELETE FROM eventstore.events WHERE stream = $1 AND revision = 2`, stream(deleted))
	exec(`UPDATE eventstore.events SET revision = revision + 1000 WHERE stream = $1 AND revision IN (2, 3)`, stream(reordered))
	exec(`UPDATE eventstore.events SET revision = CASE revision WHEN 1002 THEN 3 ELSE 2 END WHERE stream = $1 AND revision >= 1000`, stream(reordered))
	exec(`UPDATE eventstore.events SET metadata = replace(metadata::text, '"actor":"auditor-test"', '"actor":"someone-else"')::json WHERE stream = $1 AND revision = 1`, stream(metaEdited))
	want := map[uuid.UUID]uint64{edited: 2, deleted: 3, reordered: 2, metaEdited: 1}
	for id, brokenAt := range want {
		v, err := a.Verify(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if v.Intact || v.BrokenAt == nil || v.BrokenAt.Revision != brokenAt {
			t.Errorf("customer %s: verification %+v, want broken at revision %d", id, v, brokenAt)
		}
	}
	if v, err := a.Verify(ctx, intact); err != nil || !v.Intact || *v.LastRevision != 4 || v.Events != 5 {
		t.Fatalf("intact customer: %+v %v", v, err)
	}
	// The whole log, read once: once the log's readers see our last event
	// (the Postgres store shows appends to log readers once older
	// transactions have ended).
	last := handle(t, m, intact, domain.LogContact{Channel: domain.ChannelEmail, Direction: domain.DirectionOutbound, Summary: "last", By: "bob"})
	deadline := time.Now().Add(10 * time.Second)
	for {
		head, err := m.Store.ReadAll(ctx, eventstore.ReadAllOptions{Direction: eventstore.Backwards, From: eventstore.End, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(head) == 1 && head[0].Position >= last.Position {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the last event never became visible in the global log")
		}
		time.Sleep(10 * time.Millisecond)
	}
	results := map[uuid.UUID]audit.Verification{}
	if err := a.VerifyAll(ctx, nil, func(v audit.Verification) error { results[v.CustomerID] = v; return nil }); err != nil {
		t.Fatal(err)
	}
	if !results[intact].Intact {
		t.Errorf("VerifyAll: intact customer reported broken: %+v", results[intact])
	}
	for id, brokenAt := range want {
		v := results[id]
		// Read in log order, the swapped pair shows revision 3 first.
		if id == reordered && v.BrokenAt != nil && v.BrokenAt.Revision == 3 {
			continue
		}
		if v.Intact || v.BrokenAt == nil || v.BrokenAt.Revision != brokenAt {
			t.Errorf("VerifyAll: customer %s: %+v, want broken at %d", id, v, brokenAt)
		}
	}
}

func TestErasureKeepsTheChainAndHidesPersonalData(t *testing.T) {
	m := apptest.MustOpen(t)
	a := audit.New(m.Store, m.Codec)
	id := history(t, m, 2)
	handle(t, m, id, domain.EraseCustomerData{Reason: "GDPR request 7"})
	v, err := a.Verify(context.Background(), id)
	if err != nil || !v.Intact {
		t.Fatalf("verification after erasure: %+v %v", v, err)
	}
	var events []audit.Event
	_ = a.Events(context.Background(), id, 0, func(e audit.Event) (bool, error) { events = append(events, e); return true, nil })
	for _, e := range events[:3] {
		if !e.Erased || strings.Contains(string(e.Data), "Ada") || strings.Contains(string(e.Data), "note") {
			t.Errorf("event %d after erasure: erased=%v %s", e.Revision, e.Erased, e.Data)
		}
	}
	if !strings.Contains(string(events[0].Data), `"segment":"enterprise"`) {
		t.Errorf("classification should survive erasure: %s", events[0].Data)
	}
	st, err := a.StateAsOf(context.Background(), id, time.Now())
	if err != nil || st.Customer.Status != domain.StatusErased || st.Customer.Name != "" || st.Customer.Segment != "enterprise" {
		t.Fatalf("state after erasure: %+v %v", st.Customer, err)
	}
}

// BenchmarkAuditReplay streams a 10,000-event history and folds its state
// as of a past instant: the figures auditors wait for.
func BenchmarkAuditReplay(b *testing.B) {
	m := apptest.MustOpen(b)
	a := audit.New(m.Store, m.Codec)
	id := history(b, m, 9_999)
	ctx := context.Background()
	b.Run("stream-10k-events", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if err := a.Events(ctx, id, 0, func(audit.Event) (bool, error) { n++; return true, nil }); err != nil || n != 10_000 {
				b.Fatalf("%d events, %v", n, err)
			}
		}
	})
	b.Run("state-as-of-10k-events", func(b *testing.B) {
		asOf := time.Now()
		for b.Loop() {
			if st, err := a.StateAsOf(ctx, id, asOf); err != nil || st.Events != 10_000 {
				b.Fatalf("%+v %v", st.Events, err)
			}
		}
	})
}
