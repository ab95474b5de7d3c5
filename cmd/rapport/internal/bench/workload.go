package bench

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/rapport-crm/rapport/domain"
)

// op is a command type of the workload.
type op uint8

const (
	opRegister op = iota
	opUpdateProfile
	opClassify
	opAssignTeam
	opLogContact
	opScheduleFollowUp
	opFileComplaint
	opAssignComplaint
	opAcknowledgeComplaint
	opEscalateComplaint
	opResolveComplaint
	opReopenComplaint
	opRecordSurvey
	opMarkChurned
	opReactivate
	opRecordPurchase
	opRefundPurchase
	opAwardPoints
	opRedeemPoints
	numOps
)

// opNames are the OpenAPI operation ids of the commands.
var opNames = [numOps]string{
	"registerCustomer", "updateProfile", "classifyCustomer", "assignTeamMember",
	"logContact", "scheduleFollowUp", "fileComplaint", "assignComplaint",
	"acknowledgeComplaint", "escalateComplaint", "resolveComplaint", "reopenComplaint",
	"recordSurvey", "markChurned", "reactivateCustomer",
	"recordPurchase", "refundPurchase", "awardPoints", "redeemPoints",
}

// opEvents are the event types each command appends first (most append
// one event; see opFollowUps).
var opEvents = [numOps]string{
	domain.TypeCustomerRegistered, domain.TypeCustomerProfileUpdated, domain.TypeCustomerClassified, domain.TypeTeamMemberAssigned,
	domain.TypeContactLogged, domain.TypeFollowUpScheduled, domain.TypeComplaintFiled, domain.TypeComplaintAssigned,
	domain.TypeComplaintAcknowledged, domain.TypeComplaintEscalated, domain.TypeComplaintResolved, domain.TypeComplaintReopened,
	domain.TypeSurveyRecorded, domain.TypeCustomerChurned, domain.TypeCustomerReactivated,
	domain.TypePurchaseRecorded, domain.TypePurchaseRefunded, domain.TypePointsAwarded, domain.TypePointsRedeemed,
}

// opFollowUps are the event types a command may append after its first, in
// the same append: the points a purchase earns, the points a refund takes
// back (none when the loyalty rate earns nothing).
var opFollowUps = [numOps]string{
	opRecordPurchase: domain.TypePointsAwarded,
	opRefundPurchase: domain.TypePointsRevoked,
}

func (o op) String() string { return opNames[o] }

// customer is what a client knows of a customer it registered. Only that
// client sends commands to it, so the model is exact and every command it
// sends is one the rules accept.
type customer struct {
	id       string
	client   int
	n        int
	rev      int64 // last revision answered; -1 before registration
	status   domain.CustomerStatus
	segment  string
	tier     string
	team     map[domain.Role]string
	open     int      // complaints in progress
	resolved []string // complaints resolved, for the surveys that follow them
	// tainted: a command's outcome is unknown or the rules refused one (the
	// model may be wrong), so no more commands go to this customer.
	tainted bool
	// ambiguous: a command's outcome stayed unknown even after settling, so
	// the log may hold an event no answer reported.
	ambiguous bool
	// records are the accepted commands that appended an event, in order.
	records []record
	// value is the customer's purchases and points (value.go).
	value customerValue
}

// record is an accepted command: the revision and position its answer
// reported, and the request's sequence number (its idempotency key and
// correlation id).
type record struct {
	// first..rev are the revisions of the events the command appended.
	first uint64
	rev   uint64
	pos   uint64
	op    op
	seq   uint32
}

func (c *customer) lastPosition() uint64 {
	if len(c.records) == 0 {
		return 0
	}
	return c.records[len(c.records)-1].pos
}

// complaint is a complaint in progress.
type complaint struct {
	cust      *customer
	id        string
	stage     domain.ComplaintStatus
	assigned  bool
	escalated bool // in the current opening
	reopened  int
}

// action is one command to send, and what to do with the model when it is
// accepted.
type action struct {
	op     op
	cust   *customer // nil for a registration
	method string
	path   string
	body   any
	apply  func(ans commandAnswer)
	// registerAs is the customer a registration creates.
	registerAs *customer
	// settleApply: apply also when the command is settled after the load
	// (the value model must hold every accepted purchase and points entry
	// for verification, tainted customer or not).
	settleApply bool
}

