package console

import (
	"context"
	"strconv"

	"github.com/rapport-crm/rapport/infra/webhooks"
)

// Delivery health reads two pages of a subscription's delivery log (GET
// /v1/webhooks/{id}/deliveries): its pending deliveries, up to
// backlogLimit (the API's largest page), and its newest deliveries, up to
// recentLimit, of which those whose last attempt failed are the recent
// failures.
const (
	backlogLimit = 500
	recentLimit  = 100
	// failuresShown bounds the failures listed per subscription.
	failuresShown = 10
)

// webhookHealth is one subscription with its delivery health.
type webhookHealth struct {
	webhooks.Subscription
	// Backlog counts the pending deliveries, BacklogMore says there are
	// more than backlogLimit.
	Backlog     int
	BacklogMore bool
	// Oldest is the oldest pending delivery of the page read (nil: none).
	Oldest *webhooks.Delivery
	// Failures are the newest deliveries whose last attempt failed;
	// FailuresOf is how many of the newest Recent deliveries that is.
	Failures   []webhooks.Delivery
	FailedOf   int
	Recent     int
	BacklogAPI string
	RecentAPI  string
}

// failed says a delivery's last attempt failed: it has an error or a
// status outside 2xx.
func failed(d webhooks.Delivery) bool {
	if d.LastError != nil {
		return true
	}
	return d.LastStatus != nil && (*d.LastStatus < 200 || *d.LastStatus > 299)
}

// webhookHealths reads every subscription and its delivery health, the
// subscriptions at once.
func (c *Console) webhookHealths(ctx context.Context) ([]webhookHealth, error) {
	subs, err := c.cfg.Webhooks.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]webhookHealth, len(subs))
	var jobs []func() error
	for i, sub := range subs {
		h := &out[i]
		h.Subscription = sub
		base := "/v1/webhooks/" + sub.ID.String() + "/deliveries"
		h.BacklogAPI = base + "?state=pending&limit=" + strconv.Itoa(backlogLimit)
		h.RecentAPI = base + "?limit=" + strconv.Itoa(recentLimit)
		jobs = append(jobs, func() error {
			pending, err := c.cfg.Webhooks.Deliveries(ctx, sub.ID, webhooks.DeliveryFilter{State: "pending", Limit: backlogLimit})
			if err != nil {
				return err
			}
			h.Backlog, h.BacklogMore = len(pending), len(pending) == backlogLimit
			if len(pending) > 0 {
				h.Oldest = &pending[len(pending)-1]
			}
			return nil
		}, func() error {
			recent, err := c.cfg.Webhooks.Deliveries(ctx, sub.ID, webhooks.DeliveryFilter{Limit: recentLimit})
			if err != nil {
				return err
			}
			h.Recent = len(recent)
			for _, d := range recent {
				if !failed(d) {
					continue
				}
				h.FailedOf++
				if len(h.Failures) < failuresShown {
					d.Log = nil // the page shows the last attempt only
					h.Failures = append(h.Failures, d)
				}
			}
			return nil
		})
	}
	return out, parallelN(chartParallel, jobs...)
}
