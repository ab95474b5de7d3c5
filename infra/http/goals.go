package http

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/audit"
	"github.com/rapport-crm/rapport/readmodels/goals"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// GoalQueries reads and judges goals (goals.Queries).
type GoalQueries interface {
	Goal(ctx context.Context, id uuid.UUID) (goals.Goal, error)
	Goals(ctx context.Context, p goals.ListParams, cursor string, limit int) (readmodel.Page[goals.Goal], error)
	Reads() []string
}

// GoalHandler handles the goal commands (commands.Goals).
type GoalHandler interface {
	Handle(ctx context.Context, req commands.GoalRequest) (commands.GoalResult, error)
}

// GoalAuditor reads a goal's history from the event log: the auditor of
// every audited stream (audit.Auditor), so a goal's events and chain are
// read and verified exactly as a customer's.
type GoalAuditor interface {
	History(ctx context.Context, stream string) (audit.History, error)
	ParseAnchorEntry(entry string) (audit.StreamHead, error)
	VerifyStreamAnchored(ctx context.Context, stream string, head audit.StreamHead) (audit.Verification, error)
}

// The goal request bodies (PRODUCT.md "Goals"). Times are strings so that
// a bad one is a 422 naming it; the domain checks the rest.
type goalBody struct {
	Name       string         `json:"name"`
	Figure     string         `json:"figure"`
	Comparator string         `json:"comparator"`
	Target     *float64       `json:"target"`
	From       *string        `json:"from"`
	To         *string        `json:"to"`
	Scope      *goalScopeBody `json:"scope"`
}

type goalScopeBody struct {
	Segment string `json:"segment,omitempty"`
	Tier    string `json:"tier,omitempty"`
	Region  string `json:"region,omitempty"`
	Owner   string `json:"owner,omitempty"`
}

func (b *goalScopeBody) scope() domain.GoalScope {
	if b == nil {
		return domain.GoalScope{}
	}
	return domain.GoalScope{Segment: b.Segment, Tier: b.Tier, Region: b.Region, Owner: b.Owner}
}

type goalRevisionBody struct {
	Name       *string        `json:"name"`
	Comparator *string        `json:"comparator"`
	Target     *float64       `json:"target"`
	From       *string        `json:"from"`
	To         *string        `json:"to"`
	Scope      *goalScopeBody `json:"scope"`
}

type goalCloseBody struct {
	Reason string `json:"reason"`
}

// goalRoutes lists /v1/goals: analysts set, revise, close and read goals
// (admin passes everywhere); auditors read a goal's history.
func (s *Server) goalRoutes() []Route {
	if s.cfg.Goals == nil || s.cfg.GoalCommands == nil {
		return nil
	}
	analyst := []Role{RoleAnalyst}
	routes := []Route{
		{Name: "setGoal", Method: http.MethodPost, Path: "/v1/goals", Roles: analyst,
			handler: goalCommand(s, true, func(_ *http.Request, b goalBody) (domain.GoalCommand, error) {
				var p fieldParser
				from := p.time("from", b.From)
				to := p.time("to", b.To)
				return domain.SetGoal{Name: b.Name, Figure: b.Figure, Comparator: domain.Comparator(b.Comparator), Target: b.Target,
					From: from, To: to, Scope: b.Scope.scope()}, p.err()
			})},
		{Name: "listGoals", Method: http.MethodGet, Path: "/v1/goals", Roles: analyst, handler: s.listGoals},
		{Name: "getGoal", Method: http.MethodGet, Path: "/v1/goals/{id}", Roles: analyst, handler: s.getGoal},
		{Name: "reviseGoal", Method: http.MethodPatch, Path: "/v1/goals/{id}", Roles: analyst,
			handler: goalCommand(s, false, func(_ *http.Request, b goalRevisionBody) (domain.GoalCommand, error) {
				var p fieldParser
				cmd := domain.ReviseGoal{Name: b.Name, Target: b.Target, From: p.time("from", b.From), To: p.time("to", b.To)}
				if b.Comparator != nil {
					c := domain.Comparator(*b.Comparator)
					cmd.Comparator = &c
				}
				if b.Scope != nil {
					scope := b.Scope.scope()
					cmd.Scope = &scope
				}
				return cmd, p.err()
			})},
		{Name: "closeGoal", Method: http.MethodPost, Path: "/v1/goals/{id}/closure", Roles: analyst,
			handler: goalCommand(s, false, func(_ *http.Request, b goalCloseBody) (domain.GoalCommand, error) {
				return domain.CloseGoal{Reason: b.Reason}, nil
			})},
	}
	if s.cfg.GoalAuditor != nil {
		routes = append(routes, Route{Name: "getGoalHistory", Method: http.MethodGet, Path: "/v1/goals/{id}/history", Roles: []Role{RoleAuditor}, handler: s.getGoalHistory})
	}
	return routes
}