// commandAnswer is every command's answer body.
type commandAnswer struct {
	CustomerID  string `json:"customer_id"`
	Revision    uint64 `json:"revision"`
	Position    uint64 `json:"position"`
	ComplaintID string `json:"complaint_id"`
	// The value commands' ids (value.go).
	PurchaseID   string `json:"purchase_id"`
	RefundID     string `json:"refund_id"`
	AwardID      string `json:"award_id"`
	RedemptionID string `json:"redemption_id"`
}

// The request bodies (PRODUCT.md, "Request and response bodies").
type (
	registerBody struct {
		Name     string   `json:"name"`
		Email    string   `json:"email"`
		Phone    string   `json:"phone"`
		Company  string   `json:"company"`
		Segment  string   `json:"segment"`
		Tier     string   `json:"tier"`
		Region   string   `json:"region"`
		Industry string   `json:"industry"`
		Tags     []string `json:"tags"`
	}
	profileBody struct {
		Phone   *string  `json:"phone,omitempty"`
		Company *string  `json:"company,omitempty"`
		Tags    []string `json:"tags,omitempty"`
	}
	classifyBody struct {
		Segment string `json:"segment,omitempty"`
		Tier    string `json:"tier,omitempty"`
	}
	teamBody struct {
		Member string `json:"member"`
	}
	contactBody struct {
		Channel   string `json:"channel"`
		Direction string `json:"direction"`
		Summary   string `json:"summary"`
		By        string `json:"by"`
	}
	followUpBody struct {
		DueAt string `json:"due_at"`
		By    string `json:"by"`
		Note  string `json:"note"`
	}
	complaintBody struct {
		Category    string `json:"category"`
		Severity    string `json:"severity"`
		Description string `json:"description"`
		Channel     string `json:"channel"`
	}
	assignmentBody struct {
		Assignee string `json:"assignee"`
	}
	acknowledgementBody struct {
		By   string `json:"by"`
		Note string `json:"note"`
	}
	escalationBody struct {
		To     string `json:"to"`
		Reason string `json:"reason"`
	}
	resolutionBody struct {
		By         string `json:"by"`
		Resolution string `json:"resolution"`
	}
	reasonBody struct {
		Reason string `json:"reason"`
	}
	surveyBody struct {
		CSAT        *int   `json:"csat,omitempty"`
		NPS         *int   `json:"nps,omitempty"`
		Comment     string `json:"comment,omitempty"`
		Channel     string `json:"channel"`
		ComplaintID string `json:"complaint_id,omitempty"`
	}
)

var (
	segments   = []string{"enterprise", "smb", "smb", "consumer", "consumer"}
	tiers      = []string{"A", "B", "B", "C", "C", "C"}
	regions    = []string{"emea", "north-america", "apac", "latam"}
	industries = []string{"retail", "finance", "healthcare", "manufacturing", "software", "logistics"}
	categories = []string{"billing", "delivery", "product-quality", "support", "account"}
	severities = []string{"low", "low", "medium", "medium", "high", "critical"}
	channels   = []string{"email", "phone", "chat", "meeting", "video", "visit", "social"}
	summaries  = []string{
		"Called about the renewal of the annual plan; agreed to send a quote by Friday.",
		"Asked why the last invoice was higher than usual; explained the usage tier.",
		"Quarterly review: happy with support response times, wants SSO next quarter.",
		"Chat about a delayed delivery; tracking shows it with the carrier since Monday.",
		"Onboarding call for two new team members; shared the getting-started guide.",
	}
	descriptions = []string{
		"Charged twice for the March invoice; the second charge must be refunded.",
		"The replacement part arrived damaged and the customer's line is stopped.",
		"Support ticket unanswered for five days despite two reminders.",
		"Cannot log in since the password reset; the reset link expires immediately.",
	}
	resolutions = []string{
		"Refunded the duplicate charge and added a credit note for the inconvenience.",
		"Shipped a new part by express courier; confirmed receipt with the customer.",
		"Reset the account's sign-in settings and walked the customer through it.",
	}
	comments = []string{"Quick and friendly.", "Took too long to get an answer.", "Solved, thanks.", "", ""}
)

