package goals_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/audit"
	"github.com/rapport-crm/rapport/readmodels/goals"
)

// TestGoalsOnEveryStore: goal streams are appended, projected, reconciled
// and audited on both event stores (EventStoreDB through its test server),
// beside customers' streams.
func TestGoalsOnEveryStore(t *testing.T) {
	apptest.ForEachStore(t, func(t *testing.T, m *apptest.Main) {
		s := &sim{t: t, m: m}
		customer := s.do(uuid.Nil, "2025-01-01T00:00:00Z", domain.RegisterCustomer{Name: "Ada", Phone: "+44 20 7946 0000"})
		s.do(customer, "2025-01-02T00:00:00Z", domain.AssignTeamMember{Role: domain.RoleAccountManager, Member: "alice"})
		id := s.goal(uuid.Nil, "2025-01-03T00:00:00Z", setGoal("g", "nps", domain.AtLeast, 20, "2025-01-01T00:00:00Z", "2025-04-01T00:00:00Z", domain.GoalScope{Owner: "alice"}))
		s.goal(id, "2025-01-04T00:00:00Z", domain.ReviseGoal{Target: f(25)})
		s.goal(id, "2025-01-05T00:00:00Z", domain.CloseGoal{})
		s.wait()
		var target float64
		var closed bool
		var revision int64
		if err := m.Pool.QueryRow(t.Context(), `SELECT target, closed, revision FROM readmodels.goals WHERE goal_id = $1`, id).Scan(&target, &closed, &revision); err != nil {
			t.Fatal(err)
		}
		if target != 25 || !closed || revision != 2 {
			t.Errorf("row: target %g closed %v revision %d", target, closed, revision)
		}
		m.CheckReconciles(t, "projected", goals.Name, "staff", "customers", "history")
		h, err := audit.New(m.Store, m.Codec).History(t.Context(), domain.GoalStreamName(id))
		if err != nil || !h.Verification.Intact || len(h.Events) != 3 {
			t.Errorf("history: %+v %v", h, err)
		}
	})
}
