package http

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/analytics"
	"github.com/rapport-crm/rapport/readmodels/complaints"
	"github.com/rapport-crm/rapport/readmodels/contacts"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/surveys"
)

// The fuzz targets of the query parameters need no database: they call
// the pure parsers, and drive a Server whose queries are stubs.

type fuzzKeys struct{}

func (fuzzKeys) Authenticate(context.Context, string) (Principal, error) {
	return Principal{Name: "fuzzer", Roles: []Role{RoleAdmin}}, nil
}

type fuzzCommands struct{}

func (fuzzCommands) Handle(context.Context, commands.Request) (commands.Result, error) {
	return commands.Result{}, errors.New("no commands here")
}

type fuzzProjections struct{}

func (fuzzProjections) Status(context.Context) ([]projections.Status, error) { return nil, nil }
func (fuzzProjections) RequestRebuild(context.Context, string) error         { return nil }
func (fuzzProjections) WaitForPosition(context.Context, eventstore.Position, ...string) error {
	return nil
}

// fuzzActivity answers one item per list (so that pages have a cursor)
// for a known customer. It stands for the contacts, complaints, surveys
// and life-cycle queries at once.
type fuzzActivity struct{}

var fuzzCustomer = uuid.MustParse("7d9c8f2e-1b3a-4c5d-9e8f-0a1b2c3d4e5f")

func (fuzzActivity) Reads() []string { return []string{"fuzz"} }

func (fuzzActivity) Known(_ context.Context, id uuid.UUID) (bool, error) {
	return id == fuzzCustomer, nil
}

func (fuzzActivity) Contacts(_ context.Context, id uuid.UUID, _ string, limit int) (readmodel.Page[contacts.Contact], error) {
	return page(limit, contacts.ContactsCursor, contacts.Contact{ID: uuid.New(), CustomerID: id, Channel: "email", Direction: "inbound", By: "b", OccurredAt: time.Now()},
		func(c contacts.Contact) readmodel.Key { return readmodel.Key{At: c.OccurredAt, ID: c.ID} }), nil
}

func (fuzzActivity) Contact(context.Context, uuid.UUID, uuid.UUID) (contacts.Contact, error) {
	return contacts.Contact{}, contacts.ErrNotFound
}

func (fuzzActivity) FollowUps(_ context.Context, id uuid.UUID, _ string, limit int) (readmodel.Page[contacts.FollowUp], error) {
	return page(limit, contacts.FollowUpsCursor, contacts.FollowUp{ID: uuid.New(), CustomerID: id, By: "b", DueAt: time.Now()},
		func(f contacts.FollowUp) readmodel.Key { return readmodel.Key{At: f.DueAt, ID: f.ID} }), nil
}

func (fuzzActivity) FollowUp(context.Context, uuid.UUID, uuid.UUID) (contacts.FollowUp, error) {
	return contacts.FollowUp{}, contacts.ErrNotFound
}

func (fuzzActivity) Complaints(_ context.Context, id uuid.UUID, _ string, limit int) (readmodel.Page[complaints.Complaint], error) {
	return page(limit, complaints.Cursor, complaints.Complaint{ID: uuid.New(), CustomerID: id, Severity: "low", Status: "filed", FiledAt: time.Now()},
		func(c complaints.Complaint) readmodel.Key { return readmodel.Key{At: c.FiledAt, ID: c.ID} }), nil
}

func (fuzzActivity) Complaint(context.Context, uuid.UUID, uuid.UUID) (complaints.Complaint, error) {
	return complaints.Complaint{}, complaints.ErrNotFound
}

func (fuzzActivity) Surveys(_ context.Context, id uuid.UUID, _ string, limit int) (readmodel.Page[surveys.Survey], error) {
	return page(limit, surveys.Cursor, surveys.Survey{ID: uuid.New(), CustomerID: id, AnsweredAt: time.Now()},
		func(s surveys.Survey) readmodel.Key { return readmodel.Key{At: s.AnsweredAt, ID: s.ID} }), nil
}

func (fuzzActivity) Survey(context.Context, uuid.UUID, uuid.UUID) (surveys.Survey, error) {
	return surveys.Survey{}, surveys.ErrNotFound
}

// page reads min(limit+1, 3) copies, as a query reads one more than the
// page: a full page with a next cursor when limit is small, a last page
// otherwise.
func page[T any](limit int, kind readmodel.CursorKind, v T, key func(T) readmodel.Key) readmodel.Page[T] {
	out := make([]T, min(limit+1, 3))
	for i := range out {
		out[i] = v
	}
	return readmodel.PageOf(out, limit, kind, key)
}

