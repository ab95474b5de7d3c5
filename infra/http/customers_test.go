package http_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventstore"
	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/app/apptest"
	rhttp "github.com/rapport-crm/rapport/infra/http"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/customers"
	"github.com/rapport-crm/rapport/readmodels/risk"
)

// cqDirectory builds customers through the real command layer at
// simulated business times (commands.Request.At), relative to the real
// clock: the API evaluates churn risk now.
type cqDirectory struct {
	t    *testing.T
	m    *apptest.Main
	now  time.Time
	last eventstore.Position
}

func (d *cqDirectory) do(id uuid.UUID, ago time.Duration, cmd domain.Command) uuid.UUID {
	d.t.Helper()
	res, err := d.m.Commands.Handle(context.Background(), commands.Request{
		CustomerID: id, Command: cmd, CommandID: uuid.New(), Actor: "tester", At: d.now.Add(-ago),
	})
	if err != nil {
		d.t.Fatalf("%T %s ago: %v", cmd, ago, err)
	}
	d.last = max(d.last, res.Position)
	if _, ok := cmd.(domain.RegisterCustomer); ok {
		return res.CustomerID
	}
	return res.CreatedID
}

func (d *cqDirectory) wait() {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.m.Engine.WaitForPosition(ctx, d.last); err != nil {
		d.t.Fatal(err)
	}
}

// cqCustomer is the API's customer, decoded.
type cqCustomer struct {
	ID             uuid.UUID         `json:"id"`
	Name           *string           `json:"name"`
	Email          *string           `json:"email"`
	Phone          *string           `json:"phone"`
	Company        *string           `json:"company"`
	Tags           []string          `json:"tags"`
	Segment        *string           `json:"segment"`
	Tier           *string           `json:"tier"`
	Region         *string           `json:"region"`
	Industry       *string           `json:"industry"`
	Team           map[string]string `json:"team"`
	Status         string            `json:"status"`
	RegisteredAt   time.Time         `json:"registered_at"`
	LastContactAt  *time.Time        `json:"last_contact_at"`
	OpenComplaints int               `json:"open_complaints"`
	LastCSAT       *int              `json:"last_csat"`
	LastNPS        *int              `json:"last_nps"`
	Risk           *risk.Risk        `json:"risk"`
	Revision       uint64            `json:"revision"`
}

type cqList struct {
	Items      []cqCustomer `json:"items"`
	NextCursor *string      `json:"next_cursor"`
}

func cqRisk(r *risk.Risk) string {
	if r == nil {
		return "none"
	}
	parts := []string{fmt.Sprint(r.Score), r.Level}
	for _, f := range r.Factors {
		parts = append(parts, fmt.Sprintf("%s=%d", f.Factor, f.Points))
	}
	return strings.Join(parts, " ")
}

func cqPtr[T any](v T) *T { return &v }

const cqDay = 24 * time.Hour

// cqFixture is a small directory whose churn risks are computed by hand
// (PRODUCT.md's default weights):
//
//	ada     enterprise/A/emea, team carol (account manager) and dave
//	        (support); registered 100 days ago, last contact 91 days ago
//	        (30), last CSAT 2 (20), last NPS 5 (20): 70 high
//	grace   smb/B/amer; contact 20 days ago; two high complaints filed 5 h
//	        ago, not acknowledged (30 + SLA 15); last CSAT 1 (20): 65 high
//	linus   smb/C/emea, sales dave; contact 70 days ago (20); a follow-up
//	        due 60 days ago (10): 30 medium
//	barbara consumer/A/apac; registered 10 days ago, contact a day ago: 0 low
//	ken     churned: no risk
//	dennis  erased: no risk, personal fields null
type cqFixture struct {
	ada, grace, linus, barbara, ken, dennis uuid.UUID
}

