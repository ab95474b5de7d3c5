package rollups_test

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/projections/projectiontest"
)

// contactEdge is the instant the contact edge cases are built around:
// inside a UTC day, with microseconds, ten days before now's day.
func contactEdge(now time.Time) time.Time {
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	return day.AddDate(0, 0, -10).Add(13*time.Hour + 17*time.Minute + 123456*time.Microsecond)
}

// contactPeriods end (or start) exactly at the contact edge cases'
// instants, a microsecond either side.
func contactPeriods(now time.Time) [][2]time.Time {
	e, us := contactEdge(now), time.Microsecond
	return [][2]time.Time{
		{e.Add(-90 * 24 * time.Hour), e},
		{e.Add(-30 * 24 * time.Hour), e.Add(us)},
		{e.Add(-30 * 24 * time.Hour), e.Add(-us)},
		{e.Add(-200 * time.Hour), e.Add(-32 * time.Hour)},       // holds the burst
		{e.Add(-200 * time.Hour), e.Add(-32*time.Hour - us)},    // ends at its last contact
		{e.Add(-200*time.Hour + us), e},                         // starts after its first
		{e.Add(-100 * time.Hour), e.Add(100 * time.Hour)},       // a window of exactly 168 h
		{e.Add(-3 * time.Hour), e.Add(2 * time.Hour)},           // churn and win-back inside
		{e.Add(-60 * 24 * time.Hour).Add(-us), e.Add(-11 * us)}, // month edges, in the past
	}
}

