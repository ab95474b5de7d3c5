package work_test

import (
	"testing"

	"github.com/rapport-crm/rapport/infra/app/apptest"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// BenchmarkQueues reads the first page (50) of each queue over a generated
// history: go test -run '^$' -bench Queues ./readmodels/work/
func BenchmarkQueues(b *testing.B) {
	m := apptest.MustOpen(b)
	m.Generate(b, 7, 3000)
	q := work.NewQueries(m.Pool)
	ctx := b.Context()
	for name, read := range map[string]func() error{
		"complaints": func() error { _, err := q.Complaints(ctx, work.ComplaintFilter{}, 50, ""); return err },
		"breached": func() error {
			_, err := q.Complaints(ctx, work.ComplaintFilter{SLA: work.SLABreached}, 50, "")
			return err
		},
		"follow-ups": func() error {
			_, err := q.FollowUps(ctx, work.FollowUpFilter{State: work.FollowUpOverdue}, 50, "")
			return err
		},
		"contact-due": func() error { _, err := q.ContactDue(ctx, work.Filter{}, 50, ""); return err },
		"at-risk":     func() error { _, err := q.AtRisk(ctx, work.AtRiskFilter{}, 50, ""); return err },
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if err := read(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