func buildCQFixture(d *cqDirectory) cqFixture {
	var f cqFixture
	reg := func(ago time.Duration, name, email, company, segment, tier, region string) uuid.UUID {
		return d.do(uuid.Nil, ago, domain.RegisterCustomer{Name: name, Email: email, Company: company, Tags: []string{"t-" + strings.ToLower(name)},
			Segment: segment, Tier: tier, Region: region, Industry: "software"})
	}
	contact := func(id uuid.UUID, ago time.Duration) {
		d.do(id, ago, domain.LogContact{Channel: domain.ChannelPhone, Direction: domain.DirectionOutbound, Summary: "call", By: "carol"})
	}
	f.ada = reg(100*cqDay, "Ada Lovelace", "ada@engines.example", "Analytical Engines", "enterprise", "A", "emea")
	d.do(f.ada, 99*cqDay, domain.AssignTeamMember{Role: domain.RoleAccountManager, Member: "carol"})
	d.do(f.ada, 99*cqDay, domain.AssignTeamMember{Role: domain.RoleSupport, Member: "dave"})
	contact(f.ada, 91*cqDay)
	d.do(f.ada, 10*cqDay, domain.RecordSurvey{CSAT: cqPtr(2), NPS: cqPtr(5), Channel: domain.ChannelEmail})

	f.grace = reg(40*cqDay, "Grace Hopper", "grace@navy.example", "Navy", "smb", "B", "amer")
	contact(f.grace, 20*cqDay)
	for range 2 {
		d.do(f.grace, 5*time.Hour, domain.FileComplaint{Category: "billing", Severity: domain.SeverityHigh, Description: "charged twice"})
	}
	d.do(f.grace, 4*time.Hour, domain.RecordSurvey{CSAT: cqPtr(1)})

	f.linus = reg(200*cqDay, "Linus Torvalds", "linus@kernel.example", "Kernel", "smb", "C", "emea")
	d.do(f.linus, 199*cqDay, domain.AssignTeamMember{Role: domain.RoleSales, Member: "dave"})
	contact(f.linus, 70*cqDay)
	d.do(f.linus, 69*cqDay, domain.ScheduleFollowUp{DueAt: d.now.Add(-60 * cqDay), By: "dave", Note: "call back"})

	f.barbara = reg(10*cqDay, "Barbara Liskov", "barbara@mit.example", "MIT", "consumer", "A", "apac")
	contact(f.barbara, cqDay)

	f.ken = reg(100*cqDay-time.Hour, "Ken Thompson", "ken@bell.example", "Bell Labs", "enterprise", "B", "amer")
	d.do(f.ken, cqDay, domain.MarkChurned{Reason: "price"})

	f.dennis = reg(50*cqDay, "Dennis Ritchie", "dennis@bell.example", "Bell Labs", "enterprise", "C", "amer")
	d.do(f.dennis, cqDay, domain.EraseCustomerData{Reason: "GDPR"})
	d.wait()
	return f
}

func (f cqFixture) names() map[uuid.UUID]string {
	return map[uuid.UUID]string{f.ada: "ada", f.grace: "grace", f.linus: "linus", f.barbara: "barbara", f.ken: "ken", f.dennis: "dennis"}
}