// goalCommandResponse is every goal command's answer.
type goalCommandResponse struct {
	GoalID   uuid.UUID `json:"goal_id"`
	Revision uint64    `json:"revision"`
	Position uint64    `json:"position"`
}

// goalCommand makes the handler of one goal command endpoint, like
// command does for customers: strict decoding, Idempotency-Key (scoped to
// the API key) and If-Match.
func goalCommand[B any](s *Server, creates bool, build func(r *http.Request, body B) (domain.GoalCommand, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var goalID uuid.UUID
		if !creates {
			var err error
			if goalID, err = pathID(r, "id", domain.ReasonGoalNotFound); err != nil {
				return err
			}
		}
		var body B
		if _, err := decodeBody(r, s.cfg.MaxBodyBytes, &body); err != nil {
			return err
		}
		cmd, err := build(r, body)
		if err != nil {
			return err
		}
		fingerprint, err := commandFingerprint(r, body)
		if err != nil {
			return err
		}
		principal := principalFrom(r.Context())
		req := commands.GoalRequest{
			GoalID: goalID, Command: cmd, CommandID: uuid.New(), RequestHash: hex.EncodeToString(fingerprint),
			Actor: principal.Name, CorrelationID: correlationIDFrom(r.Context()),
		}
		key := r.Header.Get("Idempotency-Key")
		if key != "" {
			if !validHeaderID(key) {
				return invalidFields(FieldError{Field: "Idempotency-Key", Message: "must be 1 to 128 printable ASCII characters"})
			}
			req.CommandID = commands.CommandID(principal.Name, key)
		}
		if values := r.Header.Values("If-Match"); len(values) > 0 {
			star, revisions, ok := parseIfMatch(strings.Join(values, ","))
			if !ok {
				return invalidFields(FieldError{Field: "If-Match", Message: `must be *, or ETags from previous answers such as "3" or "3", "4"`})
			}
			if !star {
				req.ExpectedRevisions = revisions
			}
		}
		run := func(ctx context.Context, w http.ResponseWriter) error {
			res, err := s.cfg.GoalCommands.Handle(ctx, req)
			var mismatch *commands.GoalRevisionMismatchError
			if errors.As(err, &mismatch) {
				p := newProblem(http.StatusPreconditionFailed, "revision_mismatch", "the goal is not at a revision If-Match names (compared strongly)")
				p.CurrentRevision = &mismatch.Current
				return p
			}
			if err != nil {
				return err
			}
			status := http.StatusOK
			if res.Created {
				status = http.StatusCreated
				w.Header().Set("Location", "/v1/goals/"+res.GoalID.String())
			}
			w.Header().Set("ETag", etag(res.Revision))
			writeJSON(w, status, goalCommandResponse{GoalID: res.GoalID, Revision: res.Revision, Position: uint64(res.Position)})
			return nil
		}
		if key == "" || s.cfg.Idempotency == nil {
			return run(r.Context(), w)
		}
		return s.idempotent(w, r, req.Actor, key, fingerprint, run)
	}
}

// goalPeriod is a window of a goal's answer.
type goalPeriod struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

func periodView(w *goals.Window) *goalPeriod {
	if w == nil {
		return nil
	}
	return &goalPeriod{From: w.From.UTC(), To: w.To.UTC()}
}

