package domain

import (
	"testing"
	"time"
)

// TestChurnedAtMayNotPrecedeTheActiveSpell: PRODUCT.md, Definitions — a
// business time may not precede the state it changes, so a churned_at
// before the start of the customer's current active spell (its
// registration, or its last reactivation) is invalid, naming churned_at.
// The start itself is allowed.
func TestChurnedAtMayNotPrecedeTheActiveSpell(t *testing.T) {
	t.Run("before the registration", func(t *testing.T) {
		scenario(t).given(registered()).when(MarkChurned{Reason: "budget", ChurnedAt: ptr(t0.Add(-time.Second))}).
			thenFieldError("churned_at")
	})

	t.Run("a day before the registration", func(t *testing.T) {
		scenario(t).given(registered()).when(MarkChurned{Reason: "budget", ChurnedAt: ptr(t0.Add(-24 * time.Hour))}).
			thenFieldError("churned_at")
	})

	t.Run("at the registration", func(t *testing.T) {
		scenario(t).given(registered()).when(MarkChurned{Reason: "budget", ChurnedAt: ptr(t0)}).
			then(CustomerChurned{Reason: "budget", OccurredAt: t0})
	})

	// Registered at t0, churned at t0+1h, reactivated at t0+2h: the
	// current spell starts at t0+2h.
	spell2 := []Event{registered(), CustomerChurned{Reason: "budget", OccurredAt: at(time.Hour)},
		CustomerReactivated{OccurredAt: at(2 * time.Hour)}}

	t.Run("between the earlier churn and the last reactivation", func(t *testing.T) {
		scenario(t).given(spell2...).when(MarkChurned{Reason: "again", ChurnedAt: ptr(at(90 * time.Minute))}).
			thenFieldError("churned_at")
	})

	t.Run("within the earlier spell", func(t *testing.T) {
		scenario(t).given(spell2...).when(MarkChurned{Reason: "again", ChurnedAt: ptr(at(30 * time.Minute))}).
			thenFieldError("churned_at")
	})

	t.Run("at the last reactivation", func(t *testing.T) {
		scenario(t).given(spell2...).when(MarkChurned{Reason: "again", ChurnedAt: ptr(at(2 * time.Hour))}).
			then(CustomerChurned{Reason: "again", OccurredAt: at(2 * time.Hour)})
	})

	t.Run("after the last reactivation", func(t *testing.T) {
		scenario(t).given(spell2...).when(MarkChurned{Reason: "again", ChurnedAt: ptr(at(3 * time.Hour))}).
			then(CustomerChurned{Reason: "again", OccurredAt: at(3 * time.Hour)})
	})

	t.Run("the zone does not matter, the instant does", func(t *testing.T) {
		paris := time.FixedZone("CET", 3600)
		scenario(t).given(registered()).when(MarkChurned{Reason: "budget", ChurnedAt: ptr(t0.Add(-time.Minute).In(paris))}).
			thenFieldError("churned_at")
	})

	t.Run("state checks first: already churned stays a conflict", func(t *testing.T) {
		scenario(t).given(spell2[:2]...).when(MarkChurned{Reason: "again", ChurnedAt: ptr(t0.Add(-time.Hour))}).
			thenError(CodeConflict, ReasonAlreadyChurned)
	})

	t.Run("state checks first: an unknown customer stays not found", func(t *testing.T) {
		scenario(t).when(MarkChurned{Reason: "budget", ChurnedAt: ptr(t0.Add(-time.Hour))}).
			thenError(CodeNotFound, ReasonCustomerNotFound)
	})
}
