package analytics

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// serialSQL keeps the statements after it in its batch (its implicit
// transaction) on one process: the rollups' queries read a few thousand
// rows, and parallel workers only add their start — on a busy machine
// the leader waited 120–200 ms for two workers that had 6 ms of work
// (EXPLAIN ANALYZE of satisfaction by segment at 100,000 customers, load
// average 16). It also gives them the sort memory of their medians: the
// complaint report sorts a period's facts by group and then each group's
// timings twice, and with the default 4 MB of work_mem the 59,000 facts of
// 90 days at 100,000 customers went to disk (external merge, 5.8 MB; 44–70
// ms against 36–39 ms in memory, same session). And it turns JIT
// compilation off: the planner's cost of the monthly reports (a lateral
// subquery per month, estimated high) passed jit_above_cost, and
// compiling took 320–860 ms of a report whose execution took 100 ms
// (EXPLAIN ANALYZE, complaints by month over 90 days). is_local: the
// settings end with the batch, the pooled connection keeps the server's
// own.
const serialSQL = `SELECT set_config('max_parallel_workers_per_gather', '0', true), set_config('work_mem', '64MB', true),
	set_config('jit', 'off', true)`

// serial says whether family f's query at p is a rollup query of its own
// (the documented SQL, which the contacts run even with rollups, scans
// whole tables and keeps the server's parallelism).
func (q *Queries) serial(f Family, p Params) bool {
	if !q.rollups {
		return false
	}
	_, _, ok := q.rollupQuery(f, p)
	return ok
}

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
			batch := &pgx.Batch{}
			serial := q.serial(part, p)
			if serial {
				batch.Queue(serialSQL)
			}
			batch.Queue(sql, args...)
			results := q.pool.SendBatch(ctx, batch)
			var err error
			if serial {
				_, err = results.Exec()
			}
			if err == nil {
				var rows pgx.Rows
				if rows, err = results.Query(); err == nil {
					err = q.scan(rows, part, m)
				}
			}
			if cerr := results.Close(); err == nil {
				err = cerr
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
