// Package projectiontest generates realistic customer histories, encoded
// the way the command side encodes them (eventcodec: encrypted personal
// fields, hash chain), and writes them to an event store: through the
// store's Append, or in bulk straight into the Postgres store's table for
// benchmarks of a million events. Only tests import this package.
package projectiontest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/domain/eventstore"
)

// Append is one command's events for one stream.
type Append struct {
	Customer uuid.UUID
	Stream   string
	// FirstRevision is the revision of the first event (0 for a new
	// stream).
	FirstRevision uint64
	Domain        []domain.Event
	Events        []eventstore.EventData
}

// Expected is the expected revision to append with.
func (a Append) Expected() eventstore.ExpectedRevision {
	if a.FirstRevision == 0 {
		return eventstore.NoStream
	}
	return eventstore.Exact(a.FirstRevision - 1)
}

// Generator plans customer histories: registrations and, for registered
// customers, the mix of events a CRM sees (contacts, classification, team
// changes, follow-ups, complaints through their life cycle, surveys,
// churn and reactivation). Events of different customers interleave, as
// they do in production. It is deterministic for a seed.
type Generator struct {
	rng       *rand.Rand
	start     time.Time
	customers []*planned
	// EventsPerCustomer is the average history length. Default 10.
	EventsPerCustomer int
}

type planned struct {
	id        uuid.UUID
	state     domain.Customer
	next      uint64
	clock     time.Time
	complaint []uuid.UUID
}

// NewGenerator returns a generator; histories start a year before now.
func NewGenerator(seed uint64) *Generator {
	return &Generator{
		rng:               rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		start:             time.Now().UTC().Add(-365 * 24 * time.Hour).Truncate(time.Second),
		EventsPerCustomer: 10,
	}
}

func (g *Generator) uuid() uuid.UUID {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return uuid.UUID(b)
}

var (
	segments   = []string{"enterprise", "smb", "consumer"}
	tiers      = []string{"A", "B", "C"}
	regions    = []string{"emea", "amer", "apac"}
	industries = []string{"retail", "banking", "telecom", "health", "energy"}
	staff      = []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	categories = []string{"billing", "delivery", "quality", "service"}
)

func (g *Generator) pick(s []string) string { return s[g.rng.IntN(len(s))] }

// Plan returns appends holding n events in total.
func (g *Generator) Plan(n int) []Append {
	var out []Append
	for total := 0; total < n; {
		a := g.next(n - total)
		total += len(a.Domain)
		out = append(out, a)
	}
	return out
}

