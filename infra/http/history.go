package http

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/history"
)

// HistoryQueries reads the audit-history read model (readmodels/history).
type HistoryQueries interface {
	// History returns a page after cursor ("" for the first).
	History(ctx context.Context, customerID uuid.UUID, f history.Filter, cursor string, limit int) (history.Page, error)
	// Reads names the projectors the queries read (min_position).
	Reads() []string
}

func (s *Server) historyRoutes() []Route {
	if s.cfg.History == nil {
		return nil
	}
	return []Route{{Name: "getHistory", Method: http.MethodGet, Path: "/v1/customers/{id}/history", Roles: []Role{RoleAuditor}, handler: s.history}}
}

// history answers the customer's readable timeline, filtered by event
// type (type=ComplaintFiled or the full rapport.ComplaintFiled.v1, repeat
// or comma-separate for several) and recorded time (from, to).
func (s *Server) history(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", domain.ReasonCustomerNotFound)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var p fieldParser
	var f history.Filter
	known := domain.NewRegistry().Types()
	for _, raw := range q["type"] {
		for _, t := range strings.Split(raw, ",") {
			full := strings.TrimSpace(t)
			if !strings.HasPrefix(full, "rapport.") {
				full = "rapport." + full + ".v1"
			}
			if !slices.Contains(known, full) {
				p.fail("type", "unknown event type %q", t)
				continue
			}
			f.Types = append(f.Types, full)
		}
	}
	if v := q.Get("from"); v != "" {
		if t := p.time("from", &v); t != nil {
			f.From = *t
		}
	}
	if v := q.Get("to"); v != "" {
		if t := p.time("to", &v); t != nil {
			f.To = *t
		}
	}
	// An empty period is a mistake, not an empty answer: 422 naming from,
	// as the analytics endpoints answer.
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		p.fail("from", "must be before to (the period is [from, to))")
	}
	cursor := q.Get("cursor")
	if cursor != "" && !history.ValidCursor(cursor) {
		p.fail("cursor", "is not a cursor from a previous page")
	}
	limit := p.int("limit", q.Get("limit"), 1, 200, 100)
	if err := p.err(); err != nil {
		return err
	}
	if err := s.awaitPosition(r, s.cfg.History.Reads()...); err != nil {
		return err
	}
	page, err := s.cfg.History.History(r.Context(), id, f, cursor, limit)
	if err != nil {
		return err
	}
	var next *string
	if page.NextCursor != "" {
		next = &page.NextCursor
	}
	items := page.Items
	if items == nil {
		items = []history.Entry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"customer_id": id, "items": items, "next_cursor": next})
	return nil
}