// fuzzAnalytics answers every group shape: a named group, a null key, and
// null and zero figures.
type fuzzAnalytics struct{}

func (fuzzAnalytics) Reads(analytics.Family) []string { return []string{"fuzz"} }

func (fuzzAnalytics) Report(_ context.Context, _ analytics.Family, p analytics.Params) (analytics.Report, error) {
	if !p.From.Before(p.To) {
		return analytics.Report{}, errors.New("the parser let an empty period through")
	}
	key, pct := "smb", 12.5
	return analytics.Report{Params: p, Groups: []analytics.Group{
		{Key: &key, CSATPct: &pct, Responses: 3, ChurnRate: &pct, FollowUpsOverdue: 1},
		{},
	}}, nil
}

func fuzzServer(tb testing.TB) http.Handler {
	s, err := NewServer(Config{Commands: fuzzCommands{}, Keys: fuzzKeys{}, Contacts: fuzzActivity{}, Complaints: fuzzActivity{}, Surveys: fuzzActivity{},
		Lifecycles: fuzzActivity{}, Analytics: fuzzAnalytics{},
		Projections: fuzzProjections{}, RateLimit: 1e9, RateBurst: 1 << 30})
	if err != nil {
		tb.Fatal(err)
	}
	return s.Handler()
}

// checkAnswer fails on a 5xx, and on a refusal that is not a problem
// document matching its status.
func checkAnswer(t *testing.T, target string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
	}
	if rec.Code >= 400 {
		var p Problem
		if rec.Header().Get("Content-Type") != "application/problem+json" || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Status != rec.Code || p.Reason == "" {
			t.Fatalf("GET %s: %d answer is not a problem document: %s", target, rec.Code, rec.Body)
		}
	}
}

var fuzzLists = []struct {
	path string
	kind readmodel.CursorKind
}{
	{"contacts", contacts.ContactsCursor}, {"follow-ups", contacts.FollowUpsCursor}, {"complaints", complaints.Cursor}, {"surveys", surveys.Cursor},
}

