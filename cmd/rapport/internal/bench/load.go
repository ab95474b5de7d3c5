package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

const (
	// maxAttempts bounds the sends of a command during the load (the first
	// and its retries, on transport errors and 503 only).
	maxAttempts = 6
	// settleAttempts bounds the sends of a command whose outcome stayed
	// unknown, when it is settled after the load.
	settleAttempts = 10
)

// clientStats is what one client counted; merged after the load.
type clientStats struct {
	latencies       [numOps][]time.Duration
	accepted        [numOps]int64
	noop            [numOps]int64
	refused         [numOps]int64
	reasons         map[string]int64
	rateLimited     int64
	retries         int64
	transportErrors int64
	serverErrors    int64
	settled         int64
	unconfirmed     int64
	events          int64
}

// pending is a command whose outcome is unknown (transport errors or 503
// until the attempts ran out, or a 5xx): it is sent again with the same
// Idempotency-Key after the load, which settles it either way.
type pending struct {
	a       action
	payload []byte
	seq     uint32
}

// client is one of the concurrent clients.
type client struct {
	r        *runner
	id       int
	w        workload
	seq      uint32
	accepted int64
	stats    clientStats
	pending  []pending
	sampler  *sampler
}

// loadOutcome is the load phase's figures and what verification needs.
type loadOutcome struct {
	result    LoadResult
	lag       LagResult
	customers []*customer
	clients   []*client
}

// largest is the customer with the most events.
func (o *loadOutcome) largest() *customer {
	var best *customer
	for _, c := range o.customers {
		if best == nil || len(c.records) > len(best.records) {
			best = c
		}
	}
	if best == nil || len(best.records) == 0 {
		return nil
	}
	return best
}

// key is a command's Idempotency-Key and X-Correlation-ID.
func (r *runner) key(client int, seq uint32) string {
	return fmt.Sprintf("bench-%s-%d-%d", r.runID, client, seq)
}

func (r *runner) load(ctx context.Context) (*loadOutcome, error) {
	cfg := r.cfg
	smp := newSampler(ctx, r)
	clients := make([]*client, cfg.Clients)
	for i := range clients {
		clients[i] = &client{r: r, id: i, sampler: smp, stats: clientStats{reasons: map[string]int64{}},
			w: workload{rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i))), runID: r.runID, client: i}}
	}
	var (
		sent     atomic.Int64 // commands begun (for --commands)
		accepted atomic.Int64 // for the progress bar
		wg       sync.WaitGroup
	)
	start := time.Now()
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	// moreAt says whether a command sent (closed loop) or due (open loop)
	// at t is within the bounds.
	moreAt := func(t time.Time) bool {
		if !deadline.IsZero() && !t.Before(deadline) {
			return false
		}
		return cfg.Commands == 0 || sent.Add(1) <= cfg.Commands
	}
	more := func() bool { return moreAt(time.Now()) }
	bar := newLoadBar(cfg)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n := accepted.Load()
				elapsed := time.Since(start)
				bar.Describe(fmt.Sprintf("load: %d commands (%.0f/s)", n, float64(n)/elapsed.Seconds()))
				if cfg.Commands > 0 && cfg.Duration == 0 {
					_ = bar.Set64(min(sent.Load(), cfg.Commands))
				} else {
					_ = bar.Set64(min(elapsed.Milliseconds()/100, int64(cfg.Duration/(100*time.Millisecond))))
				}
			}
		}
	}()
	var openLoop *OpenLoopResult
	if cfg.Rate > 0 {
		openLoop = r.openLoop(ctx, clients, moreAt, &accepted)
	} else {
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && more() {
					c.step(ctx, &accepted, time.Time{})
				}
			}()
		}
		wg.Wait()
	}
	elapsed := time.Since(start)
	close(done)
	_ = bar.Finish()
	fmt.Fprintln(cfg.Progress)
	if ctx.Err() != nil {
		return nil, errInterrupted
	}
	smp.wait()

	// Settle the commands whose outcome is unknown.
	var pendingCount int
	for _, c := range clients {
		pendingCount += len(c.pending)
	}
	if pendingCount > 0 {
		fmt.Fprintf(cfg.Log, "bench: settling %d commands whose outcome was unknown (same Idempotency-Key)\n", pendingCount)
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.settle(ctx)
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return nil, errInterrupted
		}
	}

	out := &loadOutcome{clients: clients}
	for _, c := range clients {
		out.customers = append(out.customers, c.w.customers...)
	}
	out.result = summarize(clients, elapsed, len(out.customers))
	out.result.OpenLoop = openLoop
	out.lag = smp.result()
	return out, nil
}

func newLoadBar(cfg Config) *progressbar.ProgressBar {
	max := int64(cfg.Duration / (100 * time.Millisecond))
	if cfg.Commands > 0 && cfg.Duration == 0 {
		max = cfg.Commands
	}
	return progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(cfg.Progress),
		progressbar.OptionSetDescription("load"),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionFullWidth(),
	)
}

