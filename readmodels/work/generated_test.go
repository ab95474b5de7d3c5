package work_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/risk"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// TestQueuesOverAGeneratedHistory checks the queues over a generated year
// at several instants: each SLA selection is exactly the rows that
// complaints.Judge (and the 25 % rule) puts in it, in urgency order; the
// follow-up states partition the pending follow-ups; contact-due rows are
// due; the at-risk rows carry the directory's own score, highest first,
// and are all the directory's medium and high customers.
func TestQueuesOverAGeneratedHistory(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	m.Generate(t, 7, 3000)
	var first, last time.Time
	if err := m.Pool.QueryRow(t.Context(), `SELECT min(filed_at), max(filed_at) FROM readmodels.complaints`).Scan(&first, &last); err != nil {
		t.Fatal(err)
	}
	instants := []time.Time{first.Add(last.Sub(first) / 2), last, last.Add(2 * time.Hour), last.Add(3 * 24 * time.Hour)}
	// A minute before some complaints' next target: at risk there.
	sample, err := work.NewQueries(m.Pool, work.WithClock(func() time.Time { return first })).Complaints(t.Context(), work.ComplaintFilter{}, 40, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(sample.Items); i += 10 {
		instants = append(instants, sample.Items[i].DueAt.Add(-time.Minute))
	}
	// The team members of every customer, and the members with the most
	// and with the fewest customers: an owner's queue is its part of the
	// whole queue.
	teams := map[uuid.UUID][]string{}
	rows, err := m.Pool.Query(t.Context(), `SELECT id, team_members FROM readmodels.customers`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		var members []string
		if err := rows.Scan(&id, &members); err != nil {
			t.Fatal(err)
		}
		teams[id] = members
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var owners []string
	if err := m.Pool.QueryRow(t.Context(), `SELECT array_agg(m ORDER BY n DESC, m) FROM (
		SELECT m, count(*) AS n FROM readmodels.customers c, unnest(c.team_members) m GROUP BY m) x`).Scan(&owners); err != nil {
		t.Fatal(err)
	}
	if len(owners) < 2 {
		t.Fatalf("the history has %d team members: the owner filter is not tested", len(owners))
	}
	owners = []string{owners[0], owners[len(owners)-1]}
	var openTotal, atRiskTotal, ownedTotal int
	for _, now := range instants {
		q := work.NewQueries(m.Pool, work.WithClock(func() time.Time { return now }))
		complaintsOf := func(sla string) []work.OpenComplaint {
			return pages(t, 7, func(limit int, cursor string) (readmodel.Page[work.OpenComplaint], error) {
				return q.Complaints(t.Context(), work.ComplaintFilter{SLA: sla}, limit, cursor)
			})
		}
		all := complaintsOf(work.SLAAny)
		openTotal += len(all)
		var breached, atRisk []uuid.UUID
		for i, c := range all {
			if i > 0 && (c.DueAt.Before(all[i-1].DueAt) || c.DueAt.Equal(all[i-1].DueAt) && c.ID.String() < all[i-1].ID.String()) {
				t.Errorf("%s: row %d out of urgency order", now, i)
			}
			if c.Status == "resolved" {
				t.Errorf("%s: resolved complaint %s in the queue", now, c.ID)
			}
			if c.SLA.Breached() {
				breached = append(breached, c.ID)
			}
			if c.AtRisk {
				atRisk = append(atRisk, c.ID)
			}
		}
		ids := func(rows []work.OpenComplaint) []uuid.UUID {
			out := make([]uuid.UUID, len(rows))
			for i, r := range rows {
				out[i] = r.ID
			}
			return out
		}
		// Each severity's queue is its part of the whole, in the same
		// order (the query has a branch per severity and step).
		for _, sev := range []string{"critical", "high", "medium", "low"} {
			var want []uuid.UUID
			for _, c := range all {
				if c.Severity == sev {
					want = append(want, c.ID)
				}
			}
			got := ids(pages(t, 5, func(limit int, cursor string) (readmodel.Page[work.OpenComplaint], error) {
				return q.Complaints(t.Context(), work.ComplaintFilter{Severity: sev}, limit, cursor)
			}))
			if !slices.Equal(got, want) {
				t.Errorf("%s: severity=%s has %d, the whole queue %d", now, sev, len(got), len(want))
			}
		}
		for _, owner := range owners {
			for _, sla := range []string{work.SLAAny, work.SLABreached, work.SLAAtRisk} {
				var want []uuid.UUID
				for _, c := range complaintsOf(sla) {
					if slices.Contains(teams[c.CustomerID], owner) {
						want = append(want, c.ID)
					}
				}
				got := ids(pages(t, 3, func(limit int, cursor string) (readmodel.Page[work.OpenComplaint], error) {
					return q.Complaints(t.Context(), work.ComplaintFilter{SLA: sla, Filter: work.Filter{Owner: owner}}, limit, cursor)
				}))
				if !slices.Equal(got, want) {
					t.Errorf("%s: owner=%s sla=%s has %d, the whole queue's rows of the owner's customers %d", now, owner, sla, len(got), len(want))
				}
				ownedTotal += len(want)
			}
		}
		if got := ids(complaintsOf(work.SLABreached)); !slices.Equal(got, breached) {
			t.Errorf("%s: sla=breached has %d, Judge says %d", now, len(got), len(breached))
		}
		if got := ids(complaintsOf(work.SLAAtRisk)); !slices.Equal(got, atRisk) {
			t.Errorf("%s: sla=at_risk has %d, the 25 %% rule says %d", now, len(got), len(atRisk))
		}

		pending := pages(t, 9, func(limit int, cursor string) (readmodel.Page[work.PendingFollowUp], error) {
			return q.FollowUps(t.Context(), work.FollowUpFilter{}, limit, cursor)
		})
		byState := 0
		for _, state := range []string{work.FollowUpOverdue, work.FollowUpDueToday, work.FollowUpUpcoming} {
			rows := pages(t, 9, func(limit int, cursor string) (readmodel.Page[work.PendingFollowUp], error) {
				return q.FollowUps(t.Context(), work.FollowUpFilter{State: state}, limit, cursor)
			})
			for _, r := range rows {
				if r.State != state {
					t.Errorf("%s: %s row in state %s", now, state, r.State)
				}
			}
			byState += len(rows)
		}
		if byState != len(pending) {
			t.Errorf("%s: the states hold %d of %d pending follow-ups", now, byState, len(pending))
		}

		due := pages(t, 11, func(limit int, cursor string) (readmodel.Page[work.ContactDue], error) {
			return q.ContactDue(t.Context(), work.Filter{}, limit, cursor)
		})
		for i, d := range due {
			if d.DueSince.After(now) || i > 0 && d.DueSince.Before(due[i-1].DueSince) {
				t.Errorf("%s: contact-due row %d: %+v", now, i, d)
			}
		}

		directory := customers.NewQueries(m.Pool, customers.WithClock(func() time.Time { return now }))
		atRiskRows := pages(t, 13, func(limit int, cursor string) (readmodel.Page[work.AtRisk], error) {
			return q.AtRisk(t.Context(), work.AtRiskFilter{}, limit, cursor)
		})
		for i, a := range atRiskRows {
			if i > 0 && a.Risk.Score > atRiskRows[i-1].Risk.Score {
				t.Errorf("%s: at-risk row %d out of order", now, i)
			}
			if i < 20 {
				c, err := directory.Get(t.Context(), a.Customer.ID)
				if err != nil || c.ChurnRisk == nil || c.ChurnRisk.Score != a.Risk.Score || c.ChurnRisk.Level != a.Risk.Level {
					t.Errorf("%s: %s scores %+v here, %+v in the directory (%v)", now, a.Customer.ID, a.Risk, c.ChurnRisk, err)
				}
			}
		}
		listed := 0
		for _, level := range []string{risk.LevelHigh, risk.LevelMedium} {
			for cursor := ""; ; {
				p, err := directory.List(t.Context(), customers.Filter{Risk: level}, customers.MaxLimit, cursor)
				if err != nil {
					t.Fatal(err)
				}
				listed += len(p.Items)
				if cursor = p.NextCursor; cursor == "" {
					break
				}
			}
		}
		atRiskTotal += len(atRisk)
		t.Logf("%s: %d open (%d breached, %d at risk), %d follow-ups pending, %d contact-due, %d at risk of churn",
			now, len(all), len(breached), len(atRisk), len(pending), len(due), len(atRiskRows))
		if listed != len(atRiskRows) {
			t.Errorf("%s: %d at risk, the directory lists %d medium or high", now, len(atRiskRows), listed)
		}
	}
	if openTotal == 0 || atRiskTotal == 0 || ownedTotal == 0 {
		t.Errorf("the instants hold %d open complaints, %d at risk, %d of the owners: the test checks too little", openTotal, atRiskTotal, ownedTotal)
	}
}
