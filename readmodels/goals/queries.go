package goals

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// Figures computes the analytics figures a goal is judged by: the
// analytics queries, so that a goal's figure is the figure the analytics
// endpoints answer for the same period and group.
type Figures interface {
	Report(ctx context.Context, f analytics.Family, p analytics.Params) (analytics.Report, error)
	Reads(f analytics.Family) []string
}

// Goal is one goal as the API shows it: what it is, who set it, and its
// figures and judgement at the time of the query.
type Goal struct {
	ID          uuid.UUID
	Name        string
	Figure      string
	Comparator  domain.Comparator
	Target      float64
	From, To    time.Time
	Scope       domain.GoalScope
	Closed      bool
	CloseReason *string
	SetBy       string
	SetAt       time.Time
	RevisedBy   *string
	RevisedAt   *time.Time
	ClosedBy    *string
	ClosedAt    *time.Time
	Revision    uint64
	Position    uint64

	// BaselineWindow and CurrentWindow are the periods of Baseline and
	// Current (Windows); nil when they do not exist.
	BaselineWindow, CurrentWindow *Window
	// Baseline and Current are the goal's figure over those windows, nil
	// when undefined.
	Baseline, Current *float64
	Judgement
}

// State filters the list: open goals, closed ones or all.
type State string

const (
	StateOpen   State = "open"
	StateClosed State = "closed"
	StateAll    State = "all"
)

// ListParams filter the list of goals.
type ListParams struct {
	// State is open (the default), closed or all.
	State State
	// Figure, when set, keeps the goals on that figure.
	Figure string
}

// Cursor is the kind of the goal list's cursors (set_at, goal id).
const Cursor readmodel.CursorKind = "gl"

// ErrNotFound is returned for a goal the read model lacks.
var ErrNotFound = errors.New("goals: goal not found")

// Queries reads goals and judges them.
type Queries struct {
	pool    *pgxpool.Pool
	figures Figures
	now     func() time.Time
	// parallel bounds the figure queries one request runs at once.
	parallel int
}

// NewQueries returns the queries; figures computes the goals' figures.
func NewQueries(pool *pgxpool.Pool, figures Figures) *Queries {
	return &Queries{pool: pool, figures: figures, now: time.Now, parallel: 4}
}

// WithClock returns queries that judge goals at now() (tests).
func (q *Queries) WithClock(now func() time.Time) *Queries {
	c := *q
	c.now = now
	return &c
}

