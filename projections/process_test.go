package projections_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/postgres/postgrestest"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/pgtest"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/projections/projectiontest"
	"github.com/rapport-crm/rapport/readmodels/customers"
)

// Environment of the projector processes these tests start: the test
// binary runs itself with TestProjectorProcess selected.
const (
	childDBEnv    = "RAPPORT_PROJECTOR_CHILD_DB"
	childNameEnv  = "RAPPORT_PROJECTOR_CHILD_NAME"
	childBatchEnv = "RAPPORT_PROJECTOR_CHILD_BATCH"
)

// TestProjectorProcess is not a test: it is the projector process of the
// crash and failover tests, run as a child of the test binary.
func TestProjectorProcess(t *testing.T) {
	url := os.Getenv(childDBEnv)
	if url == "" {
		t.Skip("the projector process of TestCrashMidBatch and TestFailover; they start it")
	}
	e := newEnvAt(t, url, false)
	cfg := e.engineConfig(t)
	cfg.Instance = os.Getenv(childNameEnv)
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("process", cfg.Instance)
	if b, err := strconv.Atoi(os.Getenv(childBatchEnv)); err == nil {
		cfg.BatchSize, cfg.RebuildBatchSize = b, b
	}
	eng := e.newEngine(t, cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// child is a projector process.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func startChild(t *testing.T, url, name string, batch int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestProjectorProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childDBEnv+"="+url, childNameEnv+"="+name, childBatchEnv+"="+strconv.Itoa(batch))
	w := &testWriter{tb: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	if os.Getenv("PROJECTIONS_DEBUG") != "" {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	} else {
		cmd.Stdout, cmd.Stderr = w, w
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(c.kill)
	return c
}

// kill ends the process with SIGKILL: no deferred function, no commit.
func (c *child) kill() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Kill()
	<-c.done
}

// stop ends the process gracefully.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.kill()
	}
}

func checkpointOf(t *testing.T, e *env) (eventstore.Position, int64) {
	t.Helper()
	var cp, applied int64
	err := e.pool.QueryRow(context.Background(), `SELECT checkpoint, events_applied FROM projections.generations WHERE projector = 'customers' AND state = 'active'`).Scan(&cp, &applied)
	if err != nil {
		return 0, 0
	}
	return eventstore.Position(cp), applied
}

// TestCrashMidBatch kills projector processes with SIGKILL while they
// catch up; after a restart the read model equals a fresh rebuild: every
// event applied exactly once, whatever instant the kill came.
func TestCrashMidBatch(t *testing.T) {
	url := pgtest.NewDatabase(t)
	e := newEnvAt(t, url, true)
	ctx := context.Background()
	appends := projectiontest.NewGenerator(77).Plan(15_000)
	if err := projectiontest.Encode(ctx, e.codec, appends, 4); err != nil {
		t.Fatal(err)
	}
	last, err := postgrestest.BulkLoad(ctx, e.pool, appends)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var kills []int64
	for i := range 4 {
		c := startChild(t, url, fmt.Sprintf("crasher-%d", i), 250)
		// Let it get going, then kill it at a random instant.
		eventually(t, 30*time.Second, "the child to commit", func() bool {
			cp, _ := checkpointOf(t, e)
			return cp > 0
		})
		time.Sleep(time.Duration(20+rng.IntN(200)) * time.Millisecond)
		c.kill()
		_, applied := checkpointOf(t, e)
		kills = append(kills, applied)
		if cp, _ := checkpointOf(t, e); cp >= last {
			break
		}
	}
	t.Logf("killed at %v events applied (of %d)", kills, len(appends))
	// Live events too, then a last process that finishes.
	_, live := e.load(t, 78, 300)
	c := startChild(t, url, "finisher", 250)
	observer := e.newEngine(t, e.engineConfig(t)) // not running: reads the tables
	waitFor(t, observer, live, 2*time.Minute)
	c.stop()

	rep, err := observer.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify after crashes: %+v", rep.Projectors[0])
	}
	compareModel(t, e, customers.NewQueries(e.pool))
	before := snapshot(t, e.pool)
	if err := observer.Rebuild(ctx, customers.Name, nil); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, e.pool)
	if !slices.Equal(before, after) {
		for i := range min(len(before), len(after)) {
			if before[i] != after[i] {
				t.Fatalf("after crashes:\n%s\nfresh rebuild:\n%s", before[i], after[i])
			}
		}
		t.Fatalf("after crashes %d customers, fresh rebuild %d", len(before), len(after))
	}
	if st := statusOf(t, observer, customers.Name); st.Generation != 2 {
		t.Fatalf("rebuild did not make a new generation: %+v", st)
	}
}

// TestFailover runs two projector processes: one is active, the other
// stands by and takes over when the active one is killed.
func TestFailover(t *testing.T) {
	url := pgtest.NewDatabase(t)
	e := newEnvAt(t, url, true)
	_, last := e.load(t, 91, 500)
	observer := e.newEngine(t, e.engineConfig(t))
	a := startChild(t, url, "proc-a", 100)
	waitFor(t, observer, last, time.Minute)
	eventually(t, 10*time.Second, "proc-a to own the projector", func() bool {
		st := statusOf(t, observer, customers.Name)
		return st.Owner == "proc-a" && st.State == projections.StateRunning
	})
	b := startChild(t, url, "proc-b", 100)
	// b holds a connection and keeps trying the lock, in vain.
	eventually(t, 10*time.Second, "proc-b to stand by", func() bool {
		var n int
		_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rapport-projector-customers' AND datname = current_database()`).Scan(&n)
		return n == 2
	})
	time.Sleep(300 * time.Millisecond)
	if st := statusOf(t, observer, customers.Name); st.Owner != "proc-a" {
		t.Fatalf("owner changed while proc-a lived: %+v", st)
	}
	_, last = e.load(t, 92, 200)
	waitFor(t, observer, last, time.Minute)

	a.kill()
	_, last = e.load(t, 93, 200)
	waitFor(t, observer, last, time.Minute)
	eventually(t, 10*time.Second, "proc-b to own the projector", func() bool {
		st := statusOf(t, observer, customers.Name)
		return st.Owner == "proc-b" && st.State == projections.StateRunning
	})
	compareModel(t, e, customers.NewQueries(e.pool))
	rep, err := observer.Verify(context.Background())
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	b.stop()
	eventually(t, 10*time.Second, "nobody to own the projector", func() bool {
		return statusOf(t, observer, customers.Name).State == projections.StateIdle
	})
}
