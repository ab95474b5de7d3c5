package http_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// The three definitions PRODUCT.md settles ("Definitions"), end to end.

// TestDaysSinceCountsWholeDaysOf24Hours pins "days since" (last contact,
// or registration when there was none): whole days of 24 h elapsed, so 30
// days and 23 hours is 30 — not more than 30, no days_since_contact points
// — and 31 days is 31 (10 points). Judged by the API at query time.
func TestDaysSinceCountsWholeDaysOf24Hours(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	d := &cqDirectory{t: t, m: m, now: time.Now()}
	const day = 24 * time.Hour
	reg := func(ago time.Duration, phone string) uuid.UUID {
		return d.do(uuid.Nil, ago, domain.RegisterCustomer{Name: "Days", Phone: phone})
	}
	contact := func(id uuid.UUID, ago time.Duration) {
		d.do(id, ago, domain.LogContact{Channel: domain.ChannelPhone, Direction: domain.DirectionOutbound, Summary: "call", By: "bob"})
	}
	registered30d23h := reg(31*day-time.Hour, "+1 555 0301")
	registered31d := reg(31*day, "+1 555 0302")
	contacted30d23h := reg(400*day, "+1 555 0303")
	contact(contacted30d23h, 31*day-time.Hour)
	contacted31d := reg(400*day, "+1 555 0304")
	contact(contacted31d, 31*day)
	d.wait()
	for id, want := range map[uuid.UUID]string{
		registered30d23h: "0 low",
		registered31d:    "10 low days_since_contact=10",
		contacted30d23h:  "0 low",
		contacted31d:     "10 low days_since_contact=10",
	} {
		var c cqCustomer
		m.Get(t, "writer", "/v1/customers/"+id.String()).JSON(t, &c)
		if got := cqRisk(c.Risk); got != want {
			t.Errorf("registered %s, last contact %v: risk %q, want %q", c.RegisteredAt, c.LastContactAt, got, want)
		}
	}
}

// TestChurnedAtBeforeTheActiveSpellIs422: a churned_at before the start of
// the customer's current active spell (registration or last reactivation)
// is 422 naming churned_at, and appends nothing.
func TestChurnedAtBeforeTheActiveSpellIs422(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	before := time.Now().UTC()
	reg := requireStatus(t, m.Post(t, "/v1/customers", map[string]any{"name": "Spell", "phone": "+1 555 0401"}), http.StatusCreated)
	base := "/v1/customers/" + reg["customer_id"].(string)
	churn := func(at time.Time) *apptest.Response {
		return m.Post(t, base+"/churn", map[string]any{"reason": "left", "churned_at": at.Format(time.RFC3339Nano)})
	}
	requireProblem(t, churn(before.Add(-24*time.Hour)), http.StatusUnprocessableEntity, domain.ReasonInvalidFields, "churned_at")
	requireProblem(t, churn(before.Add(-time.Millisecond)), http.StatusUnprocessableEntity, domain.ReasonInvalidFields, "churned_at")
	if c := m.Get(t, "writer", base+fmt.Sprintf("?min_position=%.0f", reg["position"])).Map(t); c["status"] != "active" || c["revision"] != 0.0 {
		t.Fatalf("a refused churn changed the customer: %v", c)
	}

	// Churned and reactivated: the current spell starts at the
	// reactivation; a churn dated in the earlier spell is refused.
	churned := time.Now().UTC()
	requireStatus(t, churn(churned), http.StatusOK)
	reactivatedAfter := time.Now().UTC()
	requireStatus(t, m.Post(t, base+"/reactivation", map[string]any{}), http.StatusOK)
	requireProblem(t, churn(churned), http.StatusUnprocessableEntity, domain.ReasonInvalidFields, "churned_at")
	requireProblem(t, churn(reactivatedAfter), http.StatusUnprocessableEntity, domain.ReasonInvalidFields, "churned_at")
	requireStatus(t, m.Post(t, base+"/churn", map[string]any{"reason": "left again"}), http.StatusOK)
}
