package analytics

import (
	"context"
	"sync"

	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// parallel runs the families' queries at once, each on its own pooled
// connection, and merges their groups in the families' order: the KPI
// overview then takes as long as its slowest part, not their sum. The
// parts never shared a snapshot (a batch outside a transaction runs each
// statement in its own), so the figures are the same.
func (q *Queries) parallel(ctx context.Context, parts []Family, p Params) (*merger, error) {
	each := make([]*merger, len(parts))
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, part := range parts {
		wg.Go(func() {
			sql, args := q.query(part, p)
			m := newMerger()
			rows, err := q.pool.Query(ctx, sql, args...)
			if err == nil {
				err = scan(rows, part, m)
			}
			each[i], errs[i] = m, readmodel.Fail("analytics: "+string(part), err)
		})
	}
	wg.Wait()
	merged := newMerger()
	for i, part := range parts {
		if errs[i] != nil {
			return nil, errs[i]
		}
		for _, g := range each[i].order {
			copyFamily(merged.group(g.Key), g, part)
		}
	}
	return merged, nil
}

// copyFamily copies the figures of family f from src into dst.
func copyFamily(dst, src *Group, f Family) {
	switch f {
	case Satisfaction:
		dst.CSATPct, dst.CSATAvg, dst.NPS = src.CSATPct, src.CSATAvg, src.NPS
		dst.Responses, dst.CSATResponses, dst.NPSResponses = src.Responses, src.CSATResponses, src.NPSResponses
	case Churn:
		dst.ChurnRate, dst.RetentionRate, dst.ActiveAtStart, dst.Churned = src.ChurnRate, src.RetentionRate, src.ActiveAtStart, src.Churned
	case Complaints:
		dst.ComplaintRate, dst.ResolutionRate = src.ComplaintRate, src.ResolutionRate
		dst.FirstResponseMedianS, dst.ResolutionMedianS = src.FirstResponseMedianS, src.ResolutionMedianS
		dst.SLABreaches, dst.FirstResponseBreaches, dst.ResolutionBreaches = src.SLABreaches, src.FirstResponseBreaches, src.ResolutionBreaches
		dst.Filed, dst.Resolved, dst.ActiveInPeriod = src.Filed, src.Resolved, src.ActiveInPeriod
	case Contacts:
		dst.ContactCoverage, dst.FollowUpsOverdue, dst.ActiveAtEnd, dst.Contacted = src.ContactCoverage, src.FollowUpsOverdue, src.ActiveAtEnd, src.Contacted
		dst.CadenceAdherence, dst.NotDue, dst.OverContacted = src.CadenceAdherence, src.NotDue, src.OverContacted
	}
}
