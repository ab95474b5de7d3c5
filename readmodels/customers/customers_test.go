package customers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/customers"
)

type env struct {
	pool  *pgxpool.Pool
	store *postgres.EventStore
	keys  *postgres.Keyring
	codec *eventcodec.Codec
	eng   *projections.Engine
	q     *customers.Queries
	revs  map[uuid.UUID]uint64
	prev  map[uuid.UUID]string
}

// newEnv runs the customer directory on a fresh database.
func newEnv(t testing.TB) *env {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := postgres.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatal(err)
	}
	store, err := postgres.NewEventStore(pool, postgres.EventStoreConfig{CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	keys, err := postgres.NewKeyring(pool, bytes.Repeat([]byte{3}, 32), postgres.KeyringConfig{})
	if err != nil {
		t.Fatal(err)
	}
	codec := eventcodec.New(domain.NewRegistry(), keys)
	p, err := customers.NewProjector(customers.Config{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := projections.New(projections.Config{Pool: pool, Store: store, Codec: codec, Projectors: []projections.Projector{p},
		LockRetryInterval: 100 * time.Millisecond, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = eng.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &env{pool: pool, store: store, keys: keys, codec: codec, eng: eng, q: customers.NewQueries(pool),
		revs: map[uuid.UUID]uint64{}, prev: map[uuid.UUID]string{}}
}

// do appends events to a customer as the command side would, and waits
// until the directory shows them.
func (e *env) do(t testing.TB, id uuid.UUID, events ...domain.Event) {
	t.Helper()
	ctx := context.Background()
	first, exists := e.revs[id]
	expected := eventstore.NoStream
	if exists {
		expected = eventstore.Exact(first - 1)
	}
	ids := make([]uuid.UUID, len(events))
	for i := range ids {
		ids[i] = uuid.New()
	}
	data, last, err := e.codec.Encode(ctx, eventcodec.Batch{
		Stream: domain.StreamName(id), FirstRevision: first, PrevHash: e.prev[id],
		Metadata: eventcodec.Metadata{CustomerID: id, Actor: "tester", RecordedAt: time.Now()},
		Events:   events, IDs: ids,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.store.Append(ctx, domain.StreamName(id), expected, data)
	if err != nil {
		t.Fatal(err)
	}
	e.revs[id], e.prev[id] = first+uint64(len(events)), last
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := e.eng.WaitForPosition(wctx, res.Position); err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func TestDirectoryFollowsTheCustomer(t *testing.T) {
	e := newEnv(t)
	id := uuid.New()
	complaint := uuid.New()
	e.do(t, id,
		domain.CustomerRegistered{CustomerID: id, Name: "Ada Lovelace", Email: "ada@example.com", Phone: "+44 1", Company: "Analytical Engines",
			Tags: []string{"vip", `quo"te`}, Segment: "enterprise", Tier: "A", Region: "emea", Industry: "computing", OccurredAt: t0},
		domain.TeamMemberAssigned{Role: domain.RoleAccountManager, Member: "bob", OccurredAt: t0.Add(time.Hour)},
		domain.ContactLogged{ContactID: uuid.New(), Channel: domain.ChannelPhone, Direction: domain.DirectionInbound, Summary: "hi", By: "bob", OccurredAt: t0.Add(48 * time.Hour)},
		// Logged late: an earlier contact does not move last_contact_at back.
		domain.ContactLogged{ContactID: uuid.New(), Channel: domain.ChannelEmail, Direction: domain.DirectionOutbound, Summary: "late", By: "bob", OccurredAt: t0.Add(24 * time.Hour)},
		domain.ComplaintFiled{ComplaintID: complaint, Category: "billing", Severity: domain.SeverityHigh, Description: "double charge", OccurredAt: t0.Add(50 * time.Hour)},
		domain.SurveyRecorded{SurveyID: uuid.New(), CSAT: ptr(2), NPS: ptr(3), OccurredAt: t0.Add(60 * time.Hour)},
		// Answered earlier, recorded later: not the last answers.
		domain.SurveyRecorded{SurveyID: uuid.New(), CSAT: ptr(5), NPS: ptr(10), OccurredAt: t0.Add(55 * time.Hour)},
		domain.FollowUpScheduled{FollowUpID: uuid.New(), DueAt: t0.Add(100 * time.Hour), By: "bob", Note: "call", OccurredAt: t0.Add(61 * time.Hour)},
	)
	c, err := e.q.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if *c.Name != "Ada Lovelace" || *c.Email != "ada@example.com" || *c.Company != "Analytical Engines" || fmt.Sprint(c.Tags) != `[vip quo"te]` ||
		c.Segment != "enterprise" || c.Tier != "A" || c.Region != "emea" || c.Industry != "computing" || c.Team["account_manager"] != "bob" ||
		c.Status != "active" || !c.RegisteredAt.Equal(t0) || !c.LastContactAt.Equal(t0.Add(48*time.Hour)) || c.OpenComplaints != 1 ||
		*c.LastCSAT != 2 || *c.LastNPS != 3 || *c.Risk.PrevCSAT != 5 || c.Revision != 7 ||
		len(c.Risk.Complaints) != 1 || c.Risk.Complaints[0].Severity != "high" || !c.Risk.Complaints[0].Open() ||
		len(c.Risk.FollowUpsPending) != 1 || !c.Risk.NextFollowUpDueAt.Equal(t0.Add(100*time.Hour)) {
		t.Fatalf("customer %+v", c)
	}
	// Resolution closes the complaint; a contact completes the follow-up;
	// churn changes the status.
	e.do(t, id,
		domain.ComplaintResolved{ComplaintID: complaint, By: "bob", Resolution: "refunded", OccurredAt: t0.Add(70 * time.Hour)},
		domain.ContactLogged{ContactID: uuid.New(), Channel: domain.ChannelPhone, Direction: domain.DirectionOutbound, Summary: "done", By: "bob", OccurredAt: t0.Add(80 * time.Hour)},
		domain.CustomerChurned{Reason: "price", OccurredAt: t0.Add(90 * time.Hour)},
	)
	c, err = e.q.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if c.OpenComplaints != 0 || len(c.Risk.FollowUpsPending) != 0 || c.Risk.NextFollowUpDueAt != nil || c.Status != "churned" || c.Risk.Complaints[0].ResolvedAt == nil {
		t.Fatalf("after resolution: %+v", c)
	}
	if _, err := e.q.Get(context.Background(), uuid.New()); !errors.Is(err, customers.ErrNotFound) {
		t.Fatalf("unknown customer: %v", err)
	}
}

func TestErasureNullsPersonalDataForGood(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	erased, kept := uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{erased, kept} {
		e.do(t, id,
			domain.CustomerRegistered{CustomerID: id, Name: "Grace " + id.String()[:4], Email: id.String()[:8] + "@example.com", Phone: "+1", Company: "Navy",
				Tags: []string{"cobol"}, Segment: "smb", Tier: "B", Region: "amer", OccurredAt: t0},
			domain.TeamMemberAssigned{Role: domain.RoleSupport, Member: "carol", OccurredAt: t0},
			domain.SurveyRecorded{SurveyID: uuid.New(), CSAT: ptr(4), OccurredAt: t0.Add(time.Hour)},
		)
	}
	// The command side destroys the key, then records the erasure.
	if err := e.keys.Destroy(ctx, erased); err != nil {
		t.Fatal(err)
	}
	e.do(t, erased, domain.CustomerDataErased{Reason: "GDPR", OccurredAt: t0.Add(2 * time.Hour)})
	check := func(when string) {
		t.Helper()
		c, err := e.q.Get(ctx, erased)
		if err != nil {
			t.Fatal(err)
		}
		if c.Name != nil || c.Email != nil || c.Phone != nil || c.Company != nil || c.Tags != nil || c.Status != "erased" ||
			c.Segment != "smb" || c.Team["support"] != "carol" || *c.LastCSAT != 4 || !c.RegisteredAt.Equal(t0) {
			t.Fatalf("%s: erased customer %+v", when, c)
		}
		var leaked int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM readmodels.customers WHERE id = $1 AND (name IS NOT NULL OR email IS NOT NULL OR phone IS NOT NULL OR company IS NOT NULL OR tags IS NOT NULL OR NOT personal_data_erased)`, erased).Scan(&leaked); err != nil || leaked != 0 {
			t.Fatalf("%s: personal data left in the table (%v)", when, err)
		}
		k, err := e.q.Get(ctx, kept)
		if err != nil || k.Name == nil || k.Status != "active" {
			t.Fatalf("%s: the other customer %+v %v", when, k, err)
		}
	}
	check("live")
	// A rebuild reads the events again: the key is gone, nothing returns.
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := e.eng.Rebuild(rctx, customers.Name, nil); err != nil {
		t.Fatal(err)
	}
	check("after a rebuild")
	if page, err := e.q.List(ctx, customers.Filter{Q: "grace"}, 10, ""); err != nil || len(page.Items) != 1 || page.Items[0].ID != kept {
		t.Fatalf("search after erasure: %+v %v", page, err)
	}
}

func TestListFiltersAndPages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var ids []uuid.UUID
	for i := range 25 {
		id := uuid.New()
		ids = append(ids, id)
		seg := []string{"enterprise", "smb"}[i%2]
		tier := []string{"A", "B", "C"}[i%3]
		events := []domain.Event{domain.CustomerRegistered{CustomerID: id, Name: fmt.Sprintf("Customer %02d", i), Email: fmt.Sprintf("c%02d@example.com", i),
			Company: []string{"Acme_1", "Globex"}[i%2], Segment: seg, Tier: tier, Region: "emea", OccurredAt: t0.Add(time.Duration(i) * time.Minute)}}
		if i%5 == 0 {
			events = append(events, domain.TeamMemberAssigned{Role: domain.RoleSales, Member: "dave", OccurredAt: t0})
		}
		if i%4 == 0 {
			events = append(events, domain.CustomerChurned{Reason: "x", OccurredAt: t0.Add(time.Hour)})
		}
		e.do(t, id, events...)
	}
	count := func(f customers.Filter) int {
		t.Helper()
		n, cursor := 0, ""
		for {
			page, err := e.q.List(ctx, f, 4, cursor)
			if err != nil {
				t.Fatal(err)
			}
			n += len(page.Items)
			if page.NextCursor == "" {
				return n
			}
			cursor = page.NextCursor
		}
	}
	for name, c := range map[string]struct {
		f    customers.Filter
		want int
	}{
		"all":           {customers.Filter{}, 25},
		"segment":       {customers.Filter{Segment: "smb"}, 12},
		"tier":          {customers.Filter{Tier: "A"}, 9},
		"segment+tier":  {customers.Filter{Segment: "enterprise", Tier: "A"}, 5},
		"owner":         {customers.Filter{Owner: "dave"}, 5},
		"status":        {customers.Filter{Status: "churned"}, 7},
		"q name":        {customers.Filter{Q: "customer 1"}, 10},
		"q email":       {customers.Filter{Q: "C07@EXAMPLE"}, 1},
		"q underscore":  {customers.Filter{Q: "acme_"}, 13},
		"q wildcard":    {customers.Filter{Q: "%"}, 0},
		"region+status": {customers.Filter{Region: "emea", Status: "active"}, 18},
	} {
		if got := count(c.f); got != c.want {
			t.Errorf("%s: %d customers, want %d", name, got, c.want)
		}
	}
	// Pages follow registration order without gaps or repeats.
	var seen []uuid.UUID
	cursor := ""
	for {
		page, err := e.q.List(ctx, customers.Filter{}, 7, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Items {
			seen = append(seen, c.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if fmt.Sprint(seen) != fmt.Sprint(ids) {
		t.Fatalf("pages gave %v, want %v", seen, ids)
	}
	if _, err := e.q.List(ctx, customers.Filter{}, 10, "garbage!"); !errors.Is(err, customers.ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
	if _, err := e.q.List(ctx, customers.Filter{}, customers.MaxLimit+1, ""); err == nil {
		t.Fatal("limit above the maximum accepted")
	}
}
