package http

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"time"

	"github.com/rapport-crm/rapport/readmodels/staff"
)

// StaffQueries computes the staff scorecards (staff.Queries).
type StaffQueries interface {
	Report(ctx context.Context, from, to time.Time) (staff.Report, error)
	Reads() []string
}

// staffRoutes lists GET /v1/analytics/staff: analysts only.
func (s *Server) staffRoutes() []Route {
	if s.cfg.Staff == nil {
		return nil
	}
	return []Route{{Name: "getStaffScorecards", Method: http.MethodGet, Path: "/v1/analytics/staff", Roles: []Role{RoleAnalyst}, handler: s.staffScorecards}}
}

// staffScorecards answers the scorecards of [from, to) (the analytics'
// period rules: default the 90 days up to now) as JSON, or as CSV when the
// client asks for text/csv. Scorecards are by member: group_by is refused.
func (s *Server) staffScorecards(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Has("group_by") {
		return invalidFields(FieldError{Field: "group_by", Message: "staff scorecards have one row per staff member and take no group_by"})
	}
	params, err := parseAnalyticsParams(q, time.Now())
	if err != nil {
		return err
	}
	if err := s.awaitPosition(r, s.cfg.Staff.Reads()...); err != nil {
		return err
	}
	rep, err := s.cfg.Staff.Report(r.Context(), params.From, params.To)
	if err != nil {
		return err
	}
	if wantsCSV(r) {
		return writeStaffCSV(w, rep)
	}
	var b bytes.Buffer
	str := func(v any) {
		raw, _ := json.Marshal(v)
		b.Write(raw)
	}
	b.WriteString(`{"from":`)
	str(rep.From.UTC().Format(time.RFC3339Nano))
	b.WriteString(`,"to":`)
	str(rep.To.UTC().Format(time.RFC3339Nano))
	b.WriteString(`,"staff":[`)
	for i := range rep.Staff {
		sc := &rep.Staff[i]
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"member":`)
		str(sc.Member)
		for _, c := range staff.Columns {
			b.WriteString(`,"` + c + `":`)
			b.Write(figureJSON(sc.Figure(c)))
		}
		b.WriteByte('}')
	}
	b.WriteString("]}\n")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b.Bytes())
	return err
}

// writeStaffCSV writes the scorecards as CSV like the other analytics: a
// header row (member, then the figures in the JSON order), one row per
// member, the member's name neutralised against formulas.
func writeStaffCSV(w http.ResponseWriter, rep staff.Report) error {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.UseCRLF = true
	_ = cw.Write(append([]string{"member"}, staff.Columns...))
	for i := range rep.Staff {
		sc := &rep.Staff[i]
		row := []string{csvText(sc.Member)}
		for _, c := range staff.Columns {
			cell := string(figureJSON(sc.Figure(c)))
			if cell == "null" {
				cell = ""
			}
			row = append(row, cell)
		}
		_ = cw.Write(row)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="staff.csv"`)
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(b.Bytes())
	return err
}