// contactEdges are customers whose figures change exactly at the edge
// instant E: a contact 720 h before E (covered at E, not a microsecond
// later) or a microsecond more; tier-A customers contacted or registered
// exactly (cadence + 1) × 24 h before E, or a microsecond more;
// follow-ups due a microsecond before E, exactly at E, done exactly at
// E; outbound bursts within 168 h less a microsecond, of exactly 168 h,
// of four equal instants; churn exactly at E and a microsecond before,
// churn and win-back, erasure. first are appended before the live
// changes, then (in later batches) late: a back-dated contact, and
// reclassifications and reassignments of these customers.
func contactEdges(now time.Time) (first, late []projectiontest.Append) {
	e, us, h := contactEdge(now), time.Microsecond, time.Hour
	next := map[uuid.UUID]uint64{}
	emit := func(to *[]projectiontest.Append, id uuid.UUID, events ...domain.Event) {
		*to = append(*to, projectiontest.Append{Customer: id, Stream: domain.StreamName(id), FirstRevision: next[id], Domain: events})
		next[id] += uint64(len(events))
	}
	n := 0
	customer := func(tier string, registered time.Time) uuid.UUID {
		n++
		id := uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "contact-edge-%d", n))
		emit(&first, id, domain.CustomerRegistered{CustomerID: id, Name: fmt.Sprintf("Edge %d", n), Email: fmt.Sprintf("edge-%d@example.com", n),
			Segment: []string{"smb", "enterprise"}[n%2], Tier: tier, Region: []string{"emea", "apac", "amer"}[n%3], OccurredAt: registered})
		return id
	}
	contact := func(to *[]projectiontest.Append, id uuid.UUID, at time.Time, dir domain.Direction) {
		emit(to, id, domain.ContactLogged{ContactID: uuid.NewSHA1(id, fmt.Appendf(nil, "c-%d", next[id])), Channel: domain.ChannelPhone,
			Direction: dir, Summary: "edge", By: "edge", OccurredAt: at})
	}
	out, in := domain.DirectionOutbound, domain.DirectionInbound
	followUp := func(id uuid.UUID, scheduled, due time.Time) {
		emit(&first, id, domain.FollowUpScheduled{FollowUpID: uuid.NewSHA1(id, fmt.Appendf(nil, "f-%d", next[id])), DueAt: due, By: "edge", OccurredAt: scheduled})
	}

	c := customer("C", e.Add(-800*h))
	contact(&first, c, e.Add(-720*h), in) // covered at E, not at E + 1 µs
	c = customer("C", e.Add(-800*h))
	contact(&first, c, e.Add(-720*h-us), out) // not covered at E
	c = customer("A", e.Add(-400*h))
	contact(&first, c, e.Add(-360*h), in) // tier A: not due at E
	reTier := c
	c = customer("A", e.Add(-400*h))
	contact(&first, c, e.Add(-360*h-us), in) // due at E
	customer("A", e.Add(-360*h))             // registered: not due at E
	customer("A", e.Add(-360*h-us))          // due at E
	c = customer("B", e.Add(-100*h))
	followUp(c, e.Add(-50*h), e.Add(-us)) // overdue at E
	followUp(c, e.Add(-50*h), e)          // not yet at E
	followUp(c, e.Add(-50*h), e.Add(-10*h))
	contact(&first, c, e, in) // completes all three at E: still overdue at E
	followUp(c, e.Add(h), e.Add(2*h))
	moved := c
	c = customer("B", e.Add(-300*h))
	for _, at := range []time.Duration{-200 * h, -199 * h, -198 * h, -32*h - us} {
		contact(&first, c, e.Add(at), out) // four outbound within 168 h less 1 µs
	}
	c = customer("", e.Add(-300*h))
	for _, at := range []time.Duration{-100 * h, -99 * h, -98 * h, 68 * h} {
		contact(&first, c, e.Add(at), out) // the fourth exactly 168 h after the first
	}
	c = customer("C", e.Add(-300*h))
	for range 4 {
		contact(&first, c, e.Add(-50*h), out) // four at one instant
	}
	contact(&first, c, e.Add(-49*h), in)
	c = customer("B", e.Add(-500*h))
	contact(&first, c, e.Add(-10*h), in)
	emit(&first, c, domain.CustomerChurned{Reason: "edge", OccurredAt: e}) // active at E, not after
	c = customer("B", e.Add(-500*h))
	contact(&first, c, e.Add(-10*h), in)
	emit(&first, c, domain.CustomerChurned{Reason: "edge", OccurredAt: e.Add(-us)}) // not active at E
	c = customer("C", e.Add(-500*h))
	contact(&first, c, e.Add(-300*h), out)
	emit(&first, c, domain.CustomerChurned{Reason: "edge", OccurredAt: e.Add(-2 * h)})
	emit(&first, c, domain.CustomerReactivated{Reason: "edge", OccurredAt: e.Add(-h)}) // won back before E
	contact(&first, c, e.Add(-90*time.Minute), out)                                    // while churned
	c = customer("A", e.Add(-500*h))
	contact(&first, c, e.Add(-20*h), in)
	emit(&first, c, domain.CustomerDataErased{OccurredAt: e.Add(-19 * h)})
	c = customer("B", e.Add(-900*h))
	contact(&first, c, e.Add(-400*h), in) // tier B: not due at E
	backDated := c

	// Late, after the live changes: tier A makes it due at E, then a
	// contact logged now but back-dated to 350 h before E makes it not
	// due again; a customer moves segment, region and owner with its
	// follow-ups and intervals; a tier A customer becomes C.
	a, cc, seg, region := "A", "C", "public", "apac"
	emit(&late, backDated, domain.CustomerClassified{Tier: &a, OccurredAt: e.Add(h)})
	emit(&late, moved, domain.TeamMemberAssigned{Role: domain.RoleAccountManager, Member: "edge-manager", OccurredAt: e.Add(3 * h)})
	emit(&late, moved, domain.CustomerClassified{Segment: &seg, Region: &region, OccurredAt: e.Add(3 * h)})
	emit(&late, reTier, domain.CustomerClassified{Tier: &cc, OccurredAt: e.Add(3 * h)})
	contact(&late, backDated, e.Add(-350*h), in)
	contact(&late, backDated, e.Add(-2000*h), out) // before its registration
	return first, late
}
