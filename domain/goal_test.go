package domain

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

var (
	goalID    = uuid.MustParse("90a10000-0000-4000-8000-000000000007")
	goalFrom  = time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	goalTo    = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	goalSetAt = time.Date(2025, 3, 20, 9, 0, 0, 0, time.UTC)
)

func validSetGoal() SetGoal {
	return SetGoal{
		GoalID: goalID, Name: "CSAT to 90 % this quarter", Figure: "csat_pct", Comparator: AtLeast,
		Target: ptr(90.0), From: ptr(goalFrom), To: ptr(goalTo),
	}
}

func goalSet() GoalSet {
	return GoalSet{
		GoalID: goalID, Name: "CSAT to 90 % this quarter", Figure: "csat_pct", Comparator: AtLeast, Target: 90,
		From: goalFrom, To: goalTo, OccurredAt: goalSetAt,
	}
}

// goalScenario is the given-when-then harness of DecideGoal.
type goalScenario struct {
	t       *testing.T
	history []Event
}

func givenGoal(t *testing.T, events ...Event) *goalScenario {
	t.Helper()
	return &goalScenario{t: t, history: events}
}

type goalOutcome struct {
	t      *testing.T
	state  Goal
	events []Event
	err    error
}

func (s *goalScenario) when(cmd GoalCommand) *goalOutcome {
	s.t.Helper()
	state := FoldGoal(s.history...)
	before := state
	events, err := DecideGoal(state, cmd, now)
	if !reflect.DeepEqual(state, before) {
		s.t.Fatal("DecideGoal changed the state it was given")
	}
	return &goalOutcome{t: s.t, state: state, events: events, err: err}
}

// then expects exactly these events, each surviving the store's round trip.
func (o *goalOutcome) then(want ...Event) Goal {
	o.t.Helper()
	if o.err != nil {
		o.t.Fatalf("want events, got error %v", o.err)
	}
	if len(want) == 0 && len(o.events) == 0 {
		return o.state
	}
	if !reflect.DeepEqual(o.events, want) {
		o.t.Fatalf("events differ:\ngot  %s\nwant %s", describe(o.t, o.events), describe(o.t, want))
	}
	registry := NewRegistry()
	state := o.state
	for _, e := range o.events {
		data, err := Marshal(e)
		if err != nil {
			o.t.Fatal(err)
		}
		decoded, err := registry.Decode(e.EventType(), data)
		if err != nil {
			o.t.Fatal(err)
		}
		if !reflect.DeepEqual(decoded, e) {
			o.t.Fatalf("%s does not survive a round trip", e.EventType())
		}
		state = EvolveGoal(state, e)
	}
	return state
}

func (o *goalOutcome) thenError(code Code, reason string) *Error {
	o.t.Helper()
	var de *Error
	if !errors.As(o.err, &de) {
		o.t.Fatalf("want *Error %s/%s, got %v (events %v)", code, reason, o.err, o.events)
	}
	if de.Code != code || de.Reason != reason {
		o.t.Fatalf("want %s/%s, got %s/%s: %v", code, reason, de.Code, de.Reason, de)
	}
	if len(o.events) != 0 {
		o.t.Fatal("an error must come without events")
	}
	return de
}

func (o *goalOutcome) thenFieldError(fields ...string) {
	o.t.Helper()
	de := o.thenError(CodeInvalid, ReasonInvalidFields)
	for _, field := range fields {
		if !de.HasField(field) {
			o.t.Fatalf("want field %q named, got %+v", field, de.Fields)
		}
	}
}