func pick[T any](rng *rand.Rand, from []T) T { return from[rng.IntN(len(from))] }

func staff(rng *rand.Rand) string { return fmt.Sprintf("agent-%02d", rng.IntN(24)) }

// workload is one client's model of its customers and complaints.
type workload struct {
	rng        *rand.Rand
	runID      string
	client     int
	customers  []*customer
	inProgress []*complaint
	churned    []*customer
	registered int
}

// next chooses the next command: mostly contacts and complaint steps on
// existing customers, some registrations. The weights are percentages.
func (w *workload) next() action {
	if len(w.customers) < 3 {
		return w.register()
	}
	roll := w.rng.IntN(100)
	switch {
	case roll < 6:
		return w.register()
	case roll < 30:
		return w.logContact(w.pickCustomer(true))
	case roll < 40:
		return w.valueCommand(w.pickCustomer(false))
	case roll < 46:
		return w.scheduleFollowUp(w.pickCustomer(false))
	case roll < 74:
		if len(w.inProgress) == 0 || w.rng.IntN(5) == 0 {
			if c := w.pickCustomer(false); c != nil && c.open < 2 {
				return w.fileComplaint(c)
			}
		}
		if len(w.inProgress) > 0 {
			if a, ok := w.advanceComplaint(); ok {
				return a
			}
		}
		return w.logContact(w.pickCustomer(true))
	case roll < 84:
		return w.recordSurvey(w.pickCustomer(false))
	case roll < 87:
		return w.updateProfile(w.pickCustomer(false))
	case roll < 90:
		return w.classify(w.pickCustomer(false))
	case roll < 94:
		return w.assignTeam(w.pickCustomer(false))
	case roll < 97:
		return w.markChurned(w.pickCustomer(false))
	default:
		if len(w.churned) > 0 {
			i := w.rng.IntN(len(w.churned))
			c := w.churned[i]
			if !c.tainted {
				return w.reactivate(c, i)
			}
		}
		return w.logContact(w.pickCustomer(true))
	}
}

// pickCustomer picks a customer that accepts commands, the older ones more
// often (a few customers get most of the traffic, as in life). Churned
// customers only get contacts (win-back calls) when anyChurned.
func (w *workload) pickCustomer(anyChurned bool) *customer {
	n := len(w.customers)
	for range 8 {
		u := w.rng.Float64()
		c := w.customers[int(float64(n)*u*u)]
		if c.tainted || (!anyChurned && c.status != domain.StatusActive) {
			continue
		}
		return c
	}
	for i := n - 1; i >= 0; i-- { // the newest are active unless tainted
		if c := w.customers[i]; !c.tainted && c.status == domain.StatusActive {
			return c
		}
	}
	return nil
}

func (w *workload) customerPath(c *customer, suffix string) string {
	return "/v1/customers/" + c.id + suffix
}

func (w *workload) register() action {
	w.registered++
	n := w.registered
	tag := fmt.Sprintf("%s-%d-%d", w.runID, w.client, n)
	body := registerBody{
		Name:     "Bench Customer " + tag,
		Email:    "bench-" + tag + "@example.test",
		Phone:    fmt.Sprintf("+44 20 7%03d %04d", w.client%1000, n%10000),
		Company:  fmt.Sprintf("Company %d", w.rng.IntN(5000)),
		Segment:  pick(w.rng, segments),
		Tier:     pick(w.rng, tiers),
		Region:   pick(w.rng, regions),
		Industry: pick(w.rng, industries),
		Tags:     []string{pick(w.rng, []string{"newsletter", "vip", "partner", "trial"})},
	}
	c := &customer{client: w.client, n: n, rev: -1, status: domain.StatusActive, segment: body.Segment, tier: body.Tier, team: map[domain.Role]string{}}
	c.value.setCurrency(body.Region)
	return action{op: opRegister, method: http.MethodPost, path: "/v1/customers", body: body, apply: func(ans commandAnswer) {
		c.id = ans.CustomerID
		w.customers = append(w.customers, c)
	}, registerAs: c}
}

func (w *workload) logContact(c *customer) action {
	if c == nil {
		return w.register()
	}
	body := contactBody{Channel: pick(w.rng, channels), Direction: pick(w.rng, []string{"inbound", "outbound"}), Summary: pick(w.rng, summaries), By: staff(w.rng)}
	return action{op: opLogContact, cust: c, method: http.MethodPost, path: w.customerPath(c, "/contacts"), body: body}
}