// goalView is a goal as the API answers it.
type goalView struct {
	ID             uuid.UUID     `json:"id"`
	Name           string        `json:"name"`
	Figure         string        `json:"figure"`
	Comparator     string        `json:"comparator"`
	Target         float64       `json:"target"`
	From           time.Time     `json:"from"`
	To             time.Time     `json:"to"`
	Scope          goalScopeBody `json:"scope"`
	State          string        `json:"state"`
	Baseline       *float64      `json:"baseline"`
	Current        *float64      `json:"current"`
	Progress       *float64      `json:"progress"`
	Status         string        `json:"status"`
	ElapsedPct     float64       `json:"elapsed_pct"`
	Projected      *float64      `json:"projected"`
	BaselinePeriod *goalPeriod   `json:"baseline_period"`
	CurrentPeriod  *goalPeriod   `json:"current_period"`
	SetBy          string        `json:"set_by"`
	SetAt          time.Time     `json:"set_at"`
	RevisedAt      *time.Time    `json:"revised_at"`
	ClosedAt       *time.Time    `json:"closed_at"`
	CloseReason    *string       `json:"close_reason"`
	Revision       uint64        `json:"revision"`
	Position       uint64        `json:"position"`
	// Stale: the goals projector parked the goal's stream on an event it
	// could not apply, so the goal is shown in its last good state
	// (PRODUCT.md, Operational guarantees).
	Stale bool `json:"stale,omitempty"`
}

// staleGoal says whether the goal's row is stale: its stream parked by
// the goals projector (no other projector reads goal streams).
func (s *Server) staleGoal(r *http.Request, id uuid.UUID) (bool, error) {
	return s.staleStream(r, domain.GoalStreamName(id), goals.Name)
}

func viewGoal(g goals.Goal) goalView {
	state := "open"
	if g.Closed {
		state = "closed"
	}
	return goalView{
		ID: g.ID, Name: g.Name, Figure: g.Figure, Comparator: string(g.Comparator), Target: g.Target, From: g.From, To: g.To,
		Scope: goalScopeBody{Segment: g.Scope.Segment, Tier: g.Scope.Tier, Region: g.Scope.Region, Owner: g.Scope.Owner},
		State: state, Baseline: finite(g.Baseline), Current: finite(g.Current), Progress: finite(g.Progress), Status: string(g.Status),
		ElapsedPct: g.ElapsedPct, Projected: finite(g.Projected),
		BaselinePeriod: periodView(g.BaselineWindow), CurrentPeriod: periodView(g.CurrentWindow),
		SetBy: g.SetBy, SetAt: g.SetAt, RevisedAt: g.RevisedAt, ClosedAt: g.ClosedAt, CloseReason: g.CloseReason,
		Revision: g.Revision, Position: g.Position,
	}
}

// finite is v, or nil for an undefined figure (JSON cannot carry NaN).
func finite(v *float64) *float64 {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
		return nil
	}
	return v
}

// Page sizes of the goal list: each goal costs up to two analytics
// reports, so pages are smaller than the activity lists'.
const (
	defaultGoalLimit = 20
	maxGoalLimit     = 100
)

func (s *Server) listGoals(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var p fieldParser
	params := goals.ListParams{State: goals.StateOpen}
	if q.Has("state") {
		st := goals.State(q.Get("state"))
		if !slices.Contains([]goals.State{goals.StateOpen, goals.StateClosed, goals.StateAll}, st) {
			p.fail("state", "must be one of open, closed, all")
		}
		params.State = st
	}
	if q.Has("figure") {
		if _, ok := domain.LookupGoalFigure(q.Get("figure")); !ok {
			p.fail("figure", "must be one of the figures goals are set on")
		}
		params.Figure = q.Get("figure")
	}
	limit := defaultGoalLimit
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > maxGoalLimit {
			p.fail("limit", "must be a whole number from 1 to %d", maxGoalLimit)
		} else {
			limit = n
		}
	}
	cursor := q.Get("cursor")
	if q.Has("cursor") && !goals.Cursor.Valid(cursor) {
		p.fail("cursor", badCursor)
	}
	if err := p.err(); err != nil {
		return err
	}
	if err := s.awaitPosition(r, s.cfg.Goals.Reads()...); err != nil {
		return err
	}
	page, err := s.cfg.Goals.Goals(r.Context(), params, cursor, limit)
	if err != nil {
		return err
	}
	stale := make(map[uuid.UUID]bool, len(page.Items))
	for i := range page.Items {
		id := page.Items[i].ID
		if stale[id], err = s.staleGoal(r, id); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, pageBody(page, func(g goals.Goal) goalView {
		v := viewGoal(g)
		v.Stale = stale[g.ID]
		return v
	}))
	return nil
}

