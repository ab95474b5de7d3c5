package app_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// stmtTracer times every statement a pgx connection sends, by connection
// (its application_name: one per projector) and by statement text, from
// the client. The database has no pg_stat_statements (it needs
// shared_preload_libraries), so this is the benchmark's substitute: on
// loopback, a statement's round trip is its server time plus a little.
type stmtTracer struct {
	mu    sync.Mutex
	stats map[stmtKey]*stmtStat
}

type stmtKey struct{ app, sql string }

type stmtStat struct {
	calls int64
	rows  int64
	total time.Duration
}

type traceStart struct {
	at  time.Time
	sql string
}

type traceKey struct{}

func newStmtTracer() *stmtTracer { return &stmtTracer{stats: map[stmtKey]*stmtStat{}} }

var (
	spaces  = regexp.MustCompile(`\s+`)
	schemas = regexp.MustCompile(`rm_[a-z0-9_]+_g[0-9]+`)
)

func normalizeSQL(sql string) string {
	s := spaces.ReplaceAllString(strings.TrimSpace(sql), " ")
	s = schemas.ReplaceAllString(s, "rm_*")
	if len(s) > 110 {
		s = s[:110]
	}
	return s
}

func (t *stmtTracer) add(conn *pgx.Conn, sql string, d time.Duration, rows int64) {
	app := "pool"
	if conn != nil {
		if a := conn.Config().RuntimeParams["application_name"]; a != "" {
			app = strings.TrimPrefix(a, "rapport-projector-")
		}
	}
	k := stmtKey{app, normalizeSQL(sql)}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats[k]
	if s == nil {
		s = &stmtStat{}
		t.stats[k] = s
	}
	s.calls++
	s.rows += rows
	s.total += d
}

func (t *stmtTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{time.Now(), data.SQL})
}

func (t *stmtTracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	if s, ok := ctx.Value(traceKey{}).(traceStart); ok {
		t.add(conn, s.sql, time.Since(s.at), data.CommandTag.RowsAffected())
	}
}

func (t *stmtTracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{time.Now(), "COPY " + data.TableName.Sanitize() + " (" + strings.Join(data.ColumnNames, ",") + ")"})
}

func (t *stmtTracer) TraceCopyFromEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceCopyFromEndData) {
	if s, ok := ctx.Value(traceKey{}).(traceStart); ok {
		t.add(conn, s.sql, time.Since(s.at), data.CommandTag.RowsAffected())
	}
}

func (t *stmtTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{time.Now(), "BATCH"})
}

func (t *stmtTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (t *stmtTracer) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, _ pgx.TraceBatchEndData) {
	if s, ok := ctx.Value(traceKey{}).(traceStart); ok {
		t.add(conn, s.sql, time.Since(s.at), 0)
	}
}

// report is the statements by total time, and the total by connection.
func (t *stmtTracer) report(top int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	type row struct {
		k stmtKey
		s stmtStat
	}
	var rows []row
	byApp := map[string]time.Duration{}
	var all time.Duration
	for k, s := range t.stats {
		rows = append(rows, row{k, *s})
		byApp[k.app] += s.total
		all += s.total
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(b.s.total, a.s.total) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "statement time seen by the client: %.1f s in all\n", all.Seconds())
	apps := make([]string, 0, len(byApp))
	for a := range byApp {
		apps = append(apps, a)
	}
	slices.SortFunc(apps, func(a, b string) int { return cmp.Compare(byApp[b], byApp[a]) })
	for _, a := range apps {
		fmt.Fprintf(&sb, "  %-12s %7.1f s\n", a, byApp[a].Seconds())
	}
	for i, r := range rows {
		if i == top {
			break
		}
		fmt.Fprintf(&sb, "%7.1f s %7d calls %9.2f ms/call %9d rows  [%s] %s\n", r.s.total.Seconds(), r.s.calls,
			float64(r.s.total.Microseconds())/1000/float64(r.s.calls), r.s.rows, r.k.app, r.k.sql)
	}
	return sb.String()
}

// backendCPU samples the CPU time of the database's server processes
// (from /proc, as the server runs on this machine) by application_name:
// what each projector costs PostgreSQL, whatever the load of the machine
// adds to the statements' wall time.
type backendCPU struct {
	mu    sync.Mutex
	ticks map[int]backendTicks // by pid: the latest sample
}

type backendTicks struct {
	app   string
	ticks int64
}

func newBackendCPU() *backendCPU { return &backendCPU{ticks: map[int]backendTicks{}} }

// run samples every interval until ctx ends.
func (c *backendCPU) run(ctx context.Context, pool interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c.sample(ctx, pool)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *backendCPU) sample(ctx context.Context, pool interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) {
	rows, err := pool.Query(ctx, `SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		return
	}
	type proc struct {
		pid int
		app string
	}
	procs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (proc, error) {
		var p proc
		err := r.Scan(&p.pid, &p.app)
		return p, err
	})
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range procs {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: utime and stime
		// are the 12th and 13th.
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		app := strings.TrimPrefix(p.app, "rapport-projector-")
		if app == "" {
			app = "pool"
		}
		c.ticks[p.pid] = backendTicks{app, u + st}
	}
}

// report is the CPU seconds by application_name (100 ticks a second),
// and in all.
func (c *backendCPU) report() (string, float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	by := map[string]int64{}
	var all int64
	for _, t := range c.ticks {
		by[t.app] += t.ticks
		all += t.ticks
	}
	apps := make([]string, 0, len(by))
	for a := range by {
		apps = append(apps, a)
	}
	slices.SortFunc(apps, func(a, b string) int { return cmp.Compare(by[b], by[a]) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "PostgreSQL CPU of this database's sessions: %.1f s\n", float64(all)/100)
	for _, a := range apps {
		fmt.Fprintf(&sb, "  %-12s %6.1f s\n", a, float64(by[a])/100)
	}
	return sb.String(), float64(all) / 100
}
