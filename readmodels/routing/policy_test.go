package routing_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/infra/postgres"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/routing"
)

// env is an embedded event store, the command layer and the routing
// policy run by a projections engine, which the tests stop and start
// again as a process would be.
type env struct {
	t     *testing.T
	pool  *pgxpool.Pool
	store *postgres.EventStore
	keys  *postgres.Keyring
	codec *eventcodec.Codec
	rules *commands.Routing
	// cmds is the command handler of the current "process".
	cmds *commands.Customers
	last eventstore.Position
	stop func()
	done chan struct{}
	eng  *projections.Engine
}

func newEnv(t *testing.T) *env {
	t.Helper()
	// The policy's transaction waits for the command it issues, which
	// needs connections of its own beside the engine's: more than
	// pgtest.NewPool's 4.
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 10
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := postgres.Migrate(t.Context(), pool, nil); err != nil {
		t.Fatal(err)
	}
	store, err := postgres.NewEventStore(pool, postgres.EventStoreConfig{CheckpointInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	keys, err := postgres.NewKeyring(pool, bytes.Repeat([]byte{9}, 32), postgres.KeyringConfig{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, pool: pool, store: store, keys: keys, codec: eventcodec.New(domain.NewRegistry(), keys)}
	e.rules = commands.NewRouting(store, e.codec, nil)
	e.newProcess()
	t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
		}
	})
	return e
}

// newProcess forgets every cache of the command side, as a restart does.
func (e *env) newProcess() {
	e.t.Helper()
	cmds, err := commands.NewCustomers(commands.Config{Store: e.store, Codec: e.codec,
		Emails: postgres.NewEmailIndex(e.pool, e.keys.IndexSecret()), Keys: e.keys})
	if err != nil {
		e.t.Fatal(err)
	}
	e.cmds = cmds
}

// start runs the policy with assigner (wrapping the current process's
// commands) until stop or until the assigner cancels it.
func (e *env) start(assigner func(cancel func()) routing.Assigner) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	policy := routing.NewPolicy(e.store, e.codec, assigner(cancel), nil)
	eng, err := projections.New(projections.Config{Pool: e.pool, Store: e.store, Codec: e.codec, Projectors: []projections.Projector{policy}, Logger: testLogger(e.t)})
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = eng.Run(ctx)
	}()
	var once sync.Once
	e.eng = eng
	e.stop = func() { once.Do(func() { cancel(); <-done }) }
	e.done = done
}

func (e *env) do(customer uuid.UUID, cmd domain.Command, actor string) commands.Result {
	e.t.Helper()
	res, err := e.cmds.Handle(context.Background(), commands.Request{CustomerID: customer, Command: cmd, CommandID: uuid.New(), Actor: actor, CorrelationID: "test"})
	if err != nil {
		e.t.Fatalf("%T: %v", cmd, err)
	}
	e.last = max(e.last, res.Position)
	return res
}

func (e *env) customer(name, segment, tier, region string) uuid.UUID {
	return e.do(uuid.Nil, domain.RegisterCustomer{Name: name, Email: name + "@routing.example", Segment: segment, Tier: tier, Region: region}, "tester").CustomerID
}

func (e *env) file(customer uuid.UUID, sev domain.Severity, category string) uuid.UUID {
	return e.do(customer, domain.FileComplaint{Category: category, Severity: sev, Description: "broken", Channel: domain.ChannelEmail}, "tester").CreatedID
}

func (e *env) setRules(rules ...domain.RoutingRule) int {
	e.t.Helper()
	res, err := e.rules.Set(context.Background(), commands.RoutingRequest{Command: domain.SetComplaintRouting{Rules: rules}, CommandID: uuid.New(), Actor: "admin"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.last = max(e.last, res.Position)
	return res.Version
}

// wait waits until the policy has handled everything written so far.
func (e *env) wait() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := e.eng.WaitForPosition(ctx, e.last); err != nil {
		st, _ := e.eng.Status(context.Background())
		e.t.Fatalf("%v: %+v", err, st)
	}
}

// assigned is one ComplaintAssigned of a customer's stream.
type assigned struct {
	complaint uuid.UUID
	assignee  string
	actor     string
	causation uuid.UUID
	revision  uint64
}

// history returns a customer's ComplaintAssigned events and, by
// complaint, the id of its ComplaintFiled event.
func (e *env) history(customer uuid.UUID) (out []assigned, filed map[uuid.UUID]uuid.UUID) {
	e.t.Helper()
	filed = map[uuid.UUID]uuid.UUID{}
	recs, err := e.store.ReadStream(context.Background(), domain.StreamName(customer), eventstore.ReadStreamOptions{Direction: eventstore.Forwards, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, rec := range recs {
		d, err := e.codec.Decode(context.Background(), rec)
		if err != nil {
			e.t.Fatal(err)
		}
		switch ev := d.Event.(type) {
		case domain.ComplaintFiled:
			filed[ev.ComplaintID] = rec.ID
		case domain.ComplaintAssigned:
			out = append(out, assigned{ev.ComplaintID, ev.Assignee, d.Metadata.Actor, d.Metadata.CausationID, rec.Revision})
		}
	}
	return out, filed
}

// guarded is the service's assigner (commands.Customers.HandleOnce);
// unguarded issues the same command without looking for an earlier run.
func (e *env) guarded() routing.Assigner { return app.RoutingAssigner{Customers: e.cmds} }

type unguarded struct{ cmds *commands.Customers }

func (u unguarded) AssignOnce(ctx context.Context, x routing.Assignment) (routing.AssignResult, error) {
	res, err := u.cmds.Handle(ctx, commands.Request{CustomerID: x.CustomerID, Command: domain.AssignComplaint{ComplaintID: x.ComplaintID, Assignee: x.Assignee},
		CommandID: x.Cause, Actor: x.Actor, CorrelationID: x.CorrelationID})
	return routing.AssignResult{Replayed: res.Replayed, Appended: res.Appended > 0}, err
}

// crashing runs inner and, after its first assignment that appended,
// stops the process before the policy's transaction commits: it cancels
// the engine and fails that call and every later one as the store being
// unreachable would (so the engine retries instead of parking, and never
// commits), leaving the checkpoint before the filing as a kill at that
// instant would.
type crashing struct {
	inner   routing.Assigner
	cancel  func()
	mu      sync.Mutex
	crashed bool
}

func (c *crashing) AssignOnce(ctx context.Context, x routing.Assignment) (routing.AssignResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashed {
		return routing.AssignResult{}, fmt.Errorf("the process is gone: %w", eventstore.ErrUnavailable)
	}
	res, err := c.inner.AssignOnce(ctx, x)
	if err == nil && res.Appended {
		c.crashed = true
		c.cancel()
		return res, fmt.Errorf("crash before the checkpoint commits: %w", eventstore.ErrUnavailable)
	}
	return res, err
}

// testLogger logs warnings and errors through t.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