func (s *Server) getGoal(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", domain.ReasonGoalNotFound)
	if err != nil {
		return err
	}
	if err := s.awaitPosition(r, s.cfg.Goals.Reads()...); err != nil {
		return err
	}
	g, err := s.cfg.Goals.Goal(r.Context(), id)
	if errors.Is(err, goals.ErrNotFound) {
		return newProblem(http.StatusNotFound, domain.ReasonGoalNotFound, "goal not found")
	}
	if err != nil {
		return err
	}
	v := viewGoal(g)
	if v.Stale, err = s.staleGoal(r, id); err != nil {
		return err
	}
	w.Header().Set("ETag", etag(g.Revision))
	writeJSON(w, http.StatusOK, v)
	return nil
}

// goalHistoryView is a goal's audit answer.
type goalHistoryView struct {
	GoalID   uuid.UUID     `json:"goal_id"`
	Intact   bool          `json:"intact"`
	BrokenAt *audit.Break  `json:"broken_at"`
	Events   []audit.Event `json:"events"`
	// LastHash is the chain's head, to anchor or compare with an anchor.
	LastHash string `json:"last_hash,omitempty"`
	// Anchor is the anchored head checked, with ?anchor=.
	Anchor *audit.AnchorCheck `json:"anchor,omitempty"`
}

// getGoalHistory answers the goal's events and whether its chain holds;
// with ?anchor=ENTRY (the goal's entry of `rapport audit anchor`) also
// whether the stream still reaches the head anchored then, as a
// customer's verification does: a cut tail or a rollback shows.
func (s *Server) getGoalHistory(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", domain.ReasonGoalNotFound)
	if err != nil {
		return err
	}
	stream := domain.GoalStreamName(id)
	var head *audit.StreamHead
	if entry := r.URL.Query().Get("anchor"); entry != "" {
		h, err := s.cfg.GoalAuditor.ParseAnchorEntry(entry)
		if err == nil && h.StreamName() != stream {
			err = fmt.Errorf("%w: the entry is for %s", audit.ErrInvalidAnchor, h.StreamName())
		}
		if errors.Is(err, audit.ErrInvalidAnchor) {
			return invalidFields(FieldError{Field: "anchor", Message: "must be this goal's entry of an anchor this service signed: " + err.Error()})
		}
		if err != nil {
			return err
		}
		head = &h
	}
	h, err := s.cfg.GoalAuditor.History(r.Context(), stream)
	if errors.Is(err, audit.ErrStreamNotFound) && head == nil {
		return newProblem(http.StatusNotFound, domain.ReasonGoalNotFound, "goal not found")
	}
	if err != nil && !errors.Is(err, audit.ErrStreamNotFound) {
		return err
	}
	v := h.Verification
	if head != nil {
		// Against the anchor (a goal deleted since answers broken, not 404).
		if v, err = s.cfg.GoalAuditor.VerifyStreamAnchored(r.Context(), stream, *head); err != nil {
			return err
		}
	}
	events := h.Events
	if events == nil {
		events = []audit.Event{}
	}
	writeJSON(w, http.StatusOK, goalHistoryView{GoalID: id, Intact: v.Intact, BrokenAt: v.BrokenAt, Events: events, LastHash: v.LastHash, Anchor: v.Anchor})
	return nil
}