// Reads names the projectors the answers read: this one's and those of
// every figure a goal may be on.
func (q *Queries) Reads() []string {
	out := []string{Name}
	for _, n := range q.figures.Reads(analytics.KPIs) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

const columns = `goal_id, name, figure, comparator, target, period_from, period_to,
	coalesce(scope_segment, ''), coalesce(scope_tier, ''), coalesce(scope_region, ''), coalesce(scope_owner, ''),
	closed, close_reason, set_by, set_at, revised_by, revised_at, closed_by, closed_at, revision, position`

func scan(row pgx.CollectableRow) (Goal, error) {
	var g Goal
	var comparator string
	var rev, pos int64
	err := row.Scan(&g.ID, &g.Name, &g.Figure, &comparator, &g.Target, &g.From, &g.To,
		&g.Scope.Segment, &g.Scope.Tier, &g.Scope.Region, &g.Scope.Owner,
		&g.Closed, &g.CloseReason, &g.SetBy, &g.SetAt, &g.RevisedBy, &g.RevisedAt, &g.ClosedBy, &g.ClosedAt, &rev, &pos)
	g.Comparator = domain.Comparator(comparator)
	g.From, g.To, g.SetAt = g.From.UTC(), g.To.UTC(), g.SetAt.UTC()
	g.RevisedAt, g.ClosedAt = readmodel.UTC(g.RevisedAt), readmodel.UTC(g.ClosedAt)
	g.Revision, g.Position = uint64(rev), uint64(pos)
	return g, err
}

// Goal returns one goal, judged now; ErrNotFound if there is none.
func (q *Queries) Goal(ctx context.Context, id uuid.UUID) (Goal, error) {
	rows, err := q.pool.Query(ctx, `SELECT `+columns+` FROM readmodels.goals WHERE goal_id = $1`, id)
	var items []Goal
	if err == nil {
		items, err = pgx.CollectRows(rows, scan)
	}
	if err != nil {
		return Goal{}, readmodel.Fail("goals: get", err)
	}
	if len(items) == 0 {
		return Goal{}, ErrNotFound
	}
	if err := q.judge(ctx, items); err != nil {
		return Goal{}, err
	}
	return items[0], nil
}

// Goals returns a page of up to limit goals, the latest set first, after
// cursor, each judged now.
func (q *Queries) Goals(ctx context.Context, p ListParams, cursor string, limit int) (readmodel.Page[Goal], error) {
	after, err := Cursor.Continue(cursor, limit)
	if err != nil {
		return readmodel.Page[Goal]{}, fmt.Errorf("goals: list: %w", err)
	}
	where, args := []string{"true"}, []any{}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	switch p.State {
	case StateOpen, "":
		where = append(where, "NOT closed")
	case StateClosed:
		where = append(where, "closed")
	}
	if p.Figure != "" {
		where = append(where, "figure = "+arg(p.Figure))
	}
	if after != nil {
		where = append(where, "(set_at, goal_id) < ("+arg(after.At)+", "+arg(after.ID)+")")
	}
	sql := `SELECT ` + columns + ` FROM readmodels.goals WHERE ` + joinAnd(where) +
		` ORDER BY set_at DESC, goal_id DESC LIMIT ` + arg(limit+1)
	rows, err := q.pool.Query(ctx, sql, args...)
	var items []Goal
	if err == nil {
		items, err = pgx.CollectRows(rows, scan)
	}
	if err != nil {
		return readmodel.Page[Goal]{}, readmodel.Fail("goals: list", err)
	}
	page := readmodel.PageOf(items, limit, Cursor, func(g Goal) readmodel.Key { return readmodel.Key{At: g.SetAt, ID: g.ID} })
	if err := q.judge(ctx, page.Items); err != nil {
		return readmodel.Page[Goal]{}, err
	}
	return page, nil
}

func joinAnd(parts []string) string {
	out := parts[0]
	for _, p := range parts[1:] {
		out += " AND " + p
	}
	return out
}

// judge computes each goal's figures and judgement, all at the same
// instant. Goals that share a figure family, a grouping and a window (the
// same quarter, say) share one report: each distinct report is computed
// once, a few at a time.
func (q *Queries) judge(ctx context.Context, goals []Goal) error {
	now := q.now().UTC().Truncate(time.Microsecond)
	reports := map[reportKey]*analytics.Report{}
	var keys []reportKey
	need := func(g *Goal, w *Window) {
		if w == nil {
			return
		}
		k, err := keyOf(g.Figure, g.Scope, *w)
		if err != nil {
			return // judged as undefined below; Figure reports the error
		}
		if _, ok := reports[k]; !ok {
			reports[k] = nil
			keys = append(keys, k)
		}
	}
	for i := range goals {
		g := &goals[i]
		g.BaselineWindow, g.CurrentWindow = Windows(g.From, g.To, now)
		need(g, g.BaselineWindow)
		need(g, g.CurrentWindow)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		slots = make(chan struct{}, max(q.parallel, 1))
	)
	for _, k := range keys {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			rep, err := q.figures.Report(ctx, k.family, analytics.Params{From: k.from, To: k.to, GroupBy: k.groupBy})
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			reports[k] = &rep
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	figure := func(g *Goal, w *Window) *float64 {
		if w == nil {
			return nil
		}
		k, err := keyOf(g.Figure, g.Scope, *w)
		if err != nil {
			return nil
		}
		return pick(reports[k], g.Figure, g.Scope)
	}
	for i := range goals {
		g := &goals[i]
		g.Baseline, g.Current = figure(g, g.BaselineWindow), figure(g, g.CurrentWindow)
		state := domain.Goal{ID: g.ID, Set: true, Figure: g.Figure, Comparator: g.Comparator, Target: g.Target, From: g.From, To: g.To, Scope: g.Scope}
		g.Judgement = Judge(state, g.Baseline, g.Current, now)
	}
	return nil
}

// reportKey is one analytics report a goal's figure comes from.
type reportKey struct {
	family   analytics.Family
	groupBy  analytics.GroupBy
	from, to time.Time
}

func keyOf(figure string, scope domain.GoalScope, w Window) (reportKey, error) {
	family := Family(figure)
	if family == "" {
		return reportKey{}, fmt.Errorf("goals: no analytics family answers %q", figure)
	}
	attribute, _ := scope.Attribute()
	return reportKey{family: family, groupBy: analytics.GroupBy(attribute), from: w.From, to: w.To}, nil
}

// pick is the scope's figure in a report: the group "all" without a scope,
// else the scope's group; a group the report lacks has the figures of no
// data. Nil when undefined.
func pick(rep *analytics.Report, figure string, scope domain.GoalScope) *float64 {
	attribute, value := scope.Attribute()
	group := &analytics.Group{}
	if rep != nil {
		for i := range rep.Groups {
			k := rep.Groups[i].Key
			if attribute == "" || (k != nil && *k == value) {
				group = &rep.Groups[i]
				break
			}
		}
	}
	switch v := group.Figure(figure).(type) {
	case *float64:
		return v
	case int64:
		f := float64(v)
		return &f
	}
	return nil
}

// Family returns the analytics family that answers a figure ("" for none
// but the KPIs).
func Family(figure string) analytics.Family {
	for _, f := range analytics.Families() {
		if f != analytics.KPIs && slices.Contains(analytics.Columns(f), figure) {
			return f
		}
	}
	return ""
}

// Figure is a figure over a window for the customers of a scope, exactly
// as the analytics endpoint answers it for that period and group (the
// report grouped by the scope's attribute, the scope's group picked; a
// group without data has the figure of no data). Nil when undefined.
func (q *Queries) Figure(ctx context.Context, figure string, scope domain.GoalScope, w Window) (*float64, error) {
	k, err := keyOf(figure, scope, w)
	if err != nil {
		return nil, err
	}
	rep, err := q.figures.Report(ctx, k.family, analytics.Params{From: k.from, To: k.to, GroupBy: k.groupBy})
	if err != nil {
		return nil, err
	}
	return pick(&rep, figure, scope), nil
}
