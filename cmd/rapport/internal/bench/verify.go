package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/projections"
)

// Verification is what the bench checked after the load. Pass is the only
// verdict: zero lost, nothing wrong or unexpected, every read model
// caught up and reflecting every accepted command.
type Verification struct {
	// Customers touched and accepted commands that appended an event.
	Customers       int   `json:"customers"`
	CommandsChecked int64 `json:"commands_checked"`
	// EventsRead from the event store (GET /v1/customers/{id}/events).
	EventsRead int64 `json:"events_read"`
	// Lost: accepted commands whose event is not at the revision their
	// answer reported. WrongEvents: an event is there but its type,
	// position or correlation id is not the command's. Unexpected: events
	// no answer reported (a retry appended twice…). Ambiguous: such events
	// on customers whose command stayed unconfirmed, so possibly that
	// command's (not a failure).
	Lost        int64 `json:"lost"`
	WrongEvents int64 `json:"wrong_events"`
	Unexpected  int64 `json:"unexpected"`
	Ambiguous   int64 `json:"ambiguous"`
	// CaughtUp: the projections reached the last accepted position;
	// CaughtUpMs is how long that took after the load ended.
	CaughtUp      bool    `json:"caught_up"`
	CaughtUpMs    float64 `json:"caught_up_ms"`
	CaughtUpError string  `json:"caught_up_error,omitempty"`
	// Directory: the customer's revision read back (GET /v1/customers/{id})
	// is at least the last accepted; History: every accepted revision is in
	// the audit history with the command's event type.
	Directory ReadModelCheck `json:"directory"`
	History   ReadModelCheck `json:"history"`
	// Value: the value read model of every customer with purchases or
	// points: its frequency, monetary value and currency
	// (GET /v1/customers/{id}) are the accepted purchases' less their
	// refunds, and the loyalty ledger (GET /v1/customers/{id}/loyalty)
	// holds every accepted award, redemption, purchase's points and
	// revocation, with a balance that is its sum.
	Value ReadModelCheck `json:"value"`
	// Reconciliation is projections.Engine.Verify over every projector,
	// after the load and again after the rebuilds.
	Reconciliation             []ProjectorCheck `json:"reconciliation"`
	ReconciliationAfterRebuild []ProjectorCheck `json:"reconciliation_after_rebuild,omitempty"`
	ReconciliationSkipped      string           `json:"reconciliation_skipped,omitempty"`
	// Problems are the first problems found, in words.
	Problems []string `json:"problems,omitempty"`
	// ChainBroken says the largest customer's hash chain did not verify.
	ChainBroken string `json:"chain_broken,omitempty"`
	// Failures say why Pass is false.
	Failures []string `json:"failures,omitempty"`
	Pass     bool     `json:"pass"`

	queryRTT durations
}

// ReadModelCheck is the per-customer check of one read model.
type ReadModelCheck struct {
	Endpoint  string `json:"endpoint"`
	Served    bool   `json:"served"`
	Customers int    `json:"customers_checked"`
	// Behind counts customers whose read model lacks an accepted command.
	Behind int `json:"behind"`
	// Missing counts accepted revisions absent (or of another type).
	Missing int64 `json:"missing_revisions"`
}

// ProjectorCheck is one projector's reconciliation with the log.
type ProjectorCheck struct {
	Name       string `json:"name"`
	Generation int    `json:"generation"`
	Checkpoint uint64 `json:"checkpoint"`
	Streams    int    `json:"streams"`
	Missing    int    `json:"missing"`
	Extra      int    `json:"extra"`
	Mismatches int    `json:"mismatches"`
	OK         bool   `json:"ok"`
}

const maxProblems = 20

// checker collects the per-customer results.
type checker struct {
	mu sync.Mutex
	v  *Verification
}

func (c *checker) problem(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.v.Problems) < maxProblems {
		c.v.Problems = append(c.v.Problems, fmt.Sprintf(format, args...))
	}
}