// step sends the workload's next command and updates the model. Its
// latency runs from due, the instant the open loop meant to send it, or
// (closed loop, due zero) from now.
func (c *client) step(ctx context.Context, accepted *atomic.Int64, due time.Time) {
	c.send(ctx, c.w.next(), accepted, due)
}

// send sends one command of the workload and updates the model.
func (c *client) send(ctx context.Context, a action, accepted *atomic.Int64, due time.Time) {
	c.seq++
	seq := c.seq
	payload, err := json.Marshal(a.body)
	if err != nil {
		panic(err) // the bodies are plain structs
	}
	start := due
	if start.IsZero() {
		start = time.Now()
	}
	ans, err := c.exchange(ctx, a, payload, seq, maxAttempts)
	answered := time.Now()
	if ctx.Err() != nil {
		return
	}
	switch {
	case err != nil || ans.status == http.StatusServiceUnavailable || ans.status >= 500:
		if err == nil && ans.status != http.StatusServiceUnavailable {
			c.stats.serverErrors++
			c.stats.reasons[fmt.Sprintf("%s: %d %s", a.op, ans.status, ans.problem().Reason)]++
		}
		if a.cust != nil {
			a.cust.tainted = true
		}
		c.pending = append(c.pending, pending{a: a, payload: payload, seq: seq})
	case ans.status/100 == 2:
		c.accept(a, ans, seq, answered.Sub(start), answered)
		accepted.Add(1)
	case ans.status == http.StatusTooManyRequests:
		c.stats.rateLimited++
		pause := min(max(ans.retryAfter, 100*time.Millisecond), time.Second)
		sleep(ctx, pause)
	default:
		c.refuse(a, ans)
	}
}

