package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

// Result is everything a run measured; it is written as JSON so that runs
// can be compared across commits and machines.
type Result struct {
	Run          RunInfo         `json:"run"`
	Load         LoadResult      `json:"load"`
	Lag          LagResult       `json:"lag"`
	Verification Verification    `json:"verification"`
	Baseline     *BaselineResult `json:"baseline,omitempty"`
	Rebuild      *RebuildResult  `json:"rebuild,omitempty"`
	Audit        *AuditResult    `json:"audit_replay,omitempty"`
	// Skipped names the parts not measured, and why.
	Skipped    []string  `json:"skipped,omitempty"`
	Pass       bool      `json:"pass"`
	FinishedAt time.Time `json:"finished_at"`
}

// RunInfo says what ran where.
type RunInfo struct {
	ID             string    `json:"id"`
	StartedAt      time.Time `json:"started_at"`
	URL            string    `json:"url"`
	EventStore     string    `json:"event_store"`
	Clients        int       `json:"clients"`
	Duration       string    `json:"duration_limit,omitempty"`
	Commands       int64     `json:"commands_limit,omitempty"`
	Seed           uint64    `json:"seed"`
	LagSampleEvery int       `json:"lag_sample_every"`
	Machine        Machine   `json:"machine"`
}

// Machine describes where the bench ran (the service is assumed to run on
// the same machine unless the URL says otherwise).
type Machine struct {
	Hostname   string `json:"hostname"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	CPU        string `json:"cpu,omitempty"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	GitCommit  string `json:"git_commit,omitempty"`
	GitDirty   bool   `json:"git_dirty,omitempty"`
	Postgres   string `json:"postgres,omitempty"`
}

// LoadResult is the load phase.
type LoadResult struct {
	Clients   int     `json:"clients"`
	Seconds   float64 `json:"seconds"`
	Customers int     `json:"customers"`
	// Accepted commands (2xx), of which Events appended an event;
	// Refused by the rules (4xx other than 429: the workload's model should
	// make none).
	Accepted          int64   `json:"accepted"`
	Events            int64   `json:"events"`
	Refused           int64   `json:"refused"`
	CommandsPerSecond float64 `json:"commands_per_second"`
	EventsPerSecond   float64 `json:"events_per_second"`
	// RateLimited answers (429) are not sent again: the command did not
	// happen. Retries are sends again after a transport error or a 503.
	RateLimited     int64 `json:"rate_limited"`
	Retries         int64 `json:"retries"`
	TransportErrors int64 `json:"transport_errors"`
	ServerErrors    int64 `json:"server_errors"`
	// Settled: commands of unknown outcome confirmed after the load with
	// their Idempotency-Key; Unconfirmed: still unknown after that.
	Settled     int64            `json:"settled"`
	Unconfirmed int64            `json:"unconfirmed"`
	Refusals    map[string]int64 `json:"refusals,omitempty"`
	// Commands are the figures per command type, most frequent first;
	// latency is from the first send to the final answer (retries
	// included), accepted commands only.
	Commands []CommandStats `json:"commands"`
	All      CommandStats   `json:"all"`
	// OpenLoop is set when the commands were offered at a constant rate
	// (Config.Rate); latency then runs from each command's due instant.
	OpenLoop *OpenLoopResult `json:"open_loop,omitempty"`
}