// TestCustomersAPI drives GET /v1/customers/{id} and GET /v1/customers
// through the whole service, every exchange validated against the
// OpenAPI document.
func TestCustomersAPI(t *testing.T) {
	t.Parallel()
	m := apptest.MustOpen(t)
	d := &cqDirectory{t: t, m: m, now: time.Now()}
	f := buildCQFixture(d)
	names := f.names()
	get := func(path string, want int) *apptest.Response {
		t.Helper()
		resp := m.Get(t, "analyst", path)
		if resp.Status != want {
			t.Fatalf("GET %s: %d %s, want %d", path, resp.Status, resp.Body, want)
		}
		return resp
	}
	customer := func(id uuid.UUID) cqCustomer {
		t.Helper()
		var c cqCustomer
		get("/v1/customers/"+id.String(), http.StatusOK).JSON(t, &c)
		return c
	}

	t.Run("read back", func(t *testing.T) {
		ada := customer(f.ada)
		if *ada.Name != "Ada Lovelace" || *ada.Email != "ada@engines.example" || ada.Phone != nil || *ada.Company != "Analytical Engines" ||
			!slices.Equal(ada.Tags, []string{"t-ada lovelace"}) || *ada.Segment != "enterprise" || *ada.Tier != "A" || *ada.Region != "emea" ||
			*ada.Industry != "software" || ada.Team["account_manager"] != "carol" || ada.Team["support"] != "dave" || len(ada.Team) != 2 ||
			ada.Status != "active" || ada.OpenComplaints != 0 || *ada.LastCSAT != 2 || *ada.LastNPS != 5 || ada.Revision != 4 {
			t.Errorf("ada: %+v", ada)
		}
		if !ada.RegisteredAt.Equal(d.now.Add(-100*cqDay).Truncate(time.Microsecond)) || !ada.LastContactAt.Equal(d.now.Add(-91*cqDay).Truncate(time.Microsecond)) {
			t.Errorf("ada's dates: %s, %s", ada.RegisteredAt, ada.LastContactAt)
		}
		for id, want := range map[uuid.UUID]string{
			f.ada:     "70 high days_since_contact=30 low_csat=20 low_nps=20",
			f.grace:   "65 high open_complaints=30 sla_breach=15 low_csat=20",
			f.linus:   "30 medium days_since_contact=20 follow_up_overdue=10",
			f.barbara: "0 low",
			f.ken:     "none",
			f.dennis:  "none",
		} {
			if got := cqRisk(customer(id).Risk); got != want {
				t.Errorf("%s: risk %q, want %q", names[id], got, want)
			}
		}
		grace := customer(f.grace)
		if grace.OpenComplaints != 2 || grace.LastNPS != nil || grace.LastContactAt == nil {
			t.Errorf("grace: %+v", grace)
		}
		if ken := customer(f.ken); ken.Status != "churned" || *ken.Name != "Ken Thompson" {
			t.Errorf("ken: %+v", ken)
		}
		dennis := customer(f.dennis)
		if dennis.Status != "erased" || dennis.Name != nil || dennis.Email != nil || dennis.Company != nil || dennis.Tags != nil ||
			*dennis.Segment != "enterprise" || *dennis.Tier != "C" || dennis.RegisteredAt.IsZero() {
			t.Errorf("dennis: %+v", dennis)
		}
		resp := get("/v1/customers/"+f.ada.String(), http.StatusOK)
		if resp.Header.Get("ETag") != `"4"` {
			t.Errorf("ETag %q", resp.Header.Get("ETag"))
		}
		for _, path := range []string{"/v1/customers/" + uuid.NewString(), "/v1/customers/nope"} {
			var p rhttp.Problem
			get(path, http.StatusNotFound).JSON(t, &p)
			if p.Reason != domain.ReasonCustomerNotFound {
				t.Errorf("%s: reason %q", path, p.Reason)
			}
		}
	})

	list := func(query string) []uuid.UUID {
		t.Helper()
		var out []uuid.UUID
		cursor := ""
		for pages := 0; ; pages++ {
			q := query
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			var page cqList
			get("/v1/customers?limit=2&"+q, http.StatusOK).JSON(t, &page)
			if len(page.Items) > 2 || pages > 10 {
				t.Fatalf("%s: page of %d items, page %d", query, len(page.Items), pages)
			}
			for _, c := range page.Items {
				out = append(out, c.ID)
			}
			if page.NextCursor == nil {
				return out
			}
			cursor = *page.NextCursor
		}
	}
	named := func(ids []uuid.UUID) []string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = names[id]
		}
		return out
	}

	t.Run("filters, search and pages", func(t *testing.T) {
		// Pages follow registration order, oldest first.
		all := []string{"linus", "ada", "ken", "dennis", "grace", "barbara"}
		for query, want := range map[string][]string{
			"":                               all,
			"segment=smb":                    {"linus", "grace"},
			"segment=%20enterprise%20":       {"ada", "ken", "dennis"},
			"tier=A":                         {"ada", "barbara"},
			"region=emea":                    {"linus", "ada"},
			"owner=carol":                    {"ada"},
			"owner=dave":                     {"linus", "ada"},
			"status=active":                  {"linus", "ada", "grace", "barbara"},
			"status=churned":                 {"ken"},
			"status=erased":                  {"dennis"},
			"risk=high":                      {"ada", "grace"},
			"risk=medium":                    {"linus"},
			"risk=low":                       {"barbara"},
			"risk=high&segment=smb":          {"grace"},
			"q=ADA":                          {"ada"},
			"q=bell":                         {"ken"}, // the erased customer's company is gone
			"q=.example":                     {"linus", "ada", "ken", "grace", "barbara"},
			"q=hopper&status=active&tier=B":  {"grace"},
			"no_contact_days=60":             {"linus", "ada", "ken"},
			"no_contact_days=71":             {"ada", "ken"},
			"risk=high&no_contact_days=60":   {"ada"}, // the analysts' question
			"q=nobody":                       {},
			"segment=enterprise&status=none": nil, // 422, below
		} {
			if want == nil {
				continue
			}
			if got := named(list(query)); !slices.Equal(got, want) {
				t.Errorf("%q: %v, want %v", query, got, want)
			}
		}
	})

	t.Run("the analysts' question", func(t *testing.T) {
		// Which high-risk customers have had no contact for 60 days, and why?
		var page cqList
		get("/v1/customers?risk=high&no_contact_days=60", http.StatusOK).JSON(t, &page)
		if len(page.Items) != 1 || page.Items[0].ID != f.ada || cqRisk(page.Items[0].Risk) != "70 high days_since_contact=30 low_csat=20 low_nps=20" ||
			page.NextCursor != nil {
			t.Fatalf("answer: %+v", page)
		}
	})

	t.Run("bad parameters", func(t *testing.T) {
		for query, fields := range map[string][]string{
			"status=gone":                          {"status"},
			"risk=extreme":                         {"risk"},
			"tier=D":                               {"tier"},
			"tier=a":                               {"tier"},
			"limit=0":                              {"limit"},
			"limit=501":                            {"limit"},
			"limit=ten":                            {"limit"},
			"cursor=garbage!":                      {"cursor"},
			"cursor=" + url.QueryEscape("MTIzNDU"): {"cursor"},
			"no_contact_days=-1":                   {"no_contact_days"},
			"no_contact_days=0":                    {"no_contact_days"},
			"due_for_contact=yes":                  {"due_for_contact"},
			"due_for_contact=TRUE":                 {"due_for_contact"},
			"segment=" + strings.Repeat("s", 65):   {"segment"},
			"region=%20%20":                        {"region"},
			"q=" + strings.Repeat("q", 201):        {"q"},
			"min_position=soon":                    {"min_position"},
			"q=a%00b":                              {"q"},
			"owner=%FF":                            {"owner"},
			"segment=%C3%28":                       {"segment"},
			"owner=" + strings.Repeat("o", 201):    {"owner"},
			"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("-9223372036854775808.00000000-0000-0000-0000-000000000000")): {"cursor"},
			"status=gone&risk=extreme&limit=0&tier=X": {"tier", "status", "risk", "limit"},
		} {
			var p rhttp.Problem
			get("/v1/customers?"+query, http.StatusUnprocessableEntity).JSON(t, &p)
			var got []string
			for _, e := range p.Errors {
				got = append(got, e.Field)
			}
			if !slices.Equal(got, fields) {
				t.Errorf("%q: fields %v, want %v", query, got, fields)
			}
		}
	})

	t.Run("read your writes", func(t *testing.T) {
		resp := m.Post(t, "/v1/customers", map[string]any{"name": "Edsger Dijkstra", "email": "edsger@example.com", "segment": "academia"})
		var created struct {
			CustomerID uuid.UUID `json:"customer_id"`
			Position   uint64    `json:"position"`
		}
		resp.JSON(t, &created)
		var c cqCustomer
		get(fmt.Sprintf("/v1/customers/%s?min_position=%d", created.CustomerID, created.Position), http.StatusOK).JSON(t, &c)
		if *c.Name != "Edsger Dijkstra" || cqRisk(c.Risk) != "0 low" || c.Revision != 0 {
			t.Errorf("own write: %+v", c)
		}
		var page cqList
		get(fmt.Sprintf("/v1/customers?segment=academia&min_position=%d", created.Position), http.StatusOK).JSON(t, &page)
		if len(page.Items) != 1 || page.Items[0].ID != created.CustomerID {
			t.Errorf("own write in the list: %+v", page)
		}
	})
}

