// Package seed generates a realistic data set through the command layer: a
// simulated year of registrations, contacts and follow-ups, complaints
// through their lifecycle, surveys, churn and win-back. Every event passes
// the same rules as a live command; only the clock is simulated (each
// command is decided at its simulated time, and recorded now).
package seed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/commands"
	"github.com/rapport-crm/rapport/domain"
)

// Config configures a seed run.
type Config struct {
	// Handler receives the commands.
	Handler commands.Handler
	// Customers to create. Default 1,000.
	Customers int
	// Workers run customers concurrently. Default 8.
	Workers int
	// Days is the simulated period, ending now. Default 365.
	Days int
	// Seed makes the data set reproducible. Default 1.
	Seed uint64
	// Actor is recorded on every event. Default "seed".
	Actor string
	// Now is the end of the simulated period. Default time.Now().
	Now time.Time
	// Progress is called after each customer with the customers done and
	// commands sent so far.
	Progress func(customers, commands int64)
}

func (c *Config) setDefaults() {
	if c.Customers == 0 {
		c.Customers = 1000
	}
	if c.Workers == 0 {
		c.Workers = 8
	}
	if c.Days == 0 {
		c.Days = 365
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Actor == "" {
		c.Actor = "seed"
	}
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Handler == nil {
		return errors.New("seed: Handler is required")
	}
	if c.Customers < 0 || c.Workers < 1 || c.Days < 1 {
		return errors.New("seed: Customers, Workers and Days must be positive")
	}
	return nil
}

// Stats counts what a run did.
type Stats struct {
	Customers int64
	Commands  int64
	Events    int64
	Refused   int64
	Duration  time.Duration
}

// Run generates the data set.
func Run(ctx context.Context, cfg Config) (Stats, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	start := time.Now()
	var (
		stats    Stats
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr error
		errOnce  sync.Once
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1) - 1
				if n >= int64(cfg.Customers) || ctx.Err() != nil {
					return
				}
				g := generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(n))), n: n, stats: &stats}
				if err := g.customer(ctx); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				done := atomic.AddInt64(&stats.Customers, 1)
				if cfg.Progress != nil {
					cfg.Progress(done, atomic.LoadInt64(&stats.Commands))
				}
			}
		}()
	}
	wg.Wait()
	stats.Duration = time.Since(start)
	return stats, firstErr
}

var (
	segments   = []string{"enterprise", "smb", "smb", "consumer", "consumer"}
	tiers      = []string{"A", "B", "B", "C", "C", "C"}
	regions    = []string{"emea", "north-america", "apac", "latam"}
	industries = []string{"retail", "finance", "healthcare", "manufacturing", "software", "logistics"}
	categories = []string{"billing", "delivery", "product-quality", "support", "account"}
	severities = []domain.Severity{domain.SeverityLow, domain.SeverityLow, domain.SeverityMedium, domain.SeverityMedium, domain.SeverityHigh, domain.SeverityCritical}
	channels   = []domain.Channel{domain.ChannelEmail, domain.ChannelPhone, domain.ChannelChat, domain.ChannelMeeting, domain.ChannelVideo, domain.ChannelVisit, domain.ChannelSocial}
)

func pick[T any](rng *rand.Rand, from []T) T { return from[rng.IntN(len(from))] }

// staff names the people who work the accounts.
func staff(rng *rand.Rand) string { return fmt.Sprintf("agent-%02d", rng.IntN(24)) }

// generator simulates one customer's life.
type generator struct {
	cfg   Config
	rng   *rand.Rand
	n     int64
	id    uuid.UUID
	stats *Stats
}

// step is a command at a simulated time.
type step struct {
	at  time.Time
	cmd domain.Command
	// id is the command id, chosen ahead so that the ids the command
	// creates are known to the steps after it.
	id uuid.UUID
}