func (w *workload) scheduleFollowUp(c *customer) action {
	if c == nil {
		return w.register()
	}
	due := time.Now().Add(time.Duration(1+w.rng.IntN(21)) * 24 * time.Hour).UTC().Format(time.RFC3339)
	body := followUpBody{DueAt: due, By: staff(w.rng), Note: "Check that the quote arrived and answer questions."}
	return action{op: opScheduleFollowUp, cust: c, method: http.MethodPost, path: w.customerPath(c, "/follow-ups"), body: body}
}

func (w *workload) fileComplaint(c *customer) action {
	if c == nil {
		return w.register()
	}
	body := complaintBody{Category: pick(w.rng, categories), Severity: pick(w.rng, severities), Description: pick(w.rng, descriptions), Channel: pick(w.rng, channels)}
	return action{op: opFileComplaint, cust: c, method: http.MethodPost, path: w.customerPath(c, "/complaints"), body: body, apply: func(ans commandAnswer) {
		c.open++
		w.inProgress = append(w.inProgress, &complaint{cust: c, id: ans.ComplaintID, stage: domain.ComplaintStatusFiled})
	}}
}

// advanceComplaint takes a complaint in progress one step through its
// lifecycle: file → assign → acknowledge → maybe escalate → resolve →
// maybe reopen → acknowledge → resolve, and sometimes a survey after it.
func (w *workload) advanceComplaint() (action, bool) {
	i := w.rng.IntN(len(w.inProgress))
	cp := w.inProgress[i]
	c := cp.cust
	if c.tainted {
		w.dropComplaint(i)
		return action{}, false
	}
	path := func(step string) string { return w.customerPath(c, "/complaints/"+cp.id+"/"+step) }
	switch {
	case !cp.assigned:
		return action{op: opAssignComplaint, cust: c, method: http.MethodPost, path: path("assignment"), body: assignmentBody{Assignee: staff(w.rng)},
			apply: func(commandAnswer) { cp.assigned = true }}, true
	case cp.stage == domain.ComplaintStatusFiled || cp.stage == domain.ComplaintStatusReopened:
		return action{op: opAcknowledgeComplaint, cust: c, method: http.MethodPost, path: path("acknowledgement"), body: acknowledgementBody{By: staff(w.rng), Note: "Looking into it today."},
			apply: func(commandAnswer) { cp.stage = domain.ComplaintStatusAcknowledged }}, true
	case cp.stage == domain.ComplaintStatusAcknowledged && !cp.escalated && w.rng.IntN(4) == 0:
		return action{op: opEscalateComplaint, cust: c, method: http.MethodPost, path: path("escalation"), body: escalationBody{To: "team-lead", Reason: "Needs a decision on a goodwill refund."},
			apply: func(commandAnswer) { cp.stage, cp.escalated = domain.ComplaintStatusEscalated, true }}, true
	case cp.stage == domain.ComplaintStatusAcknowledged || cp.stage == domain.ComplaintStatusEscalated:
		return action{op: opResolveComplaint, cust: c, method: http.MethodPost, path: path("resolution"), body: resolutionBody{By: staff(w.rng), Resolution: pick(w.rng, resolutions)},
			apply: func(commandAnswer) { cp.stage = domain.ComplaintStatusResolved }}, true
	case cp.stage == domain.ComplaintStatusResolved && cp.reopened == 0 && w.rng.IntN(5) == 0:
		return action{op: opReopenComplaint, cust: c, method: http.MethodPost, path: path("reopening"), body: reasonBody{Reason: "The problem came back a week later."},
			apply: func(commandAnswer) { cp.stage, cp.escalated = domain.ComplaintStatusReopened, false; cp.reopened++ }}, true
	default: // resolved for good
		w.dropComplaint(i)
		c.open--
		c.resolved = append(c.resolved, cp.id)
		if len(c.resolved) > 4 {
			c.resolved = c.resolved[1:]
		}
		if w.rng.IntN(2) == 0 && c.status == domain.StatusActive {
			return w.survey(c, cp.id), true
		}
		return action{}, false
	}
}