// FuzzListParams feeds arbitrary query strings to the lists' parameter
// parser and to every list endpoint: a parse either succeeds with a limit
// in range and a cursor that round-trips, or is a 422 naming limit or
// cursor; no answer is a 5xx.
func FuzzListParams(f *testing.F) {
	valid := contacts.ContactsCursor.Encode(readmodel.Key{At: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), ID: fuzzCustomer})
	for i, seed := range []string{
		"", "limit=1", "limit=500", "limit=501", "limit=0", "limit=-1", "limit=abc", "limit=", "limit=1e3", "limit=99999999999999999999",
		"cursor=" + valid, "cursor=", "cursor=%%%", "cursor=Yy4xLjA", "limit=2&cursor=" + valid, "limit=2&limit=3",
		"min_position=12", "min_position=x", "cursor=" + complaints.Cursor.Encode(readmodel.Key{At: time.Unix(0, 0), ID: uuid.Nil}),
	} {
		f.Add(uint8(i), seed)
	}
	handler := fuzzServer(f)
	f.Fuzz(func(t *testing.T, pick uint8, query string) {
		list := fuzzLists[int(pick)%len(fuzzLists)]
		q, _ := url.ParseQuery(query)
		p, err := parseListParams(q, list.kind)
		if err != nil {
			var problem *Problem
			if !errors.As(err, &problem) || problem.Status != http.StatusUnprocessableEntity || len(problem.Errors) == 0 {
				t.Fatalf("%q: %v is not a 422 naming the parameter", query, err)
			}
			for _, e := range problem.Errors {
				if e.Field != "limit" && e.Field != "cursor" {
					t.Fatalf("%q: names %q", query, e.Field)
				}
			}
		} else {
			if p.limit < 1 || p.limit > maxListLimit {
				t.Fatalf("%q: limit %d", query, p.limit)
			}
			if q.Has("cursor") != (p.cursor != "") {
				t.Fatalf("%q: cursor %q", query, p.cursor)
			}
			if p.cursor != "" {
				key, err := list.kind.Decode(p.cursor)
				again, errAgain := list.kind.Decode(list.kind.Encode(key))
				if err != nil || errAgain != nil || !again.At.Equal(key.At) || again.ID != key.ID {
					t.Fatalf("%q: cursor %q does not round-trip", query, p.cursor)
				}
			}
		}
		for _, customer := range []string{fuzzCustomer.String(), uuid.Nil.String()} {
			target := "/v1/customers/" + customer + "/" + list.path + "?" + query
			req, err := http.NewRequest(http.MethodGet, "http://rapport.test/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Path = "/v1/customers/" + customer + "/" + list.path
			req.URL.RawQuery = query
			req.Header.Set("Authorization", "Bearer fuzz")
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			checkAnswer(t, target, rec)
			if rec.Code == http.StatusOK && customer == fuzzCustomer.String() {
				var page struct {
					Items      []json.RawMessage `json:"items"`
					NextCursor *string           `json:"next_cursor"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || page.Items == nil {
					t.Fatalf("GET %s: %s", target, rec.Body)
				}
				if page.NextCursor != nil {
					if !list.kind.Valid(*page.NextCursor) {
						t.Fatalf("GET %s: next_cursor %q does not decode", target, *page.NextCursor)
					}
				}
			}
		}
	})
}

// FuzzAnalyticsParams feeds arbitrary query strings and Accept headers to
// the analytics parameter parser and to every analytics endpoint: a parse
// either succeeds with a non-empty period within the years 1-9999, a known
// grouping and at most MaxMonths months by month, or is a 422 naming
// group_by, from or to; no answer is a 5xx, and a success is JSON or CSV
// as asked.
func FuzzAnalyticsParams(f *testing.F) {
	for i, seed := range []struct{ query, accept string }{
		{"", ""}, {"group_by=segment", "text/csv"}, {"group_by=month&from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z", "application/json"},
		{"group_by=colour", ""}, {"group_by=", ""}, {"from=2026-01-01", ""}, {"from=yesterday&to=now", ""},
		{"from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", ""}, {"to=0001-01-01T00:00:00Z", ""},
		{"from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59.999999999Z&group_by=month", "text/csv;q=0.5, application/json"},
		{"to=9999-12-31T23:59:59-23:59", ""}, {"from=2026-01-01T00:00:00+14:00", ""}, {"group_by=owner&min_position=7", "*/*"},
		{"group_by=tier&group_by=month", "text/csv; q=0"}, {"from=%zz", "text/*"},
	} {
		f.Add(uint8(i), seed.query, seed.accept)
	}
	handler := fuzzServer(f)
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	families := analytics.Families()
	f.Fuzz(func(t *testing.T, pick uint8, query, accept string) {
		q, _ := url.ParseQuery(query)
		p, err := parseAnalyticsParams(q, now)
		if err != nil {
			var problem *Problem
			if !errors.As(err, &problem) || problem.Status != http.StatusUnprocessableEntity || len(problem.Errors) == 0 {
				t.Fatalf("%q: %v is not a 422 naming the parameter", query, err)
			}
			for _, e := range problem.Errors {
				if e.Field != "group_by" && e.Field != "from" && e.Field != "to" {
					t.Fatalf("%q: names %q", query, e.Field)
				}
			}
		} else {
			switch {
			case !p.From.Before(p.To):
				t.Fatalf("%q: empty period %v..%v", query, p.From, p.To)
			case p.From.Year() < 1 || p.To.Year() > 9999:
				t.Fatalf("%q: period %v..%v outside the years 1-9999", query, p.From, p.To)
			case p.GroupBy == analytics.Month && p.Months() > analytics.MaxMonths:
				t.Fatalf("%q: %d months", query, p.Months())
			}
			if _, err := json.Marshal(map[string]time.Time{"from": p.From, "to": p.To}); err != nil {
				t.Fatalf("%q: %v", query, err)
			}
		}
		family := families[int(pick)%len(families)]
		req, err := http.NewRequest(http.MethodGet, "http://rapport.test/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Path = "/v1/analytics/" + string(family)
		req.URL.RawQuery = query
		req.Header.Set("Authorization", "Bearer fuzz")
		req.Header.Set("Accept", accept)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		target := req.URL.String()
		checkAnswer(t, target, rec)
		if rec.Code != http.StatusOK {
			return
		}
		if ct := rec.Header().Get("Content-Type"); strings.HasPrefix(ct, "text/csv") {
			lines := strings.Split(strings.TrimSuffix(rec.Body.String(), "\r\n"), "\r\n")
			if len(lines) != 3 || !strings.HasPrefix(lines[0], "key,") {
				t.Fatalf("GET %s: CSV %q", target, rec.Body)
			}
		} else {
			var body struct {
				From, To time.Time
				Groups   []map[string]any
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Groups) != 2 || !body.From.Before(body.To) {
				t.Fatalf("GET %s: %s (%v)", target, rec.Body, err)
			}
		}
	})
}