// commandID derives the k-th command id of the customer: the same seed
// makes the same ids, so running a seed again appends nothing new.
func (g *generator) commandID(k int) uuid.UUID {
	return uuid.NewSHA1(seedNamespace, fmt.Appendf(nil, "%d/%d/%d", g.cfg.Seed, g.n, k))
}

func (g *generator) send(ctx context.Context, s step) (commands.Result, error) {
	if s.at.After(g.cfg.Now) {
		return commands.Result{}, nil // beyond the simulated present
	}
	atomic.AddInt64(&g.stats.Commands, 1)
	res, err := g.cfg.Handler.Handle(ctx, commands.Request{
		CustomerID: g.id, Command: s.cmd, CommandID: s.id,
		Actor: g.cfg.Actor, CorrelationID: fmt.Sprintf("seed-%d", g.n), At: s.at,
	})
	var de *domain.Error
	if errors.As(err, &de) && de.Code != domain.CodeInvalid {
		// A generated lifecycle that the rules refuse (a survey on a
		// complaint reopened meanwhile…) is skipped, as a client would.
		atomic.AddInt64(&g.stats.Refused, 1)
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("seed: customer %d: %s: %w", g.n, commands.CommandName(s.cmd), err)
	}
	atomic.AddInt64(&g.stats.Events, int64(res.Appended))
	return res, nil
}

var seedNamespace = uuid.MustParse("2f0c9b7e-8a51-4f3d-b6c2-95e7d1a04c38")

func (g *generator) randomTime(from, to time.Time) time.Time {
	if !to.After(from) {
		return from
	}
	return from.Add(time.Duration(g.rng.Int64N(int64(to.Sub(from)))))
}

