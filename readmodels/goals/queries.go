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

// judge computes each goal's figures (a few at a time) and judgement, all
// at the same instant.
func (q *Queries) judge(ctx context.Context, goals []Goal) error {
	now := q.now().UTC().Truncate(time.Microsecond)
	type job struct {
		goal   int
		window *Window
		out    **float64
	}
	var jobs []job
	for i := range goals {
		g := &goals[i]
		g.BaselineWindow, g.CurrentWindow = Windows(g.From, g.To, now)
		jobs = append(jobs, job{i, g.BaselineWindow, &g.Baseline}, job{i, g.CurrentWindow, &g.Current})
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		slots = make(chan struct{}, max(q.parallel, 1))
	)
	for _, jb := range jobs {
		if jb.window == nil {
			continue
		}
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			g := &goals[jb.goal]
			v, err := q.Figure(ctx, g.Figure, g.Scope, *jb.window)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			*jb.out = v
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	for i := range goals {
		g := &goals[i]
		state := domain.Goal{ID: g.ID, Set: true, Figure: g.Figure, Comparator: g.Comparator, Target: g.Target, From: g.From, To: g.To, Scope: g.Scope}
		g.Judgement = Judge(state, g.Baseline, g.Current, now)
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
	family := Family(figure)
	if family == "" {
		return nil, fmt.Errorf("goals: no analytics family answers %q", figure)
	}
	attribute, value := scope.Attribute()
	rep, err := q.figures.Report(ctx, family, analytics.Params{From: w.From, To: w.To, GroupBy: analytics.GroupBy(attribute)})
	if err != nil {
		return nil, err
	}
	group := &analytics.Group{}
	for i := range rep.Groups {
		k := rep.Groups[i].Key
		if attribute == "" || (k != nil && *k == value) {
			group = &rep.Groups[i]
			break
		}
	}
	switch v := group.Figure(figure).(type) {
	case *float64:
		return v, nil
	case int64:
		f := float64(v)
		return &f, nil
	}
	return nil, nil
}