func TestSetGoal(t *testing.T) {
	t.Run("sets a goal with everything it is", func(t *testing.T) {
		cmd := validSetGoal()
		cmd.Name = "  CSAT to 90 % this quarter "
		cmd.Scope = GoalScope{Segment: " enterprise "}
		want := goalSet()
		want.Scope = GoalScope{Segment: "enterprise"}
		want.OccurredAt = now
		g := givenGoal(t).when(cmd).then(want)
		if !g.Set || g.ID != goalID || g.Figure != "csat_pct" || g.Scope.Segment != "enterprise" || g.Closed {
			t.Fatalf("state %+v", g)
		}
	})

	t.Run("every analytics figure can be a goal within its range", func(t *testing.T) {
		for _, fig := range GoalFigures() {
			for _, target := range []float64{fig.Min, math.Min(fig.Max, fig.Min+1)} {
				cmd := validSetGoal()
				cmd.Figure, cmd.Target = fig.Name, ptr(target)
				if _, err := DecideGoal(Goal{}, cmd, now); err != nil {
					t.Errorf("%s target %g: %v", fig.Name, target, err)
				}
			}
		}
	})

	t.Run("an unknown figure is 422 figure", func(t *testing.T) {
		cmd := validSetGoal()
		cmd.Figure = "happiness"
		givenGoal(t).when(cmd).thenFieldError("figure")
	})

	t.Run("to not after from is 422 to", func(t *testing.T) {
		for _, to := range []time.Time{goalFrom, goalFrom.Add(-time.Hour)} {
			cmd := validSetGoal()
			cmd.To = ptr(to)
			givenGoal(t).when(cmd).thenFieldError("to")
		}
	})

	t.Run("a target outside the figure's range is 422 target", func(t *testing.T) {
		for figure, target := range map[string]float64{
			"csat_pct": 100.5, "nps": -101, "csat_avg": 0.5, "churn_rate": -1, "sla_breaches": -1,
			"complaint_rate": 101, "first_response_median_s": -0.001, "contact_coverage": 120,
		} {
			cmd := validSetGoal()
			cmd.Figure, cmd.Target = figure, ptr(target)
			givenGoal(t).when(cmd).thenFieldError("target")
		}
		cmd := validSetGoal()
		cmd.Target = ptr(math.Inf(1))
		givenGoal(t).when(cmd).thenFieldError("target")
	})

	t.Run("required fields are named", func(t *testing.T) {
		givenGoal(t).when(SetGoal{GoalID: goalID}).thenFieldError("name", "figure", "comparator", "target", "from", "to")
	})

	t.Run("an unknown comparator, a time out of range, a control character are named", func(t *testing.T) {
		cmd := validSetGoal()
		cmd.Comparator = "about"
		cmd.From = ptr(time.Date(1899, 12, 31, 0, 0, 0, 0, time.UTC))
		cmd.Name = "bad\x00name"
		givenGoal(t).when(cmd).thenFieldError("comparator", "from", "name")
	})

	t.Run("a scope names at most one group, each valid", func(t *testing.T) {
		cmd := validSetGoal()
		cmd.Scope = GoalScope{Segment: "smb", Region: "emea"}
		givenGoal(t).when(cmd).thenFieldError("scope")
		cmd.Scope = GoalScope{Tier: "D"}
		givenGoal(t).when(cmd).thenFieldError("scope.tier")
	})

	t.Run("a goal id already set is a conflict", func(t *testing.T) {
		givenGoal(t, goalSet()).when(validSetGoal()).thenError(CodeConflict, ReasonGoalExists)
	})
}

func TestReviseGoal(t *testing.T) {
	t.Run("records only what changes", func(t *testing.T) {
		g := givenGoal(t, goalSet()).when(ReviseGoal{Name: ptr("CSAT to 90 % this quarter"), Target: ptr(92.0), To: ptr(goalTo.AddDate(0, 1, 0))}).
			then(GoalRevised{Target: ptr(92.0), To: ptr(goalTo.AddDate(0, 1, 0)), OccurredAt: now})
		if g.Target != 92 || !g.To.Equal(goalTo.AddDate(0, 1, 0)) || g.RevisedAt != now || g.Figure != "csat_pct" {
			t.Fatalf("state %+v", g)
		}
	})

	t.Run("a revision that changes nothing appends nothing", func(t *testing.T) {
		givenGoal(t, goalSet()).when(ReviseGoal{Target: ptr(90.0), Comparator: ptr(AtLeast)}).then()
	})

	t.Run("the scope can be narrowed and widened again", func(t *testing.T) {
		narrowed := GoalRevised{Scope: &GoalScope{Owner: "alice"}, OccurredAt: now}
		givenGoal(t, goalSet()).when(ReviseGoal{Scope: &GoalScope{Owner: " alice"}}).then(narrowed)
		givenGoal(t, goalSet(), narrowed).when(ReviseGoal{Scope: &GoalScope{}}).then(GoalRevised{Scope: &GoalScope{}, OccurredAt: now})
	})

	t.Run("the target is checked against the goal's figure", func(t *testing.T) {
		set := goalSet()
		set.Figure = "nps"
		givenGoal(t, set).when(ReviseGoal{Target: ptr(-50.0)}).then(GoalRevised{Target: ptr(-50.0), OccurredAt: now})
		givenGoal(t, goalSet()).when(ReviseGoal{Target: ptr(-50.0)}).thenFieldError("target")
	})

	t.Run("the period after the revision must have to after from", func(t *testing.T) {
		givenGoal(t, goalSet()).when(ReviseGoal{From: ptr(goalTo)}).thenFieldError("from")
		givenGoal(t, goalSet()).when(ReviseGoal{To: ptr(goalFrom.Add(-time.Second))}).thenFieldError("to")
		givenGoal(t, goalSet()).when(ReviseGoal{From: ptr(goalTo), To: ptr(goalTo.AddDate(0, 3, 0))}).
			then(GoalRevised{From: ptr(goalTo), To: ptr(goalTo.AddDate(0, 3, 0)), OccurredAt: now})
	})

	t.Run("nothing given is 422 naming the fields", func(t *testing.T) {
		givenGoal(t, goalSet()).when(ReviseGoal{}).thenFieldError("name", "target")
	})

	t.Run("an unknown goal is 404, a closed one 409", func(t *testing.T) {
		givenGoal(t).when(ReviseGoal{Target: ptr(80.0)}).thenError(CodeNotFound, ReasonGoalNotFound)
		givenGoal(t, goalSet(), GoalClosed{OccurredAt: now}).when(ReviseGoal{Target: ptr(80.0)}).thenError(CodeConflict, ReasonGoalClosed)
	})
}

