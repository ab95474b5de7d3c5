package http_test

import (
	"encoding/csv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestStaffScorecardEndpoint: GET /v1/analytics/staff answers a row per
// staff member named in the period, as JSON and as CSV (formula-safe),
// to analysts only, with the analytics' period rules (422 naming the
// parameter) and no group_by.
func TestStaffScorecardEndpoint(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	writer, analyst := m.Keys["writer"], m.Keys["analyst"]
	var reg struct {
		CustomerID string `json:"customer_id"`
	}
	m.Post(t, "/v1/customers", map[string]any{"name": "Ada", "phone": "+44 20 7946 0001"}).JSON(t, &reg)
	base := "/v1/customers/" + reg.CustomerID
	m.Do(t, apptest.Request{Method: http.MethodPut, Path: base + "/team/account_manager", Key: writer, Body: map[string]any{"member": "@carol"}})
	m.Post(t, base+"/contacts", map[string]any{"channel": "phone", "direction": "outbound", "summary": "hello", "by": "bob"})
	var filed struct {
		ComplaintID string `json:"complaint_id"`
	}
	m.Post(t, base+"/complaints", map[string]any{"category": "billing", "severity": "low", "description": "twice"}).JSON(t, &filed)
	m.Post(t, base+"/complaints/"+filed.ComplaintID+"/assignment", map[string]any{"assignee": "dave"})
	m.Post(t, base+"/complaints/"+filed.ComplaintID+"/acknowledgement", map[string]any{"by": "dave"})
	var last struct{ Position uint64 }
	m.Post(t, base+"/surveys", map[string]any{"csat": 5, "complaint_id": filed.ComplaintID}).JSON(t, &last)

	wait := "?min_position=" + strconv.FormatUint(last.Position, 10)
	resp := m.Get(t, "analyst", "/v1/analytics/staff"+wait)
	if resp.Status != http.StatusOK {
		t.Fatalf("staff: %d %s", resp.Status, resp.Body)
	}
	var rep struct {
		Staff []map[string]any `json:"staff"`
	}
	resp.JSON(t, &rep)
	rows := map[string]map[string]any{}
	for _, r := range rep.Staff {
		rows[r["member"].(string)] = r
	}
	if len(rows) != 3 || rows["bob"]["contacts_logged"] != 1.0 || rows["dave"]["complaints_owned"] != 1.0 ||
		rows["dave"]["csat_pct_after_complaints"] != 100.0 || rows["dave"]["resolution_rate"] != 0.0 || rows["@carol"]["accounts"] != 1.0 ||
		rows["@carol"]["accounts_churn_rate"] != nil || rows["bob"]["follow_ups_done_on_time_pct"] != nil {
		t.Errorf("scorecards: %s", resp.Body)
	}

	csvResp := m.Do(t, apptest.Request{Method: http.MethodGet, Path: "/v1/analytics/staff" + wait, Key: analyst, Header: map[string]string{"Accept": "text/csv"}})
	records, err := csv.NewReader(strings.NewReader(string(csvResp.Body))).ReadAll()
	if err != nil || csvResp.Status != http.StatusOK || !strings.HasPrefix(csvResp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %v %s", csvResp.Status, err, csvResp.Body)
	}
	if len(records) != 4 || records[0][0] != "member" || !slices.Contains(records[0], "accounts_churn_rate") {
		t.Fatalf("csv: %v", records)
	}
	for _, r := range records[1:] {
		if r[0] == "@carol" {
			t.Errorf("a member starting with @ must be neutralised in CSV: %v", r)
		}
	}

	for _, c := range []struct {
		query, field string
	}{
		{"?group_by=owner", "group_by"},
		{"?from=yesterday", "from"},
		{"?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"},
	} {
		resp := m.Get(t, "analyst", "/v1/analytics/staff"+c.query)
		if resp.Status != http.StatusUnprocessableEntity || !slices.Contains(problemFields(t, resp), c.field) {
			t.Errorf("%s: %d %s", c.query, resp.Status, resp.Body)
		}
	}
	for _, role := range []string{"writer", "auditor"} {
		if resp := m.Get(t, role, "/v1/analytics/staff"); resp.Status != http.StatusForbidden {
			t.Errorf("%s reads scorecards: %d", role, resp.Status)
		}
	}
	// A period long past names nobody.
	resp = m.Get(t, "analyst", "/v1/analytics/staff?from=2000-01-01T00:00:00Z&to="+time.Date(2000, 2, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339))
	resp.JSON(t, &rep)
	if resp.Status != http.StatusOK || len(rep.Staff) != 0 {
		t.Errorf("an empty period: %d %s", resp.Status, resp.Body)
	}
}
