package app

import (
	"context"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/routing"
)

// withRouting adds the complaint routing policy to the projectors: it runs
// in the engine like them (checkpointed, one active process) and assigns
// through the customers' command handler, at most once per complaint.
func (m *Main) withRouting(projectors []projections.Projector, customers *commands.Customers) []projections.Projector {
	m.Routing = commands.NewRouting(m.Store, m.Codec, nil)
	return append(projectors, routing.NewPolicy(m.Store, m.Codec, RoutingAssigner{customers}, m.cfg.Logger))
}

// RoutingAssigner issues the policy's assignments as ordinary commands,
// through commands.Customers.HandleOnce: the command id is the
// ComplaintFiled event's id, so it is also the causation of the
// ComplaintAssigned event, and a run again finds it instead of assigning
// twice. The command is UnlessOwned: a complaint that already has an
// owner when the policy comes to it (a person assigned it while the
// policy lagged, was down or was being rebuilt) keeps that owner, and two
// runs racing (replicas during a failover) assign it once.
type RoutingAssigner struct{ Customers *commands.Customers }

// AssignOnce implements routing.Assigner.
func (a RoutingAssigner) AssignOnce(ctx context.Context, x routing.Assignment) (routing.AssignResult, error) {
	res, err := a.Customers.HandleOnce(ctx, commands.Request{
		CustomerID:    x.CustomerID,
		Command:       domain.AssignComplaint{ComplaintID: x.ComplaintID, Assignee: x.Assignee, UnlessOwned: true},
		CommandID:     x.Cause,
		Actor:         x.Actor,
		CorrelationID: x.CorrelationID,
	}, x.FiledRevision)
	return routing.AssignResult{Replayed: res.Replayed, Appended: res.Appended > 0}, err
}

// routingQueries answers the rules and the policy's decisions.
func (m *Main) routingQueries() *routing.Queries {
	return routing.NewQueries(m.Pool, m.Store, m.Codec)
}