func (w *workload) dropComplaint(i int) {
	last := len(w.inProgress) - 1
	w.inProgress[i] = w.inProgress[last]
	w.inProgress = w.inProgress[:last]
}

func (w *workload) recordSurvey(c *customer) action {
	if c == nil {
		return w.register()
	}
	complaintID := ""
	if len(c.resolved) > 0 && w.rng.IntN(3) == 0 {
		complaintID = pick(w.rng, c.resolved)
	}
	return w.survey(c, complaintID)
}

func (w *workload) survey(c *customer, complaintID string) action {
	body := surveyBody{Channel: "email", Comment: pick(w.rng, comments), ComplaintID: complaintID}
	if w.rng.IntN(4) != 0 {
		csat := []int{1, 2, 3, 3, 4, 4, 4, 5, 5, 5}[w.rng.IntN(10)]
		body.CSAT = &csat
	}
	if body.CSAT == nil || w.rng.IntN(2) == 0 {
		nps := []int{0, 3, 5, 6, 7, 7, 8, 8, 9, 9, 10, 10}[w.rng.IntN(12)]
		body.NPS = &nps
	}
	return action{op: opRecordSurvey, cust: c, method: http.MethodPost, path: w.customerPath(c, "/surveys"), body: body}
}

func (w *workload) updateProfile(c *customer) action {
	if c == nil {
		return w.register()
	}
	var body profileBody
	switch w.rng.IntN(3) {
	case 0:
		phone := fmt.Sprintf("+44 20 8%03d %04d", w.rng.IntN(1000), w.rng.IntN(10000))
		body.Phone = &phone
	case 1:
		company := fmt.Sprintf("Company %d Ltd", 5000+w.rng.IntN(1_000_000))
		body.Company = &company
	default:
		body.Tags = []string{"bench", fmt.Sprintf("cohort-%d", w.rng.IntN(1_000_000))}
	}
	return action{op: opUpdateProfile, cust: c, method: http.MethodPatch, path: w.customerPath(c, ""), body: body}
}

func (w *workload) classify(c *customer) action {
	if c == nil {
		return w.register()
	}
	var body classifyBody
	if w.rng.IntN(2) == 0 {
		body.Segment = other(w.rng, segments, c.segment)
	} else {
		body.Tier = other(w.rng, tiers, c.tier)
	}
	return action{op: opClassify, cust: c, method: http.MethodPut, path: w.customerPath(c, "/classification"), body: body, apply: func(commandAnswer) {
		if body.Segment != "" {
			c.segment = body.Segment
		}
		if body.Tier != "" {
			c.tier = body.Tier
		}
	}}
}

// other picks a value of from that differs from current.
func other(rng *rand.Rand, from []string, current string) string {
	for {
		if v := pick(rng, from); v != current {
			return v
		}
	}
}

func (w *workload) assignTeam(c *customer) action {
	if c == nil {
		return w.register()
	}
	role := pick(w.rng, domain.Roles())
	member := staff(w.rng)
	for member == c.team[role] {
		member = staff(w.rng)
	}
	return action{op: opAssignTeam, cust: c, method: http.MethodPut, path: w.customerPath(c, "/team/"+string(role)), body: teamBody{Member: member},
		apply: func(commandAnswer) { c.team[role] = member }}
}

func (w *workload) markChurned(c *customer) action {
	if c == nil {
		return w.register()
	}
	body := reasonBody{Reason: pick(w.rng, []string{"Moved to a competitor.", "Price increase.", "Closed down.", "Unhappy with support."})}
	return action{op: opMarkChurned, cust: c, method: http.MethodPost, path: w.customerPath(c, "/churn"), body: body, apply: func(commandAnswer) {
		c.status = domain.StatusChurned
		w.churned = append(w.churned, c)
	}}
}

func (w *workload) reactivate(c *customer, i int) action {
	return action{op: opReactivate, cust: c, method: http.MethodPost, path: w.customerPath(c, "/reactivation"), body: reasonBody{Reason: "Won back with a loyalty offer."}, apply: func(commandAnswer) {
		c.status = domain.StatusActive
		last := len(w.churned) - 1
		w.churned[i] = w.churned[last]
		w.churned = w.churned[:last]
	}}
}
