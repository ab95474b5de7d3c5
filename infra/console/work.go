package console

import (
	"net/http"
	"net/url"

	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/readmodels/work"
)

// queues are the work queues in menu order, with the API path of each.
var queues = []struct{ Key, Title, API string }{
	{"complaints", "Complaints", "/v1/work/complaints"},
	{"follow-ups", "Follow-ups", "/v1/work/follow-ups"},
	{"contact-due", "Contact due", "/v1/work/contact-due"},
	{"at-risk", "At risk", "/v1/work/at-risk"},
}

type workData struct {
	Queue, Title string
	Queues       []struct{ Key, Title, API string }
	Q            url.Values
	Complaints   []work.OpenComplaint
	FollowUps    []work.PendingFollowUp
	ContactDue   []work.ContactDue
	AtRisk       []work.AtRisk
	// Next is the link to the next page, empty on the last.
	Next     string
	APIQuery string
}

// work shows one queue, read with the API's parameter rules and its query.
func (c *Console) work(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	q := r.URL.Query()
	d := workData{Queue: q.Get("queue"), Queues: queues, Q: q}
	if d.Queue == "" {
		d.Queue = "complaints"
	}
	api := url.Values{}
	for k, v := range q {
		if k != "queue" && len(v) > 0 && v[0] != "" {
			api.Set(k, v[0])
		}
	}
	var next string
	ctx := r.Context()
	switch d.Queue {
	case "complaints":
		f, limit, cursor, err := rhttp.WorkComplaintParams(api)
		if err != nil {
			return err
		}
		page, err := c.cfg.Work.Complaints(ctx, f, limit, cursor)
		if err != nil {
			return err
		}
		d.Complaints, next = page.Items, page.NextCursor
	case "follow-ups":
		f, limit, cursor, err := rhttp.WorkFollowUpParams(api)
		if err != nil {
			return err
		}
		page, err := c.cfg.Work.FollowUps(ctx, f, limit, cursor)
		if err != nil {
			return err
		}
		d.FollowUps, next = page.Items, page.NextCursor
	case "contact-due":
		f, limit, cursor, err := rhttp.WorkContactDueParams(api)
		if err != nil {
			return err
		}
		page, err := c.cfg.Work.ContactDue(ctx, f, limit, cursor)
		if err != nil {
			return err
		}
		d.ContactDue, next = page.Items, page.NextCursor
	case "at-risk":
		f, limit, cursor, err := rhttp.WorkAtRiskParams(api)
		if err != nil {
			return err
		}
		page, err := c.cfg.Work.AtRisk(ctx, f, limit, cursor)
		if err != nil {
			return err
		}
		d.AtRisk, next = page.Items, page.NextCursor
	default:
		return rhttp.ParseAnalyticsParamsError("queue", "must be one of complaints, follow-ups, contact-due, at-risk")
	}
	for _, qu := range queues {
		if qu.Key == d.Queue {
			d.Title = qu.Title
			d.APIQuery = qu.API
			if len(api) > 0 {
				d.APIQuery += "?" + api.Encode()
			}
		}
	}
	if next != "" {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("cursor", next)
		d.Next = "/console/work?" + nq.Encode()
	}
	c.render(w, r, http.StatusOK, "work", &view{Title: "Work · " + d.Title, S: s, Data: d})
	return nil
}