// TestCustomersAPIRiskWeights: RAPPORT_RISK_WEIGHTS (app config) reaches
// the queries.
func TestCustomersAPIRiskWeights(t *testing.T) {
	t.Parallel()
	w, err := risk.ParseWeights("contact_90d=45,low_nps=0,nps_detractor=0")
	if err == nil {
		t.Fatal("unknown weight accepted")
	}
	w, err = risk.ParseWeights("contact_90d=45,nps_detractor=0")
	if err != nil {
		t.Fatal(err)
	}
	m := apptest.MustOpen(t, func(c *app.Config) { c.ReadModels.RiskWeights = &w })
	d := &cqDirectory{t: t, m: m, now: time.Now()}
	f := buildCQFixture(d)
	var c cqCustomer
	m.Get(t, "writer", "/v1/customers/"+f.ada.String()).JSON(t, &c)
	if got := cqRisk(c.Risk); got != "65 high days_since_contact=45 low_csat=20" {
		t.Errorf("ada with contact_90d=45, nps_detractor=0: %q", got)
	}
}

// cqFake answers the HTTP layer without a database: it records the last
// filter and answers an empty page.
type cqFake struct {
	filter customers.Filter
	limit  int
	cursor string
}

func (f *cqFake) Get(_ context.Context, id uuid.UUID) (customers.Customer, error) {
	if id == uuid.Nil {
		return customers.Customer{}, customers.ErrNotFound
	}
	return customers.Customer{ID: id, Name: cqPtr("Fake"), Email: cqPtr(""), Status: "active", RegisteredAt: time.Unix(0, 0),
		ChurnRisk: &risk.Risk{Score: 10, Level: risk.LevelLow, Factors: []risk.Factor{{Factor: risk.FactorFollowUpOverdue, Points: 10}}}}, nil
}