func (r *runner) verify(ctx context.Context, load *loadOutcome) (Verification, error) {
	v := Verification{
		Directory: ReadModelCheck{Endpoint: "GET /v1/customers/{id}", Served: r.api.directory},
		History:   ReadModelCheck{Endpoint: "GET /v1/customers/{id}/history", Served: r.api.history},
		Value:     ReadModelCheck{Endpoint: "GET /v1/customers/{id}/loyalty", Served: r.api.loyalty},
	}
	var last uint64
	for _, c := range load.customers {
		if len(c.records) > 0 {
			v.Customers++
			v.CommandsChecked += int64(len(c.records))
			last = max(last, c.lastPosition())
		}
	}

	// Wait for every projector to pass the last accepted position. Without
	// the engine, each read below waits with its own min_position.
	v.CaughtUp = true
	if r.cfg.Engine != nil && last > 0 {
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := r.cfg.Engine.WaitForPosition(wctx, eventstore.Position(last))
		cancel()
		v.CaughtUpMs = ms(time.Since(start))
		if err != nil {
			if ctx.Err() != nil {
				return v, errInterrupted
			}
			v.CaughtUp = false
			v.CaughtUpError = err.Error()
		}
	}

	ck := &checker{v: &v}
	work := make(chan *customer)
	var wg sync.WaitGroup
	for range max(r.cfg.Clients, 8) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				r.checkCustomer(ctx, ck, c)
			}
		}()
	}
	bar := newCountBar(r.cfg.Progress, "verify", int64(v.Customers), "customers")
	for _, c := range load.customers {
		if len(c.records) == 0 {
			continue
		}
		select {
		case work <- c:
			_ = bar.Add(1)
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	_ = bar.Finish()
	fmt.Fprintln(r.cfg.Progress)
	if ctx.Err() != nil {
		return v, errInterrupted
	}

	if r.cfg.Engine != nil {
		checks, err := r.reconcile(ctx)
		if err != nil {
			return v, err
		}
		v.Reconciliation = checks
	} else {
		v.ReconciliationSkipped = "no access to the service's stores (DATABASE_URL, RAPPORT_MASTER_KEY)"
	}
	return v, nil
}

// reconcile runs the engine's reconciliation of every projector.
func (r *runner) reconcile(ctx context.Context) ([]ProjectorCheck, error) {
	report, err := r.cfg.Engine.Verify(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: reconcile the read models: %w", err)
	}
	checks := make([]ProjectorCheck, 0, len(report.Projectors))
	for _, p := range report.Projectors {
		checks = append(checks, projectorCheck(p))
	}
	return checks, nil
}

func projectorCheck(p projections.ProjectorReport) ProjectorCheck {
	return ProjectorCheck{Name: p.Name, Generation: p.Generation, Checkpoint: uint64(p.Checkpoint), Streams: p.Streams,
		Missing: len(p.Missing), Extra: len(p.Extra), Mismatches: len(p.Mismatches), OK: p.OK()}
}

// storedEvent is the part of an event of GET /events the bench checks.
type storedEvent struct {
	Revision      uint64 `json:"revision"`
	Position      uint64 `json:"position"`
	Type          string `json:"type"`
	CorrelationID string `json:"correlation_id"`
}

// readEvents reads a customer's whole history as NDJSON.
func (r *runner) readEvents(ctx context.Context, id string) (answer, []storedEvent, error) {
	ans, err := r.api.read(ctx, "/v1/customers/"+id+"/events", map[string]string{"Accept": "application/x-ndjson"}, 60*time.Second)
	if err != nil || ans.status != http.StatusOK {
		return ans, nil, err
	}
	var events []storedEvent
	sc := bufio.NewScanner(bytes.NewReader(ans.body))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e storedEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return ans, events, fmt.Errorf("bench: events of %s: %w", id, err)
		}
		events = append(events, e)
	}
	return ans, events, sc.Err()
}

