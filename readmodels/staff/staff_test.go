package staff_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/sla"
	"github.com/rapport-crm/rapport/readmodels/staff"
)

var members = []string{"alice", "bob", "carol", "dave", "=erin"}

// history is a generated CRM: every command goes through the real command
// layer at a simulated time, chosen so that it is valid in the customer's
// state (tracked here only to choose valid commands, never to compute a
// figure).
type history struct {
	t    *testing.T
	m    *apptest.Main
	rng  *rand.Rand
	last eventstore.Position
	ids  []uuid.UUID
}

type simCustomer struct {
	id         uuid.UUID
	active     bool
	complaints map[uuid.UUID]string // open, acked, resolved
}

func (h *history) do(id uuid.UUID, at time.Time, cmd domain.Command) commands.Result {
	h.t.Helper()
	res, err := h.m.Commands.Handle(context.Background(), commands.Request{CustomerID: id, Command: cmd, CommandID: uuid.New(), Actor: "sim", At: at})
	if err != nil {
		h.t.Fatalf("%T at %s: %v", cmd, at, err)
	}
	h.last = max(h.last, res.Position)
	return res
}

func (h *history) pick() string { return members[h.rng.IntN(len(members))] }

// generate issues steps commands from 2025-01-01 on, a few hours apart.
func (h *history) generate(steps int) {
	at := time.Date(2025, 1, 1, 8, 0, 0, 0, time.UTC)
	var cs []*simCustomer
	for step := 0; step < steps; step++ {
		at = at.Add(time.Duration(1+h.rng.IntN(12)) * time.Hour)
		if len(cs) < 8 || h.rng.IntN(12) == 0 {
			res := h.do(uuid.Nil, at, domain.RegisterCustomer{Name: fmt.Sprintf("C%d", len(cs)), Phone: fmt.Sprintf("+44 20 7946 %04d", len(cs)), Segment: "smb"})
			cs = append(cs, &simCustomer{id: res.CustomerID, active: true, complaints: map[uuid.UUID]string{}})
			h.ids = append(h.ids, res.CustomerID)
			if h.rng.IntN(4) > 0 {
				h.do(res.CustomerID, at, domain.AssignTeamMember{Role: domain.RoleAccountManager, Member: h.pick()})
			}
			continue
		}
		c := cs[h.rng.IntN(len(cs))]
		var open, resolved []uuid.UUID
		for id, st := range c.complaints {
			if st == "resolved" {
				resolved = append(resolved, id)
			} else {
				open = append(open, id)
			}
		}
		slices.SortFunc(open, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
		slices.SortFunc(resolved, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
		switch r := h.rng.IntN(100); {
		case r < 8:
			role := domain.RoleAccountManager
			if h.rng.IntN(4) == 0 {
				role = domain.RoleSupport
			}
			h.do(c.id, at, domain.AssignTeamMember{Role: role, Member: h.pick()})
		case r < 30:
			back := time.Duration(h.rng.IntN(48)) * time.Hour
			h.do(c.id, at, domain.LogContact{Channel: domain.ChannelPhone, Direction: domain.DirectionOutbound, Summary: "call", By: h.pick(), OccurredAt: new(at.Add(-back))})
		case r < 42:
			h.do(c.id, at, domain.ScheduleFollowUp{DueAt: at.Add(time.Duration(1+h.rng.IntN(120)) * time.Hour), By: h.pick(), Note: "call back"})
		case r < 54:
			res := h.do(c.id, at, domain.FileComplaint{Category: "billing", Severity: domain.Severities()[h.rng.IntN(4)], Description: "late"})
			c.complaints[res.CreatedID] = "open"
			if h.rng.IntN(5) > 0 {
				h.do(c.id, at.Add(time.Duration(h.rng.IntN(90))*time.Minute), domain.AssignComplaint{ComplaintID: res.CreatedID, Assignee: h.pick()})
			}
		case r < 60 && len(open) > 0:
			h.do(c.id, at, domain.AssignComplaint{ComplaintID: open[h.rng.IntN(len(open))], Assignee: h.pick()})
		case r < 70 && len(open) > 0:
			id := open[h.rng.IntN(len(open))]
			if c.complaints[id] == "open" {
				h.do(c.id, at, domain.AcknowledgeComplaint{ComplaintID: id, By: h.pick()})
				c.complaints[id] = "acked"
			} else {
				h.do(c.id, at, domain.ResolveComplaint{ComplaintID: id, By: h.pick(), Resolution: "done"})
				c.complaints[id] = "resolved"
			}
		case r < 74 && len(open) > 0:
			id := open[h.rng.IntN(len(open))]
			h.do(c.id, at, domain.ResolveComplaint{ComplaintID: id, By: h.pick(), Resolution: "done"})
			c.complaints[id] = "resolved"
		case r < 77 && len(resolved) > 0:
			id := resolved[h.rng.IntN(len(resolved))]
			h.do(c.id, at, domain.ReopenComplaint{ComplaintID: id, Reason: "again"})
			c.complaints[id] = "open"
		case r < 92:
			csat := 1 + h.rng.IntN(5)
			cmd := domain.RecordSurvey{CSAT: &csat, Channel: domain.ChannelEmail}
			all := append(slices.Clone(open), resolved...)
			if len(all) > 0 && h.rng.IntN(4) > 0 {
				id := all[h.rng.IntN(len(all))]
				cmd.ComplaintID = &id
			}
			if h.rng.IntN(6) == 0 {
				cmd.CSAT, cmd.NPS = nil, new(7)
			}
			h.do(c.id, at, cmd)
		case c.active:
			h.do(c.id, at, domain.MarkChurned{Reason: "left"})
			c.active = false
		default:
			h.do(c.id, at, domain.Reactivate{})
			c.active = true
		}
	}
}

// expected computes the scorecards by hand from each customer's domain
// events (read back from the store), following PRODUCT.md's words, not
// the SQL.
func expected(t *testing.T, m *apptest.Main, ids []uuid.UUID, from, to, now time.Time) map[string]*staff.Scorecard {
	t.Helper()
	out := map[string]*staff.Scorecard{}
	card := func(member string) *staff.Scorecard {
		if out[member] == nil {
			out[member] = &staff.Scorecard{Member: member}
		}
		return out[member]
	}
	targets := sla.Defaults()
	frSamples := map[string][]float64{}
	csatTop := map[string]int64{}
	in := func(x time.Time) bool { return !x.Before(from) && x.Before(to) }
	type spell struct {
		member      string
		start, stop time.Time // stop zero: lasting
	}
	for _, id := range ids {
		recs, err := m.Store.ReadStream(t.Context(), domain.StreamName(id), eventstore.ReadStreamOptions{Direction: eventstore.Forwards, Limit: 10_000})
		if err != nil {
			t.Fatal(err)
		}
		var (
			state    domain.Customer
			managers []spell
			active   []spell
			surveys  []domain.SurveyRecorded
		)
		for _, rec := range recs {
			d, err := m.Codec.Decode(t.Context(), rec)
			if err != nil {
				t.Fatal(err)
			}
			switch e := d.Event.(type) {
			case domain.CustomerRegistered:
				active = append(active, spell{start: e.OccurredAt})
			case domain.CustomerChurned:
				active[len(active)-1].stop = e.OccurredAt
			case domain.CustomerReactivated:
				active = append(active, spell{start: e.OccurredAt})
			case domain.TeamMemberAssigned:
				if e.Role == domain.RoleAccountManager {
					if n := len(managers); n > 0 {
						managers[n-1].stop = e.OccurredAt
					}
					managers = append(managers, spell{member: e.Member, start: e.OccurredAt})
				}
			case domain.ContactLogged:
				if in(e.OccurredAt) {
					card(e.By).ContactsLogged++
				}
			case domain.SurveyRecorded:
				surveys = append(surveys, e)
			}
			state = domain.Evolve(state, d.Event)
		}
		for _, f := range state.FollowUps {
			if in(f.DueAt) {
				c := card(f.By)
				c.FollowUpsDue++
				if f.Done && !f.DoneAt.After(f.DueAt) {
					c.FollowUpsOnTime++
				}
			}
		}
		for _, k := range state.Complaints {
			if k.Assignee == "" || !in(k.FiledAt) {
				continue
			}
			c := card(k.Assignee)
			c.ComplaintsOwned++
			resolved := k.Status == domain.ComplaintStatusResolved
			if resolved {
				c.Resolved++
			}
			first := time.Time{}
			switch {
			case k.Acknowledged:
				first = k.AcknowledgedAt
			case resolved:
				first = k.ResolvedAt
			}
			if !first.IsZero() {
				frSamples[k.Assignee] = append(frSamples[k.Assignee], first.Sub(k.OpenedAt).Seconds())
			}
			target := targets[k.Severity]
			frAt, resAt := first, k.ResolvedAt
			if frAt.IsZero() {
				frAt = now
			}
			if !resolved {
				resAt = now
			}
			if frAt.After(k.OpenedAt.Add(target.FirstResponse)) || resAt.After(k.OpenedAt.Add(target.Resolution)) {
				c.SLABreaches++
			}
		}
		for _, s := range surveys {
			if s.ComplaintID == nil || s.CSAT == nil || !in(s.OccurredAt) {
				continue
			}
			k, ok := state.Complaint(*s.ComplaintID)
			if !ok || k.Assignee == "" {
				continue
			}
			card(k.Assignee).CSATResponsesAfterComplaints++
			if *s.CSAT >= 4 {
				csatTop[k.Assignee]++
			}
		}
		// Active at the end: a spell begun before to and lasting to it;
		// at the start: begun by from and lasting past it (the analytics'
		// instants).
		activeAtEnd, activeAtStart, churnedIn := false, false, false
		for _, sp := range active {
			if sp.start.Before(to) && (sp.stop.IsZero() || !sp.stop.Before(to)) {
				activeAtEnd = true
			}
			if !sp.start.After(from) && (sp.stop.IsZero() || sp.stop.After(from)) {
				activeAtStart = true
				churnedIn = !sp.stop.IsZero() && sp.stop.Before(to)
			}
		}
		for _, sp := range managers {
			if activeAtEnd && sp.start.Before(to) && (sp.stop.IsZero() || !sp.stop.Before(to)) {
				card(sp.member).Accounts++
			}
			if activeAtStart && !sp.start.After(from) && (sp.stop.IsZero() || sp.stop.After(from)) {
				c := card(sp.member)
				c.AccountsAtStart++
				if churnedIn {
					c.AccountsChurned++
				}
			}
		}
	}
	pct := func(part, whole int64) *float64 {
		if whole == 0 {
			return nil
		}
		v := 100 * float64(part) / float64(whole)
		return &v
	}
	for member, c := range out {
		c.FollowUpsDoneOnTimePct = pct(c.FollowUpsOnTime, c.FollowUpsDue)
		c.ResolutionRate = pct(c.Resolved, c.ComplaintsOwned)
		c.CSATPctAfterComplaints = pct(csatTop[member], c.CSATResponsesAfterComplaints)
		c.AccountsChurnRate = pct(c.AccountsChurned, c.AccountsAtStart)
		if s := frSamples[member]; len(s) > 0 {
			sort.Float64s(s)
			var med float64
			if len(s)%2 == 1 {
				med = s[len(s)/2]
			} else {
				med = (s[len(s)/2-1] + s[len(s)/2]) / 2
			}
			c.FirstResponseMedianS = &med
		}
	}
	return out
}

func sameFigure(a, b any) bool {
	switch a := a.(type) {
	case int64:
		return a == b.(int64)
	case *float64:
		b := b.(*float64)
		if a == nil || b == nil {
			return a == b
		}
		return math.Abs(*a-*b) < 1e-6
	}
	return false
}

// TestStaffScorecardsAsDefined generates a CRM through the command layer
// (contacts, follow-ups done on time or late, complaints assigned and
// reassigned, acknowledged, resolved and reopened, surveys after
// complaints, account managers changing, churn and reactivation) and
// checks every member's every figure over several periods against a
// computation by hand from the domain's events; then again after a
// rebuild of the team spells, which also reconcile with the log.
func TestStaffScorecardsAsDefined(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	h := &history{t: t, m: m, rng: rand.New(rand.NewPCG(20, 26))}
	h.generate(700)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Engine.WaitForPosition(ctx, h.last); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 5, 20, 0, 0, 0, 0, time.UTC)
	q := staff.NewQueries(m.Pool, nil).WithClock(func() time.Time { return now })
	periods := [][2]time.Time{
		{time.Date(2025, 1, 15, 0, 0, 0, 0, time.UTC), time.Date(2025, 2, 15, 0, 0, 0, 0, time.UTC)},
		{time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	check := func(when string) {
		t.Helper()
		for _, p := range periods {
			want := expected(t, m, h.ids, p[0], p[1], now)
			rep, err := q.Report(t.Context(), p[0], p[1])
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i := range rep.Staff {
				sc := &rep.Staff[i]
				got = append(got, sc.Member)
				w := want[sc.Member]
				if w == nil {
					t.Errorf("%s %s: %s has a scorecard but is named by nothing", when, p[0].Format("2006-01-02"), sc.Member)
					continue
				}
				for _, col := range staff.Columns {
					if !sameFigure(sc.Figure(col), w.Figure(col)) {
						t.Errorf("%s %s–%s: %s %s = %v, by hand %v", when, p[0].Format("2006-01-02"), p[1].Format("2006-01-02"), sc.Member, col,
							showFigure(sc.Figure(col)), showFigure(w.Figure(col)))
					}
				}
			}
			var wantMembers []string
			for member := range want {
				wantMembers = append(wantMembers, member)
			}
			slices.Sort(wantMembers)
			if !slices.Equal(got, wantMembers) {
				t.Errorf("%s: members %v, by hand %v", when, got, wantMembers)
			}
		}
	}
	check("projected")
	// The generated history must exercise every figure in some period.
	seen := map[string]bool{}
	for _, p := range periods {
		rep, err := q.Report(t.Context(), p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		for i := range rep.Staff {
			for _, col := range staff.Columns {
				switch v := rep.Staff[i].Figure(col).(type) {
				case int64:
					seen[col] = seen[col] || v > 0
				case *float64:
					seen[col] = seen[col] || (v != nil && *v > 0)
				}
			}
		}
	}
	for _, col := range staff.Columns {
		if !seen[col] {
			t.Errorf("the history never exercises %s", col)
		}
	}
	m.CheckReconciles(t, "projected", staff.Name)
	m.Rebuild(t, staff.Name)
	check("after a rebuild")
	m.CheckReconciles(t, "after a rebuild", staff.Name)
	if _, err := q.Report(t.Context(), now, now); err != staff.ErrInvalidPeriod {
		t.Errorf("empty period: %v", err)
	}
	checkReadmeSQL(t, m)
}

// checkReadmeSQL runs readmodels/README.md's staff scorecard SQL (March–May
// 2025, breaches judged at now()) and compares it with the API's query.
func checkReadmeSQL(t *testing.T, m *apptest.Main) {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var sql string
	for _, block := range strings.Split(string(raw), "```sql\n")[1:] {
		if strings.HasPrefix(block, "-- example: staff scorecards") {
			sql, _, _ = strings.Cut(block, "```")
		}
	}
	if sql == "" {
		t.Fatal("readmodels/README.md has no staff scorecard SQL")
	}
	from, to := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	rep, err := staff.NewQueries(m.Pool, nil).Report(t.Context(), from, to)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := m.Pool.Query(t.Context(), sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols := []string{"contacts_logged", "follow_ups_done_on_time_pct", "complaints_owned", "first_response_median_s",
		"resolution_rate", "sla_breaches", "csat_pct_after_complaints", "accounts", "accounts_churn_rate"}
	i := 0
	for rows.Next() {
		values, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(rep.Staff) {
			t.Fatalf("the README's SQL has more rows than the API's %d", len(rep.Staff))
		}
		sc := &rep.Staff[i]
		if values[0] != sc.Member {
			t.Fatalf("row %d: README member %v, API %s", i, values[0], sc.Member)
		}
		for j, col := range cols {
			var got *float64
			switch v := values[j+1].(type) {
			case int64:
				f := float64(v)
				got = &f
			case float64:
				got = &v
			case pgtype.Numeric:
				if v.Valid {
					f, _ := v.Float64Value()
					got = &f.Float64
				}
			case nil:
			default:
				t.Fatalf("README %s is a %T", col, v)
			}
			want := sc.Figure(col)
			if w, ok := want.(int64); ok {
				f := float64(w)
				want = &f
			}
			if !sameFigure(want, got) {
				t.Errorf("README SQL: %s %s = %s, the API says %s", sc.Member, col, showFigure(got), showFigure(want))
			}
		}
		i++
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if i != len(rep.Staff) || i == 0 {
		t.Errorf("the README's SQL has %d rows, the API %d", i, len(rep.Staff))
	}
}

func showFigure(v any) string {
	if f, ok := v.(*float64); ok {
		if f == nil {
			return "null"
		}
		return fmt.Sprintf("%g", *f)
	}
	return fmt.Sprint(v)
}