func TestCloseGoal(t *testing.T) {
	t.Run("closes an open goal", func(t *testing.T) {
		g := givenGoal(t, goalSet()).when(CloseGoal{Reason: " replaced by a yearly goal "}).
			then(GoalClosed{Reason: "replaced by a yearly goal", OccurredAt: now})
		if !g.Closed || g.ClosedAt != now || g.CloseReason != "replaced by a yearly goal" {
			t.Fatalf("state %+v", g)
		}
	})

	t.Run("a reason is optional", func(t *testing.T) {
		givenGoal(t, goalSet()).when(CloseGoal{}).then(GoalClosed{OccurredAt: now})
	})

	t.Run("closing twice is 409, an unknown goal 404", func(t *testing.T) {
		givenGoal(t, goalSet(), GoalClosed{OccurredAt: now}).when(CloseGoal{}).thenError(CodeConflict, ReasonGoalClosed)
		givenGoal(t).when(CloseGoal{}).thenError(CodeNotFound, ReasonGoalNotFound)
	})
}

// TestGoalEventsStayOutOfCustomerStreamTypes: the registry decodes goal
// events, but Types (what the customer read models handle) leaves them
// out, and the customers' Evolve ignores them.
func TestGoalEventsStayOutOfCustomerStreamTypes(t *testing.T) {
	r := NewRegistry()
	goalTypes := []string{TypeGoalClosed, TypeGoalRevised, TypeGoalSet}
	if !slices.Equal(r.GoalTypes(), goalTypes) {
		t.Fatalf("GoalTypes %v", r.GoalTypes())
	}
	for _, typ := range goalTypes {
		if slices.Contains(r.Types(), typ) {
			t.Errorf("Types holds the goal type %s", typ)
		}
	}
	for _, e := range []Event{goalSet(), GoalRevised{Target: ptr(1.0), OccurredAt: now}, GoalClosed{Reason: "x", OccurredAt: now}} {
		data, err := Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		decoded, err := r.Decode(e.EventType(), data)
		if err != nil || !reflect.DeepEqual(decoded, e) {
			t.Fatalf("%s round trip: %v %#v", e.EventType(), err, decoded)
		}
		c := Fold(registered())
		if after := Evolve(c, e); !reflect.DeepEqual(after, c) {
			t.Errorf("the customer fold changed on %s", e.EventType())
		}
	}
	if id, ok := GoalIDFromStream(GoalStreamName(goalID)); !ok || id != goalID {
		t.Fatal("goal stream names do not round trip")
	}
	if _, ok := CustomerIDFromStream(GoalStreamName(goalID)); ok {
		t.Fatal("a goal stream reads as a customer stream")
	}
	if _, ok := GoalIDFromStream(StreamName(goalID)); ok {
		t.Fatal("a customer stream reads as a goal stream")
	}
}