func (r *runner) checkCustomer(ctx context.Context, ck *checker, c *customer) {
	var (
		lost, wrong, unexpected, ambiguous, read int64
		dirBehind, histBehind                    bool
		histMissing                              int64
		valueChecked, valueBehind                bool
		valueMissing                             int64
		rtt                                      time.Duration
	)
	defer func() {
		ck.mu.Lock()
		defer ck.mu.Unlock()
		v := ck.v
		v.Lost += lost
		v.WrongEvents += wrong
		v.Unexpected += unexpected
		v.Ambiguous += ambiguous
		v.EventsRead += read
		if v.Directory.Served {
			v.Directory.Customers++
			if dirBehind {
				v.Directory.Behind++
			}
		}
		if v.History.Served {
			v.History.Customers++
			v.History.Missing += histMissing
			if histBehind {
				v.History.Behind++
			}
		}
		if v.Value.Served && valueChecked {
			v.Value.Customers++
			v.Value.Missing += valueMissing
			if valueBehind {
				v.Value.Behind++
			}
		}
		if rtt > 0 {
			v.queryRTT = append(v.queryRTT, rtt)
		}
	}()

	// The event store: every answered revision, with the command's type,
	// position and correlation id, and nothing else.
	ans, events, err := r.readEvents(ctx, c.id)
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		lost = int64(len(c.records))
		ck.problem("customer %s: events unreadable: %v", c.id, err)
		return
	case ans.status != http.StatusOK:
		lost = int64(len(c.records))
		ck.problem("customer %s: GET /events answered %d %s: all %d accepted commands lost", c.id, ans.status, ans.problem().Reason, len(c.records))
		return
	}
	read = int64(len(events))
	byRev := make(map[uint64]storedEvent, len(events))
	for _, e := range events {
		byRev[e.Revision] = e
	}
	want := make(map[uint64]bool, len(c.records))
	for _, rec := range c.records {
		// A command's events are at first..rev; the answer reported the
		// last one's position.
		for rev := rec.first; rev <= rec.rev; rev++ {
			want[rev] = true
			e, ok := byRev[rev]
			switch {
			case !ok:
				lost++
				ck.problem("LOST customer %s revision %d (%s, position %d): not in the event store", c.id, rev, rec.op, rec.pos)
			case e.Type != eventType(rec, rev):
				wrong++
				ck.problem("customer %s revision %d: %s in the store, the command was %s (%s)", c.id, rev, e.Type, rec.op, eventType(rec, rev))
			case rev == rec.rev && e.Position != rec.pos:
				wrong++
				ck.problem("customer %s revision %d: at position %d in the store, the answer said %d", c.id, rev, e.Position, rec.pos)
			case e.CorrelationID != r.key(c.client, rec.seq):
				wrong++
				ck.problem("customer %s revision %d: correlation id %q, the command sent %q", c.id, rev, e.CorrelationID, r.key(c.client, rec.seq))
			}
		}
	}
	for _, e := range events {
		if want[e.Revision] {
			continue
		}
		if c.ambiguous {
			ambiguous++
			continue
		}
		unexpected++
		ck.problem("customer %s revision %d: %s (correlation %q) in the store, no answer reported it", c.id, e.Revision, e.Type, e.CorrelationID)
	}

	last := c.records[len(c.records)-1]
	// The directory (and the lag query's round trip, now that nothing is
	// left to wait for).
	if path := r.api.lagPath(c.id, last.pos); path != "" {
		ans, err := r.api.get(ctx, path, 60*time.Second)
		rtt = ans.took
		if r.api.directory {
			var got struct {
				Revision uint64      `json:"revision"`
				Value    *valueFacts `json:"value"`
			}
			switch {
			case ctx.Err() != nil:
				return
			case err != nil || ans.status != http.StatusOK:
				dirBehind = true
				ck.problem("customer %s: the directory answered %d %s (%v)", c.id, ans.status, ans.problem().Reason, err)
			case json.Unmarshal(ans.body, &got) != nil || got.Revision < last.rev:
				dirBehind = true
				ck.problem("customer %s: the directory is at revision %d, the last accepted command at %d", c.id, got.Revision, last.rev)
			}
			if got.Value != nil && c.value.has() && !c.value.unknown && !c.ambiguous {
				valueChecked = true
				if !c.value.matches(*got.Value) {
					valueBehind = true
					f, m := c.value.net()
					ck.problem("customer %s: the value read model says %d purchases, %s %v; the accepted purchases less refunds are %d, %s %s",
						c.id, got.Value.Frequency, got.Value.Monetary, deref(got.Value.Currency), f, formatMinor(m, c.value.decimals), c.value.currency)
				}
			}
		}
	}
	if r.api.loyalty && c.value.has() {
		valueChecked = true
		missing, err := r.checkLoyalty(ctx, ck, c, last.pos)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			missing = max(missing, 1)
			ck.problem("customer %s: loyalty unreadable: %v", c.id, err)
		}
		if missing > 0 {
			valueBehind = true
			valueMissing = missing
		}
	}
	if r.api.history {
		types, err := r.readHistory(ctx, c.id, last.pos)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			histBehind = true
			histMissing = int64(len(c.records))
			ck.problem("customer %s: history unreadable: %v", c.id, err)
			return
		}
		for _, rec := range c.records {
			for rev := rec.first; rev <= rec.rev; rev++ {
				if types[rev] != eventType(rec, rev) {
					histMissing++
					histBehind = true
					ck.problem("customer %s revision %d (%s): the audit history has %q", c.id, rev, rec.op, types[rev])
				}
			}
		}
	}
}