func (g *Generator) next(room int) Append {
	var c *planned
	if len(g.customers) == 0 || g.rng.IntN(g.EventsPerCustomer) == 0 {
		c = &planned{id: g.uuid(), clock: g.start.Add(time.Duration(g.rng.IntN(300*24)) * time.Hour)}
		g.customers = append(g.customers, c)
		name := fmt.Sprintf("Customer %s", c.id.String()[:8])
		e := domain.CustomerRegistered{
			CustomerID: c.id, Name: name, Email: fmt.Sprintf("c-%s@example.com", c.id.String()[:12]),
			Phone: fmt.Sprintf("+4420%07d", g.rng.IntN(10_000_000)), Company: g.pick([]string{"Acme", "Globex", "Initech", "Umbrella", ""}),
			Tags: []string{g.pick([]string{"vip", "newsletter", "partner"})}, Segment: g.pick(segments), Tier: g.pick(tiers),
			Region: g.pick(regions), Industry: g.pick(industries), OccurredAt: c.clock,
		}
		return g.emit(c, e)
	}
	// Recent customers are busier, like in production.
	i := len(g.customers) - 1 - min(int(g.rng.ExpFloat64()*float64(len(g.customers))/4), len(g.customers)-1)
	c = g.customers[i]
	if c.state.Status == domain.StatusErased {
		c = g.customers[g.rng.IntN(len(g.customers))]
		if c.state.Status == domain.StatusErased {
			return g.next(room)
		}
	}
	c.clock = c.clock.Add(time.Duration(1+g.rng.IntN(72)) * time.Hour)
	at := c.clock
	var e domain.Event
	switch r := g.rng.IntN(100); {
	case r < 30:
		e = domain.ContactLogged{ContactID: g.uuid(), Channel: domain.Channels()[g.rng.IntN(7)], Direction: domain.DirectionOutbound,
			Summary: "talked about the renewal", By: g.pick(staff), OccurredAt: at}
	case r < 36:
		seg := g.pick(segments)
		e = domain.CustomerClassified{Segment: &seg, OccurredAt: at}
	case r < 42:
		role := domain.Roles()[g.rng.IntN(3)]
		e = domain.TeamMemberAssigned{Role: role, Member: g.pick(staff), PreviousMember: c.state.Team[role], OccurredAt: at}
	case r < 46:
		phone := fmt.Sprintf("+4420%07d", g.rng.IntN(10_000_000))
		e = domain.CustomerProfileUpdated{Phone: &phone, OccurredAt: at}
	case r < 52:
		e = domain.FollowUpScheduled{FollowUpID: g.uuid(), DueAt: at.Add(7 * 24 * time.Hour), By: g.pick(staff), Note: "call back", OccurredAt: at}
	case r < 62:
		id := g.uuid()
		c.complaint = append(c.complaint, id)
		e = domain.ComplaintFiled{ComplaintID: id, Category: g.pick(categories), Severity: domain.Severities()[g.rng.IntN(4)],
			Description: "the parcel never arrived", Channel: domain.ChannelEmail, OccurredAt: at}
	case r < 78 && len(c.complaint) > 0:
		id := c.complaint[g.rng.IntN(len(c.complaint))]
		cp, _ := c.state.Complaint(id)
		switch {
		case cp.Status == domain.ComplaintStatusResolved:
			e = domain.ComplaintReopened{ComplaintID: id, Reason: "happened again", OccurredAt: at}
		case !cp.Acknowledged:
			e = domain.ComplaintAcknowledged{ComplaintID: id, By: g.pick(staff), Note: "looking into it", OccurredAt: at}
		case g.rng.IntN(4) == 0 && cp.Status != domain.ComplaintStatusEscalated:
			e = domain.ComplaintEscalated{ComplaintID: id, To: g.pick(staff), Reason: "needs a manager", OccurredAt: at}
		default:
			e = domain.ComplaintResolved{ComplaintID: id, By: g.pick(staff), Resolution: "refunded", OccurredAt: at}
		}
	case r < 92:
		csat, nps := 1+g.rng.IntN(5), g.rng.IntN(11)
		e = domain.SurveyRecorded{SurveyID: g.uuid(), CSAT: &csat, NPS: &nps, Comment: "fine", Channel: domain.ChannelEmail, OccurredAt: at}
	case r < 97:
		if c.state.Status == domain.StatusChurned {
			e = domain.CustomerReactivated{Reason: "came back", OccurredAt: at}
		} else {
			e = domain.CustomerChurned{Reason: "moved to a competitor", OccurredAt: at}
		}
	default:
		id := g.uuid()
		e = domain.ContactLogged{ContactID: id, Channel: domain.ChannelPhone, Direction: domain.DirectionInbound, Summary: "asked for an invoice", By: g.pick(staff), OccurredAt: at}
	}
	return g.emit(c, e)
}

func (g *Generator) emit(c *planned, events ...domain.Event) Append {
	a := Append{Customer: c.id, Stream: domain.StreamName(c.id), FirstRevision: c.next, Domain: events}
	for _, e := range events {
		c.state = domain.Evolve(c.state, e)
	}
	c.next += uint64(len(events))
	return a
}

// Encode encodes the appends with codec, in parallel across customers
// (each stream's hash chain is sequential).
func Encode(ctx context.Context, codec *eventcodec.Codec, appends []Append, workers int) error {
	byCustomer := map[uuid.UUID][]int{}
	var order []uuid.UUID
	for i, a := range appends {
		if _, ok := byCustomer[a.Customer]; !ok {
			order = append(order, a.Customer)
		}
		byCustomer[a.Customer] = append(byCustomer[a.Customer], i)
	}
	work := make(chan uuid.UUID)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				prev := ""
				for _, i := range byCustomer[id] {
					a := &appends[i]
					ids := make([]uuid.UUID, len(a.Domain))
					for k := range ids {
						ids[k] = uuid.New()
					}
					data, last, err := codec.Encode(ctx, eventcodec.Batch{
						Stream: a.Stream, FirstRevision: a.FirstRevision, PrevHash: prev,
						Metadata: eventcodec.Metadata{CustomerID: a.Customer, Actor: "loadgen", CorrelationID: "corr-" + ids[0].String()[:8], CausationID: ids[0], RecordedAt: time.Now().UTC()},
						Events:   a.Domain, IDs: ids,
					})
					if err != nil {
						errs <- err
						return
					}
					a.Events, prev = data, last
				}
			}
		}()
	}
	var err error
	for _, id := range order {
		select {
		case work <- id:
		case err = <-errs:
		}
		if err != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// AppendAll appends through the store's Append, in plan order.
func AppendAll(ctx context.Context, store eventstore.Store, appends []Append) (eventstore.Position, error) {
	var last eventstore.Position
	for _, a := range appends {
		res, err := store.Append(ctx, a.Stream, a.Expected(), a.Events)
		if err != nil {
			return last, fmt.Errorf("append to %s: %w", a.Stream, err)
		}
		last = res.Position
	}
	return last, nil
}