func (f *cqFake) Reads() []string { return []string{customers.Name} }

func (f *cqFake) List(_ context.Context, filter customers.Filter, limit int, cursor string) (customers.Page, error) {
	f.filter, f.limit, f.cursor = filter, limit, cursor
	return customers.Page{}, nil
}

// cqWait stands in for the projection engine: every position is reached.
type cqWait struct{}

func (cqWait) Status(context.Context) ([]projections.Status, error) { return nil, nil }
func (cqWait) RequestRebuild(context.Context, string) error         { return nil }
func (cqWait) WaitForPosition(context.Context, eventstore.Position, ...string) error {
	return nil
}

// cqNoCommands refuses every command: these tests only read.
type cqNoCommands struct{}

func (cqNoCommands) Handle(context.Context, commands.Request) (commands.Result, error) {
	return commands.Result{}, errors.New("no commands here")
}

type cqKey struct{}

func (cqKey) Authenticate(context.Context, string) (rhttp.Principal, error) {
	return rhttp.Principal{Name: "tester", Roles: []rhttp.Role{rhttp.RoleWriter}}, nil
}

func cqServer(tb testing.TB, q rhttp.CustomerQueries) http.Handler {
	tb.Helper()
	s, err := rhttp.NewServer(rhttp.Config{Commands: cqNoCommands{}, Keys: cqKey{}, Customers: q, Projections: cqWait{}, RateLimit: 1e9, RateBurst: 1 << 30})
	if err != nil {
		tb.Fatal(err)
	}
	return s.Handler()
}

// TestCustomerListParameters checks how the parameters reach the queries.
func TestCustomerListParameters(t *testing.T) {
	fake := &cqFake{}
	h := cqServer(t, fake)
	send := func(query string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/v1/customers?"+query, nil)
		r.Header.Set("Authorization", "Bearer k")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	cursor := base64.RawURLEncoding.EncodeToString([]byte("1760000000000000.00000000-0000-0000-0000-000000000000"))
	w := send("segment=+smb+&tier=B&region=emea&owner=carol&status=active&risk=high&q=Ada%25&no_contact_days=60&limit=500&cursor=" + cursor + "&min_position=7&unknown=1")
	if w.Code != http.StatusOK || w.Body.String() != `{"items":[],"next_cursor":null}`+"\n" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	want := customers.Filter{Segment: "smb", Tier: "B", Region: "emea", Owner: "carol", Status: "active", Risk: "high", Q: "Ada%", NoContactDays: 60}
	if fake.filter != want || fake.limit != 500 || fake.cursor != cursor {
		t.Errorf("filter %+v, limit %d, cursor %q", fake.filter, fake.limit, fake.cursor)
	}
	for _, v := range []bool{true, false} {
		if w := send("due_for_contact=" + strconv.FormatBool(v)); w.Code != http.StatusOK || fake.filter.DueForContact == nil || *fake.filter.DueForContact != v {
			t.Errorf("due_for_contact=%v: %d %s, filter %+v", v, w.Code, w.Body, fake.filter)
		}
	}
	if w := send(""); w.Code != http.StatusOK || fake.filter != (customers.Filter{}) || fake.limit != 50 || fake.cursor != "" {
		t.Errorf("defaults: %d, %+v %d %q", w.Code, fake.filter, fake.limit, fake.cursor)
	}
	// GET one: the view.
	r := httptest.NewRequest(http.MethodGet, "/v1/customers/"+uuid.NewString(), nil)
	r.Header.Set("Authorization", "Bearer k")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if got["tier"] != nil || got["email"] != nil || fmt.Sprint(got["tags"]) != "[]" || fmt.Sprint(got["team"]) != "map[]" ||
		fmt.Sprint(got["risk"]) != "map[factors:[map[factor:follow_up_overdue points:10]] level:low score:10]" {
		t.Errorf("view: %s", rec.Body)
	}
}