// eventType is the type of the event a command appended at rev: its
// first, then its follow-up (a purchase's points, a refund's revocation).
// A command with more events than that has an empty type past them, which
// no stored event matches.
func eventType(rec record, rev uint64) string {
	switch rev - rec.first {
	case 0:
		return opEvents[rec.op]
	case 1:
		return opFollowUps[rec.op]
	}
	return ""
}

// readHistory reads a customer's whole audit history: revision → type.
func (r *runner) readHistory(ctx context.Context, id string, position uint64) (map[uint64]string, error) {
	types := map[uint64]string{}
	cursor := ""
	for {
		// The server's default page size: its bounds are its business.
		q := url.Values{"min_position": {strconv.FormatUint(position, 10)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		ans, err := r.api.get(ctx, "/v1/customers/"+id+"/history?"+q.Encode(), 60*time.Second)
		if err != nil {
			return types, err
		}
		if ans.status != http.StatusOK {
			return types, fmt.Errorf("GET /history answered %d %s: %s", ans.status, ans.problem().Reason, ans.body)
		}
		var page struct {
			Items []struct {
				Revision uint64 `json:"revision"`
				Type     string `json:"type"`
			} `json:"items"`
			NextCursor *string `json:"next_cursor"`
		}
		if err := json.Unmarshal(ans.body, &page); err != nil {
			return types, err
		}
		for _, it := range page.Items {
			types[it.Revision] = it.Type
		}
		if page.NextCursor == nil || *page.NextCursor == "" || len(page.Items) == 0 {
			return types, nil
		}
		cursor = *page.NextCursor
	}
}

// judge decides Pass and says why not.
func (v *Verification) judge() {
	var f []string
	if v.CommandsChecked == 0 {
		f = append(f, "no command was accepted: nothing was measured")
	}
	if v.Lost > 0 {
		f = append(f, fmt.Sprintf("%d accepted commands lost: their events are not in the event store", v.Lost))
	}
	if v.WrongEvents > 0 {
		f = append(f, fmt.Sprintf("%d events differ from what their command's answer reported", v.WrongEvents))
	}
	if v.Unexpected > 0 {
		f = append(f, fmt.Sprintf("%d events in the store that no answer reported (duplicates?)", v.Unexpected))
	}
	if !v.CaughtUp {
		f = append(f, "the projections did not reach the last accepted position: "+v.CaughtUpError)
	}
	if v.Directory.Behind > 0 {
		f = append(f, fmt.Sprintf("the directory lacks accepted commands of %d customers", v.Directory.Behind))
	}
	if v.Value.Behind > 0 {
		f = append(f, fmt.Sprintf("the value read model lacks or differs from accepted purchases and points (%d entries, %d customers)", v.Value.Missing, v.Value.Behind))
	}
	if v.History.Behind > 0 {
		f = append(f, fmt.Sprintf("the audit history lacks %d accepted revisions (%d customers)", v.History.Missing, v.History.Behind))
	}
	if v.ChainBroken != "" {
		f = append(f, v.ChainBroken)
	}
	for _, p := range v.Reconciliation {
		if !p.OK {
			f = append(f, fmt.Sprintf("reconciliation of %s: %d missing, %d extra, %d revision mismatches", p.Name, p.Missing, p.Extra, p.Mismatches))
		}
	}
	for _, p := range v.ReconciliationAfterRebuild {
		if !p.OK {
			f = append(f, fmt.Sprintf("reconciliation of %s after its rebuild: %d missing, %d extra, %d revision mismatches", p.Name, p.Missing, p.Extra, p.Mismatches))
		}
	}
	v.Failures = f
	v.Pass = len(f) == 0
}