// exchange sends a command, again with the same Idempotency-Key after a
// transport error or a 503, at most attempts times.
func (c *client) exchange(ctx context.Context, a action, payload []byte, seq uint32, attempts int) (answer, error) {
	key := c.r.key(c.id, seq)
	header := map[string]string{"Idempotency-Key": key, "X-Correlation-ID": key}
	pause := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ans, err := c.r.api.do(ctx, a.method, a.path, c.r.api.key, payload, header)
		if err != nil {
			c.stats.transportErrors++
		}
		if err == nil && ans.status != http.StatusServiceUnavailable {
			return ans, nil
		}
		if attempt >= attempts || ctx.Err() != nil {
			return ans, err
		}
		c.stats.retries++
		wait := pause
		if ans.retryAfter > 0 {
			wait = min(ans.retryAfter, 5*time.Second)
		}
		if !sleep(ctx, wait) {
			return ans, ctx.Err()
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// accept records an accepted command in the model.
func (c *client) accept(a action, ans answer, seq uint32, latency time.Duration, answered time.Time) {
	var ca commandAnswer
	if err := json.Unmarshal(ans.body, &ca); err != nil || ca.CustomerID == "" {
		c.stats.serverErrors++
		c.stats.reasons[fmt.Sprintf("%s: %d with an unreadable answer", a.op, ans.status)]++
		return
	}
	cust := a.cust
	if a.op == opRegister {
		cust = a.registerAs
	}
	if a.apply != nil {
		a.apply(ca)
	}
	c.stats.accepted[a.op]++
	c.stats.latencies[a.op] = append(c.stats.latencies[a.op], latency)
	if !c.record(cust, a.op, ca, seq) {
		return
	}
	c.accepted++
	if every := c.r.cfg.LagSampleEvery; every > 0 && c.accepted%int64(every) == 0 {
		c.sampler.submit(cust.id, ca.Position, answered)
	}
}

// record notes the event an accepted command appended; false when it
// appended none (the revision did not move).
func (c *client) record(cust *customer, o op, ca commandAnswer, seq uint32) bool {
	if int64(ca.Revision) <= cust.rev {
		c.stats.noop[o]++
		return false
	}
	first := uint64(cust.rev + 1)
	cust.rev = int64(ca.Revision)
	cust.records = append(cust.records, record{first: first, rev: ca.Revision, pos: ca.Position, op: o, seq: seq})
	c.stats.events += int64(ca.Revision - first + 1)
	return true
}

func (c *client) refuse(a action, ans answer) {
	c.stats.refused[a.op]++
	c.stats.reasons[fmt.Sprintf("%s: %d %s", a.op, ans.status, ans.problem().Reason)]++
	if a.cust != nil && !expectedRefusal(a, ans) {
		a.cust.tainted = true // the model may be wrong: leave the customer alone
	}
}

// settle sends each command of unknown outcome again with its
// Idempotency-Key: the service answers the first outcome if it happened,
// or handles it now.
func (c *client) settle(ctx context.Context) {
	for _, p := range c.pending {
		ans, err := c.exchange(ctx, p.a, p.payload, p.seq, settleAttempts)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && ans.status/100 == 2:
			c.stats.settled++
			var ca commandAnswer
			if json.Unmarshal(ans.body, &ca) != nil {
				continue
			}
			cust := p.a.cust
			if p.a.op == opRegister {
				cust = p.a.registerAs
				cust.tainted = true
				p.a.apply(ca)
			} else if p.a.settleApply && p.a.apply != nil && int64(ca.Revision) > cust.rev {
				p.a.apply(ca)
			}
			c.stats.accepted[p.a.op]++
			c.record(cust, p.a.op, ca, p.seq)
		case err == nil && ans.status/100 == 4:
			c.refuse(p.a, ans)
		default:
			c.stats.unconfirmed++
			if p.a.cust != nil {
				p.a.cust.ambiguous = true
			}
		}
	}
}

// summarize merges the clients' figures.
func summarize(clients []*client, elapsed time.Duration, customers int) LoadResult {
	res := LoadResult{Clients: len(clients), Seconds: elapsed.Seconds(), Customers: customers, Refusals: map[string]int64{}}
	var all durations
	for o := range numOps {
		var lat durations
		t := CommandStats{Command: op(o).String()}
		for _, c := range clients {
			lat = append(lat, c.stats.latencies[o]...)
			t.Accepted += c.stats.accepted[o]
			t.NoOp += c.stats.noop[o]
			t.Refused += c.stats.refused[o]
		}
		all = append(all, lat...)
		t.setLatencies(lat)
		res.Accepted += t.Accepted
		res.Refused += t.Refused
		if t.Accepted+t.Refused > 0 {
			res.Commands = append(res.Commands, t)
		}
	}
	for _, c := range clients {
		res.Events += c.stats.events
		res.RateLimited += c.stats.rateLimited
		res.Retries += c.stats.retries
		res.TransportErrors += c.stats.transportErrors
		res.ServerErrors += c.stats.serverErrors
		res.Settled += c.stats.settled
		res.Unconfirmed += c.stats.unconfirmed
		for k, v := range c.stats.reasons {
			res.Refusals[k] += v
		}
	}
	sort.Slice(res.Commands, func(i, j int) bool { return res.Commands[i].Accepted > res.Commands[j].Accepted })
	res.All = CommandStats{Command: "all", Accepted: res.Accepted, Refused: res.Refused}
	res.All.setLatencies(all)
	for i := range res.Commands {
		if res.Accepted > 0 {
			res.Commands[i].SharePct = 100 * float64(res.Commands[i].Accepted) / float64(res.Accepted)
		}
	}
	res.All.SharePct = 100
	if res.Seconds > 0 {
		res.CommandsPerSecond = float64(res.Accepted) / res.Seconds
		res.EventsPerSecond = float64(res.Events) / res.Seconds
	}
	return res
}

// sampler measures projection lag: for a sampled command, the time from
// its answer until a min_position query at its position answers 200.
type sampler struct {
	ctx      context.Context
	r        *runner
	sem      chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	lags     durations
	dropped  atomic.Int64
	timedOut atomic.Int64
	failed   atomic.Int64
}

func newSampler(ctx context.Context, r *runner) *sampler {
	return &sampler{ctx: ctx, r: r, sem: make(chan struct{}, 4*r.cfg.Clients)}
}

// submit follows one command on its own goroutine; when too many are in
// flight the sample is dropped rather than delayed (a queued sample would
// measure the queue).
func (s *sampler) submit(customerID string, position uint64, answered time.Time) {
	path := s.r.api.lagPath(customerID, position)
	if path == "" {
		return
	}
	select {
	case s.sem <- struct{}{}:
	default:
		s.dropped.Add(1)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		ans, err := s.r.api.get(s.ctx, path, 60*time.Second)
		lag := time.Since(answered)
		switch {
		case err != nil:
			s.failed.Add(1)
		case ans.status == http.StatusServiceUnavailable:
			s.timedOut.Add(1)
		case ans.status != http.StatusOK:
			s.failed.Add(1)
		default:
			s.mu.Lock()
			s.lags = append(s.lags, lag)
			s.mu.Unlock()
		}
	}()
}

func (s *sampler) wait() { s.wg.Wait() }

func (s *sampler) result() LagResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := LagResult{
		Endpoint: s.r.api.lagEndpoint(),
		Every:    s.r.cfg.LagSampleEvery,
		Samples:  int64(len(s.lags)),
		Dropped:  s.dropped.Load(),
		TimedOut: s.timedOut.Load(),
		Failed:   s.failed.Load(),
	}
	res.P50Ms = s.lags.percentile(50)
	res.P99Ms = s.lags.percentile(99)
	res.MaxMs = s.lags.percentile(100)
	return res
}
