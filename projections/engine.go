package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// States of a projector, as Status reports them.
const (
	// StateRunning: the active generation follows the log live.
	StateRunning = "running"
	// StateCatchingUp: the active generation is reading the log's backlog.
	StateCatchingUp = "catching_up"
	// StateRebuilding: a new generation is being built while the active one
	// serves (Status.Rebuild has the progress).
	StateRebuilding = "rebuilding"
	// StateStandby: another process is active; this one takes over when
	// that one dies.
	StateStandby = "standby"
	// StateStopped: a message the engine could not read stopped the
	// projector; Status.Poison says which. (Events it cannot apply park
	// their stream instead: Status.Parked.)
	StateStopped = "stopped"
	// StateStarting: the lock was just taken.
	StateStarting = "starting"
	// StateIdle: no process runs the projector.
	StateIdle = "idle"
)

// Engine runs projectors: each as a handler on a Watermill router fed by a
// Subscriber, at most one process at a time per projector (a Postgres
// session advisory lock), rebuilt without downtime into a new generation
// when asked or when its Version changes.
type Engine struct {
	cfg      Config
	runners  []*runner
	byName   map[string]*runner
	metrics  *metrics
	wmLogger watermill.LoggerAdapter
	commits  eventstore.Signal // wakes WaitForPosition after commits here
	// decoded shares decoded events between the projectors; nil when
	// disabled.
	decoded *lru.Cache[eventstore.Position, eventcodec.Decoded]
	// shared reads the log once for every generation; nil with
	// PrivateReaders.
	shared  *SharedReader
	runMu   sync.Mutex
	running bool
}

// New returns an engine for cfg. It does no I/O.
func New(cfg Config) (*Engine, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, byName: map[string]*runner{}, metrics: m}
	e.wmLogger = newWatermillLogger(cfg.Logger)
	if cfg.DecodeCacheSize > 0 {
		if e.decoded, err = lru.New[eventstore.Position, eventcodec.Decoded](cfg.DecodeCacheSize); err != nil {
			return nil, err
		}
	}
	if !cfg.PrivateReaders {
		if e.shared, err = NewSharedReader(SharedReaderConfig{Store: cfg.Store, StreamPrefixes: cfg.StreamPrefixes, Window: cfg.SharedWindow, Stall: cfg.SharedStall}); err != nil {
			return nil, err
		}
	}
	for _, p := range cfg.Projectors {
		rt := &runner{e: e, p: p, handles: map[string]bool{}, kick: make(chan struct{}, 1)}
		for _, t := range p.Handles() {
			rt.handles[t] = true
		}
		rt.lock = newLockConn(e, p.Name())
		e.runners = append(e.runners, rt)
		e.byName[p.Name()] = rt
		m.setState(p.Name(), StateIdle)
	}
	return e, nil
}

// Run runs every projector until ctx ends: each one in this process if it
// can take the projector's lock, else standing by to take over. On return
// the batches in hand were committed and the locks released.
func (e *Engine) Run(ctx context.Context) error {
	e.runMu.Lock()
	if e.running {
		e.runMu.Unlock()
		return errors.New("projections: engine already running")
	}
	e.running = true
	e.runMu.Unlock()
	defer func() {
		e.runMu.Lock()
		e.running = false
		e.runMu.Unlock()
	}()

	var wg sync.WaitGroup
	for _, rt := range e.runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt.run(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.metricsLoop(ctx)
	}()
	wg.Wait()
	return nil
}

func (e *Engine) runner(name string) (*runner, error) {
	rt, ok := e.byName[name]
	if !ok {
		return nil, fmt.Errorf("projections: unknown projector %q", name)
	}
	return rt, nil
}

// runner is one projector in this process.
type runner struct {
	e       *Engine
	p       Projector
	handles map[string]bool
	lock    *lockConn
	kick    chan struct{} // an in-process rebuild request

	mu      sync.Mutex
	role    string // "", "standby", "active"
	live    *worker
	builder *worker
}

// run takes the lock (standing by until it can) and runs the projector,
// again and again until ctx ends.
func (rt *runner) run(ctx context.Context) {
	log := rt.e.cfg.Logger.With("projector", rt.p.Name())
	for ctx.Err() == nil {
		ok, err := rt.lock.tryLock(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("projections: could not try the projector lock", "err", err)
		}
		if !ok {
			rt.setRole(StateStandby)
			sleepCtx(ctx, rt.e.cfg.LockRetryInterval)
			continue
		}
		log.Info("projections: this process is now active for the projector")
		err = rt.own(ctx, ownOptions{})
		rt.setRole("")
		rt.lock.release(context.Background())
		if ctx.Err() != nil {
			break
		}
		log.Warn("projections: projector stopped here; standing by", "err", err)
		sleepCtx(ctx, rt.e.cfg.LockRetryInterval)
	}
	rt.setRole("")
	rt.e.metrics.setState(rt.p.Name(), StateIdle)
}

func (rt *runner) setRole(role string) {
	rt.mu.Lock()
	changed := rt.role != role
	rt.role = role
	rt.mu.Unlock()
	if changed {
		rt.stateChanged()
	}
}

// localState is the state this process gives the projector, or "" when it
// neither runs it nor stands by.
func (rt *runner) localState() string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	switch rt.role {
	case "":
		return ""
	case StateStandby:
		return StateStandby
	}
	if rt.live != nil {
		if rt.live.err() != nil && errors.As(rt.live.err(), new(*PoisonError)) {
			return StateStopped
		}
	}
	if rt.builder != nil {
		return StateRebuilding
	}
	if rt.live == nil {
		return StateStarting
	}
	if _, _, caughtUp := rt.live.progress(); !caughtUp {
		return StateCatchingUp
	}
	return StateRunning
}

// stateChanged updates the state metric and, for the active process, the
// state other processes read.
func (rt *runner) stateChanged() {
	state := rt.localState()
	if state == "" {
		state = StateIdle
	}
	rt.e.metrics.setState(rt.p.Name(), state)
	rt.mu.Lock()
	active := rt.role != "" && rt.role != StateStandby
	rt.mu.Unlock()
	if active {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = rt.e.cfg.Pool.Exec(ctx, `UPDATE projections.projectors SET state = $2, owner = $3, updated_at = now() WHERE name = $1`,
			rt.p.Name(), state, rt.e.cfg.Instance)
	}
}