// CommandStats are one command type's figures.
type CommandStats struct {
	Command  string  `json:"command"`
	Accepted int64   `json:"accepted"`
	NoOp     int64   `json:"no_op,omitempty"`
	Refused  int64   `json:"refused"`
	SharePct float64 `json:"share_pct"`
	P50Ms    float64 `json:"p50_ms"`
	P95Ms    float64 `json:"p95_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	MeanMs   float64 `json:"mean_ms"`
}

// LagResult is the projection lag: the time from a command's answer until
// a query with min_position=<its position> answered 200, for one accepted
// command in Every (on its own goroutine). It includes one query round trip;
// QueryRTTP50Ms is that query's median when nothing is left to wait for
// (measured during verification).
type LagResult struct {
	Endpoint      string  `json:"endpoint"`
	Every         int     `json:"every"`
	Samples       int64   `json:"samples"`
	Dropped       int64   `json:"dropped"`
	TimedOut      int64   `json:"timed_out"`
	Failed        int64   `json:"failed"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`
	QueryRTTP50Ms float64 `json:"query_rtt_p50_ms"`
}

func runInfo(ctx context.Context, cfg Config, id string) RunInfo {
	info := RunInfo{ID: id, StartedAt: time.Now().UTC(), URL: cfg.URL, EventStore: RedactURL(cfg.EventStore), Clients: cfg.Clients,
		Commands: cfg.Commands, Seed: cfg.Seed, LagSampleEvery: cfg.LagSampleEvery}
	if cfg.Duration > 0 {
		info.Duration = cfg.Duration.String()
	}
	host, _ := os.Hostname()
	info.Machine = Machine{Hostname: host, OS: runtime.GOOS, Arch: runtime.GOARCH, CPU: cpuModel(), NumCPU: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version()}
	info.Machine.GitCommit, info.Machine.GitDirty = gitCommit(ctx)
	if cfg.Pool != nil {
		var v string
		if err := cfg.Pool.QueryRow(ctx, `SHOW server_version`).Scan(&v); err == nil {
			info.Machine.Postgres = v
		}
	}
	return info
}

// RedactURL hides a password in a connection string.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// gitCommit is the commit the binary was built from (its VCS stamp), else
// the working directory's.
func gitCommit(ctx context.Context) (string, bool) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev string
		var dirty bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			return rev, dirty
		}
	}
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "", false
	}
	status, _ := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output()
	return strings.TrimSpace(string(out)), len(strings.TrimSpace(string(status))) > 0
}

// WriteMarkdown writes the results as Markdown tables, ending with the
// PASS or FAIL line.
func (r *Result) WriteMarkdown(w io.Writer) error {
	b := &strings.Builder{}
	m := r.Run.Machine
	commit := short(m.GitCommit)
	if m.GitDirty {
		commit += " (modified)"
	}
	fmt.Fprintf(b, "## Rapport bench %s\n\n", r.Run.StartedAt.Format(time.RFC3339))
	fmt.Fprintf(b, "Commit %s · %s · event store %s · %d clients · seed %d\n", orDash(commit), r.Run.URL, orDash(r.Run.EventStore), r.Run.Clients, r.Run.Seed)
	fmt.Fprintf(b, "Machine %s: %d CPUs (%s), GOMAXPROCS %d, %s %s/%s", m.Hostname, m.NumCPU, orDash(m.CPU), m.GOMAXPROCS, m.GoVersion, m.OS, m.Arch)
	if m.Postgres != "" {
		fmt.Fprintf(b, ", PostgreSQL %s", m.Postgres)
	}
	b.WriteString("\n\n")

	l := r.Load
	b.WriteString("| figure | value |\n|---|---|\n")
	row(b, "load", fmt.Sprintf("%d clients for %.1f s, %d customers", l.Clients, l.Seconds, l.Customers))
	if o := l.OpenLoop; o != nil {
		row(b, "**open loop: offered at a constant rate**", fmt.Sprintf("**%.0f/s**: %d commands due, %d sent more than 1 ms late (%d waited for a free client), latest by %.1f ms; latency from the due instant",
			o.OfferedPerSecond, o.Due, o.Late, o.NoClientFree, o.MaxLateMs))
	}
	row(b, "**commands accepted**", fmt.Sprintf("**%d (%.0f/s)**", l.Accepted, l.CommandsPerSecond))
	row(b, "events appended", fmt.Sprintf("%d (%.0f/s)", l.Events, l.EventsPerSecond))
	row(b, "latency p50 / p95 / p99, all commands", fmt.Sprintf("%.1f / %.1f / %.1f ms", l.All.P50Ms, l.All.P95Ms, l.All.P99Ms))
	row(b, "refused by the rules / rate-limited (429)", fmt.Sprintf("%d / %d", l.Refused, l.RateLimited))
	row(b, "retries (transport, 503) / server errors / settled / unconfirmed", fmt.Sprintf("%d / %d / %d / %d", l.Retries, l.ServerErrors, l.Settled, l.Unconfirmed))
	if r.Lag.Endpoint != "" {
		row(b, "projection lag p50 / p99 (max)", fmt.Sprintf("%.1f / %.1f ms (%.1f ms); %d samples, 1 in %d, via `%s`; query round trip alone p50 %.1f ms; %d dropped, %d timed out",
			r.Lag.P50Ms, r.Lag.P99Ms, r.Lag.MaxMs, r.Lag.Samples, r.Lag.Every, r.Lag.Endpoint, r.Lag.QueryRTTP50Ms, r.Lag.Dropped, r.Lag.TimedOut))
	} else {
		row(b, "projection lag", "not measured: the service serves no per-customer read endpoint")
	}
	if v := r.Verification; v.CaughtUpMs > 0 || !v.CaughtUp {
		row(b, "read models caught up after the load", fmt.Sprintf("%.0f ms", v.CaughtUpMs))
	}
	if bl := r.Baseline; bl != nil {
		row(b, "baseline: raw single-event INSERT tx/s", fmt.Sprintf("%.0f/s (%d connections, %d B data + %d B metadata, p50 %.2f ms, p99 %.2f ms)", bl.TPS, bl.Connections, bl.DataBytes, bl.MetaBytes, bl.P50Ms, bl.P99Ms))
		row(b, "**Rapport commands/s ÷ baseline**", fmt.Sprintf("**%.3f** (%.0f ÷ %.0f)", bl.Ratio, l.CommandsPerSecond, bl.TPS))
	}
	if rb := r.Rebuild; rb != nil {
		row(b, "rebuild, all projectors from 0", fmt.Sprintf("%d projectors, %d events in all, in %.2f s of builds (%.0f events/s)", len(rb.Projectors), rb.Events, rb.Seconds, rb.EventsPerSecond))
		if rb.Together {
			row(b, "**rebuild together: log events/s**", fmt.Sprintf("**%.0f** (%d log events in %.2f s of wall time; %.0f projector-events/s)", rb.LogEventsPerSecond, rb.LogEvents, rb.Seconds, rb.EventsPerSecond))
		}
	}
	if a := r.Audit; a != nil {
		row(b, "audit replay, largest customer", fmt.Sprintf("%d events: GET /events (NDJSON, %d B) %.1f ms, GET /state %.1f ms, GET /verification %.1f ms", a.Events, a.EventsBytes, a.EventsMs, a.StateMs, a.VerificationMs))
	}
	for _, s := range r.Skipped {
		row(b, "skipped", s)
	}

	from := "first send"
	if l.OpenLoop != nil {
		from = "the instant it was due (open loop)"
	}
	fmt.Fprintf(b, "\n### Latency by command (accepted; ms, from %s to answer)\n\n", from)
	b.WriteString("| command | accepted | share | p50 | p95 | p99 | max | refused |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, c := range append(append([]CommandStats(nil), l.Commands...), l.All) {
		fmt.Fprintf(b, "| %s | %d | %.1f%% | %.1f | %.1f | %.1f | %.1f | %d |\n", c.Command, c.Accepted, c.SharePct, c.P50Ms, c.P95Ms, c.P99Ms, c.MaxMs, c.Refused)
	}
	if len(l.Refusals) > 0 {
		b.WriteString("\nRefusals and errors: ")
		keys := make([]string, 0, len(l.Refusals))
		for k := range l.Refusals {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(b, "%s ×%d", k, l.Refusals[k])
		}
		b.WriteString("\n")
	}

	if rb := r.Rebuild; rb != nil {
		b.WriteString("\n### Rebuild (from position 0, one projector after the other; build = the new generation's creation to activation, wall = request to serving as the bench saw it)\n\n| projector | events | build s | wall s | events/s |\n|---|--:|--:|--:|--:|\n")
		for _, p := range rb.Projectors {
			fmt.Fprintf(b, "| %s | %d | %.2f | %.2f | %.0f |\n", p.Name, p.Events, p.BuildSeconds, p.Seconds, p.EventsPerSecond)
		}
	}

	v := r.Verification
	b.WriteString("\n### Verification\n\n| check | result |\n|---|---|\n")
	row(b, "event store: each accepted command's event at its answered revision, with its type, position and correlation id",
		fmt.Sprintf("%d commands on %d customers, %d events read: **%d lost**, %d wrong, %d unexpected%s", v.CommandsChecked, v.Customers, v.EventsRead, v.Lost, v.WrongEvents, v.Unexpected, ambiguousNote(v.Ambiguous)))
	row(b, "projections reached the last accepted position", yesNo(v.CaughtUp, v.CaughtUpError))
	row(b, "directory `GET /v1/customers/{id}`: revision ≥ last accepted", readModelLine(v.Directory, "behind"))
	row(b, "audit history `GET /v1/customers/{id}/history`: every accepted revision and type", readModelLine(v.History, "missing"))
	row(b, "value `GET /v1/customers/{id}` and `…/loyalty`: frequency, monetary and currency of the accepted purchases less refunds; every accepted ledger line; balance = ledger sum", readModelLine(v.Value, "entries"))
	if v.ReconciliationSkipped != "" {
		row(b, "Engine.Verify (reconciliation)", "skipped: "+v.ReconciliationSkipped)
	}
	for _, p := range v.Reconciliation {
		row(b, "Engine.Verify "+p.Name, reconcileLine(p))
	}
	for _, p := range v.ReconciliationAfterRebuild {
		row(b, "Engine.Verify "+p.Name+" after its rebuild", reconcileLine(p))
	}
	if a := r.Audit; a != nil && a.Intact != nil {
		row(b, "hash chain of the largest customer", yesNo(*a.Intact, "broken"))
	}
	if len(v.Problems) > 0 {
		b.WriteString("\nFirst problems:\n\n")
		for _, p := range v.Problems {
			fmt.Fprintf(b, "- %s\n", p)
		}
	}
	b.WriteString("\n")
	if r.Pass {
		fmt.Fprintf(b, "PASS: 0 lost of %d accepted commands (%d events); the event store and every read model checked reflect them.\n", l.Accepted, l.Events)
	} else {
		fmt.Fprintf(b, "FAIL: %s\n", strings.Join(v.Failures, "; "))
	}
	if l.RateLimited > 0 {
		fmt.Fprintf(b, "WARNING: %d commands were refused with 429 (rate-limited): the service's per-key limit (--rate-limit, RAPPORT_RATE_LIMIT, default 200/s) capped the load; start the service with RAPPORT_RATE_LIMIT=1000000 RAPPORT_RATE_BURST=1000000 to measure it.\n", l.RateLimited)
	}
	if l.Unconfirmed > 0 || l.ServerErrors > 0 {
		fmt.Fprintf(b, "WARNING: %d server errors, %d commands of unknown outcome after settling.\n", l.ServerErrors, l.Unconfirmed)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func row(b *strings.Builder, k, v string) { fmt.Fprintf(b, "| %s | %s |\n", k, v) }

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func yesNo(ok bool, why string) string {
	if ok {
		return "yes"
	}
	return "**NO**: " + why
}

func ambiguousNote(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d on customers with an unconfirmed command, not counted)", n)
}

func readModelLine(c ReadModelCheck, what string) string {
	if !c.Served {
		return "not served by this service: skipped"
	}
	switch what {
	case "missing":
		return fmt.Sprintf("%d customers: %d behind, %d revisions missing", c.Customers, c.Behind, c.Missing)
	case "entries":
		return fmt.Sprintf("%d customers: %d behind, %d entries missing or wrong", c.Customers, c.Behind, c.Missing)
	}
	return fmt.Sprintf("%d customers: %d behind", c.Customers, c.Behind)
}

func reconcileLine(p ProjectorCheck) string {
	verdict := "matches the log"
	if !p.OK {
		verdict = fmt.Sprintf("**DIFFERS**: %d missing, %d extra, %d revision mismatches", p.Missing, p.Extra, p.Mismatches)
	}
	return fmt.Sprintf("generation %d, checkpoint %d, %d streams: %s", p.Generation, p.Checkpoint, p.Streams, verdict)
}