func (g *generator) customer(ctx context.Context) error {
	rng := g.rng
	end := g.cfg.Now
	start := end.AddDate(0, 0, -g.cfg.Days)
	registered := g.randomTime(start, end.Add(-time.Hour))
	register := domain.RegisterCustomer{
		Name:     fmt.Sprintf("Customer %d", g.n),
		Email:    fmt.Sprintf("customer-%d-%d@example.test", g.cfg.Seed, g.n),
		Phone:    fmt.Sprintf("+1 555 %07d", g.n%10_000_000),
		Company:  fmt.Sprintf("Company %d", g.n%5000),
		Segment:  pick(rng, segments),
		Tier:     pick(rng, tiers),
		Region:   pick(rng, regions),
		Industry: pick(rng, industries),
		Tags:     []string{pick(rng, []string{"newsletter", "vip", "partner", "trial"})},
	}
	res, err := g.send(ctx, step{at: registered, id: g.commandID(0), cmd: register})
	if err != nil {
		return err
	}
	if res.CustomerID == uuid.Nil {
		return nil
	}
	g.id = res.CustomerID

	var steps []step
	steps = append(steps, step{at: registered.Add(time.Minute), cmd: domain.AssignTeamMember{Role: domain.RoleAccountManager, Member: staff(rng)}})
	if rng.IntN(3) == 0 {
		steps = append(steps, step{at: registered.Add(2 * time.Minute), cmd: domain.AssignTeamMember{Role: domain.RoleSupport, Member: staff(rng)}})
	}
	// Contacts, some after a scheduled follow-up.
	for range rng.IntN(7) {
		at := g.randomTime(registered, end)
		steps = append(steps, step{at: at, cmd: domain.LogContact{Channel: pick(rng, channels), Direction: pick(rng, []domain.Direction{domain.DirectionInbound, domain.DirectionOutbound}), Summary: "talked about the account", By: staff(rng)}})
		if rng.IntN(4) == 0 {
			steps = append(steps, step{at: at.Add(time.Minute), cmd: domain.ScheduleFollowUp{DueAt: at.Add(time.Duration(1+rng.IntN(21)) * 24 * time.Hour), By: staff(rng), Note: "check in"}})
		}
	}
	// Complaints through their lifecycle.
	for c := range rng.IntN(3) {
		filed := g.randomTime(registered, end)
		file := domain.FileComplaint{Category: pick(rng, categories), Severity: pick(rng, severities), Description: "something went wrong", Channel: pick(rng, channels)}
		fileID := g.commandID(1000 + c)
		_, cid := commands.WithDerivedIDs(file, fileID)
		steps = append(steps, step{at: filed, cmd: file, id: fileID})
		steps = append(steps, step{at: filed.Add(time.Minute), cmd: domain.AssignComplaint{ComplaintID: cid, Assignee: staff(rng)}})
		t := filed
		for opening := 0; opening < 2; opening++ {
			if rng.IntN(8) == 0 {
				break // never answered
			}
			t = t.Add(time.Duration(rng.ExpFloat64() * float64(6*time.Hour)))
			steps = append(steps, step{at: t, cmd: domain.AcknowledgeComplaint{ComplaintID: cid, By: staff(rng)}})
			if rng.IntN(5) == 0 {
				t = t.Add(time.Duration(rng.ExpFloat64() * float64(12*time.Hour)))
				steps = append(steps, step{at: t, cmd: domain.EscalateComplaint{ComplaintID: cid, To: "team-lead", Reason: "needs a decision"}})
			}
			if rng.IntN(6) == 0 {
				break // still open
			}
			t = t.Add(time.Duration(rng.ExpFloat64() * float64(48*time.Hour)))
			steps = append(steps, step{at: t, cmd: domain.ResolveComplaint{ComplaintID: cid, By: staff(rng), Resolution: "fixed"}})
			if rng.IntN(6) != 0 {
				break
			}
			t = t.Add(time.Duration(rng.ExpFloat64() * float64(72*time.Hour)))
			steps = append(steps, step{at: t, cmd: domain.ReopenComplaint{ComplaintID: cid, Reason: "came back"}})
		}
		if rng.IntN(2) == 0 {
			csat := 1 + rng.IntN(5)
			steps = append(steps, step{at: t.Add(24 * time.Hour), cmd: domain.RecordSurvey{CSAT: &csat, Comment: "about the complaint", Channel: domain.ChannelEmail, ComplaintID: &cid}})
		}
	}
	// Surveys, satisfaction skewed towards content.
	for range rng.IntN(3) {
		at := g.randomTime(registered, end)
		survey := domain.RecordSurvey{Channel: domain.ChannelEmail}
		if rng.IntN(4) != 0 {
			csat := []int{1, 2, 3, 3, 4, 4, 4, 5, 5, 5}[rng.IntN(10)]
			survey.CSAT = &csat
		}
		if survey.CSAT == nil || rng.IntN(2) == 0 {
			nps := []int{0, 3, 5, 6, 7, 7, 8, 8, 9, 9, 10, 10}[rng.IntN(12)]
			survey.NPS = &nps
		}
		steps = append(steps, step{at: at, cmd: survey})
	}
	// Churn, and sometimes a win-back.
	if rng.IntN(8) == 0 {
		churned := g.randomTime(registered.Add(24*time.Hour), end)
		steps = append(steps, step{at: churned, cmd: domain.MarkChurned{Reason: pick(rng, []string{"price", "competitor", "service", "closed down"})}})
		if rng.IntN(3) == 0 {
			steps = append(steps, step{at: g.randomTime(churned.Add(time.Hour), end), cmd: domain.Reactivate{Reason: "won back"}})
		}
	}
	slices.SortStableFunc(steps, func(a, b step) int { return a.at.Compare(b.at) })
	for k := range steps {
		if steps[k].id == uuid.Nil {
			steps[k].id = g.commandID(2000 + k)
		}
	}
	// Purchases come after, with ids of their own, so that the steps above
	// keep the ids they had before purchases were seeded.
	steps = append(steps, g.purchaseSteps(register.Region, registered, end)...)
	slices.SortStableFunc(steps, func(a, b step) int { return a.at.Compare(b.at) })
	for _, s := range steps {
		if _, err := g.send(ctx, s); err != nil {
			return err
		}
	}
	return nil
}
