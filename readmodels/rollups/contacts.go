package rollups

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/cadence"
)

// The contact rollup. Every contacts figure but over-contact holds at an
// instant T (the period's or the month's end) and is, per customer, a
// set of instants, a union of intervals (a, b] — left-open because the
// documented SQL judges "just before T": active when active_from < T <=
// active_until, contacted when a contact lies in [T − 720 h, T), not due
// when the last contact before T (or the registration) + (cadence + 1) ×
// 24 h >= T, overdue when due_at < T <= done_at. A customer's intervals
// are disjoint, so the customers counted at T are the intervals started
// before T less those ended before T: two cumulative counts, kept per
// group and UTC day in contact_days, the partial day up to T counted from
// the intervals themselves (contact_spans, followup_facts). That costs a
// report O(days × groups) whatever the number of customers.
//
//   - coverage (kind 0): the union over contacts c of (c, c + 720 h],
//     intersected with the active spells (from, until];
//   - freshness (kind 1, "not due"): the union of (−∞, min(first contact,
//     registration + D)] and, over contacts c, (c, c + D], D = (cadence of
//     the current tier + 1) × 24 h, intersected with the spells;
//   - follow-ups: due on the day of due_at, settled on the day of
//     greatest(due_at, done_at) (an empty interval is due and settled
//     alike).
//
// The projector recomputes a customer's intervals from its contacts,
// spells and tier whenever one of them changes (a customer has few) and
// adds the difference to the days, under its current keys; re-keying
// moves a customer's intervals from its old keys to the new ones.
//
// Over-contact in [f, t) is not a count at an instant: a customer counts
// when some burst (c, e) has f <= c and e < t, c one of its outbound
// contacts and e the (max + 1)-th counted from c, within 168 h
// (contact_bursts). Bursts are few, and the report counts them by the
// customers' current keys.
//
// Cadence and max_outbound_per_week are configuration: the rollup holds
// the figures for PRODUCT.md's defaults (RollupCadence,
// RollupMaxOutbound), which is what lets a setting change need no
// rebuild: with other settings the analytics answer the cadence figures
// from the documented SQL instead.

// RollupCadence is the cadence (days of A, B, C, none, as
// cadence.Cadence.Array) the freshness intervals are built with.
func RollupCadence() []int32 { return cadence.Default().Array() }

// RollupMaxOutbound is the max_outbound_per_week the bursts are built
// with.
const RollupMaxOutbound = cadence.DefaultMaxOutboundPerWeek

// coverageWindow is how far back a contact counts for coverage (720 h).
const coverageWindow = 720 * time.Hour

const (
	kindCoverage = 0
	kindFresh    = 1
)

// Sentinels for unbounded intervals: none survives the intersection with
// a spell (spells start at a finite instant; contacts and registrations
// end every interval they open).
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// setupContacts creates the contact rollup's tables (see Setup).
func setupContacts(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE contact_facts (
			customer_id uuid        NOT NULL,
			contact_id  uuid        NOT NULL,
			occurred_at timestamptz NOT NULL,
			outbound    boolean     NOT NULL,
			PRIMARY KEY (customer_id, contact_id)
		);
		CREATE TABLE contact_spans (
			customer_id uuid        NOT NULL,
			kind        smallint    NOT NULL,
			start_at    timestamptz NOT NULL,
			end_at      timestamptz NOT NULL,
			`+keyColumns+`,
			PRIMARY KEY (customer_id, kind, start_at)
		);
		CREATE TABLE contact_bursts (
			customer_id uuid        NOT NULL,
			start_at    timestamptz NOT NULL,
			end_at      timestamptz NOT NULL,
			`+keyColumns+`,
			PRIMARY KEY (customer_id, start_at)
		);
		CREATE TABLE followup_facts (
			customer_id  uuid        NOT NULL,
			follow_up_id uuid        NOT NULL,
			scheduled_at timestamptz NOT NULL,
			due_at       timestamptz NOT NULL,
			done_at      timestamptz,
			`+keyColumns+`,
			PRIMARY KEY (customer_id, follow_up_id)
		);
		CREATE TABLE contact_days (
			dim          text   NOT NULL,
			key          text   NOT NULL,
			day          date   NOT NULL,
			cover_starts bigint NOT NULL,
			cover_ends   bigint NOT NULL,
			fresh_starts bigint NOT NULL,
			fresh_ends   bigint NOT NULL,
			due          bigint NOT NULL,
			settled      bigint NOT NULL,
			PRIMARY KEY (dim, key, day)
		);`)
	return err
}

// contactIndexes are the contact rollup's indexes (see CreateIndexes):
// the intervals and follow-ups by the instants a report's partial day
// reads, the bursts by start.
var contactIndexes = []string{
	`CREATE INDEX IF NOT EXISTS contact_spans_start_idx ON contact_spans (start_at) INCLUDE (customer_id, kind, ` + factKeys + `)`,
	`CREATE INDEX IF NOT EXISTS contact_spans_end_idx ON contact_spans (end_at) INCLUDE (customer_id, kind, ` + factKeys + `)`,
	`CREATE INDEX IF NOT EXISTS contact_bursts_start_idx ON contact_bursts (start_at) INCLUDE (customer_id, end_at, ` + factKeys + `)`,
	`CREATE INDEX IF NOT EXISTS followup_facts_due_idx ON followup_facts (due_at) INCLUDE (customer_id, ` + factKeys + `)`,
	`CREATE INDEX IF NOT EXISTS followup_facts_settled_idx ON followup_facts (greatest(due_at, done_at)) INCLUDE (customer_id, ` + factKeys + `) WHERE done_at IS NOT NULL`,
	`ANALYZE contact_facts`, `ANALYZE contact_spans`, `ANALYZE contact_bursts`, `ANALYZE followup_facts`, `ANALYZE contact_days`,
}

// isContactEvent says whether the contact rollup folds e.
func isContactEvent(e domain.Event) bool {
	switch e.(type) {
	case domain.ContactLogged, domain.FollowUpScheduled:
		return true
	}
	return isLifecycle(e)
}

// micro is t as PostgreSQL stores it.
func micro(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

// contactFold collects a batch's contact, follow-up and life-cycle events
// by customer, in log order.
type contactFold struct {
	events map[uuid.UUID][]domain.Event
	order  []uuid.UUID
}

func newContactFold() *contactFold { return &contactFold{events: map[uuid.UUID][]domain.Event{}} }

func (f *contactFold) note(id uuid.UUID, e domain.Event) {
	if _, ok := f.events[id]; !ok {
		f.order = append(f.order, id)
	}
	f.events[id] = append(f.events[id], e)
}

// interval is (from, until].
type interval struct{ from, until time.Time }

// merge unions intervals sorted by from: touching ones ((a, b] and (b,
// c]) become one, so that a customer's intervals are canonical whatever
// the batches.
func merge(in []interval) []interval {
	var out []interval
	for _, iv := range in {
		if !iv.from.Before(iv.until) {
			continue
		}
		if n := len(out); n > 0 && !iv.from.After(out[n-1].until) {
			if iv.until.After(out[n-1].until) {
				out[n-1].until = iv.until
			}
			continue
		}
		out = append(out, iv)
	}
	return out
}

// intersect intersects two sorted lists of disjoint intervals.
func intersect(a, b []interval) []interval {
	var out []interval
	for i, j := 0, 0; i < len(a) && j < len(b); {
		from, until := a[i].from, a[i].until
		if b[j].from.After(from) {
			from = b[j].from
		}
		if b[j].until.Before(until) {
			until = b[j].until
		}
		if from.Before(until) {
			out = append(out, interval{from, until})
		}
		if a[i].until.Before(b[j].until) {
			i++
		} else {
			j++
		}
	}
	return out
}

// customerContacts is what a customer's intervals are computed from.
type customerContacts struct {
	contacts []time.Time // every contact's occurred_at, sorted
	outbound []time.Time // the outbound ones, sorted
	spells   []interval  // active spells, (active_from, active_until], in order
	reg      time.Time   // registration (spell 1's start)
	hasReg   bool
}

// spans computes a customer's coverage and freshness intervals, its tier
// giving the freshness length.
func (c *customerContacts) spans(tier string) (coverage, fresh []interval) {
	spells := merge(c.spells)
	if len(spells) == 0 || !c.hasReg {
		return nil, nil
	}
	days := RollupCadence()
	d := days[3]
	switch tier {
	case "A":
		d = days[0]
	case "B":
		d = days[1]
	case "C":
		d = days[2]
	}
	length := time.Duration(d+1) * 24 * time.Hour
	cov := make([]interval, 0, len(c.contacts))
	nd := make([]interval, 0, len(c.contacts)+1)
	first := c.reg.Add(length)
	if len(c.contacts) > 0 && c.contacts[0].Before(first) {
		first = c.contacts[0]
	}
	nd = append(nd, interval{minTime, first})
	for _, t := range c.contacts {
		cov = append(cov, interval{t, t.Add(coverageWindow)})
		nd = append(nd, interval{t, t.Add(length)})
	}
	return intersect(merge(cov), spells), intersect(merge(nd), spells)
}

// bursts are a customer's (c, e): c an outbound contact (the first of
// equal ones), e the (max + 1)-th outbound contact counted from c, less
// than 168 h after it. A burst whose successor has the same e is left
// out: the successor starts later and ends as early, so it counts in
// every period the other would.
func (c *customerContacts) bursts() []interval {
	x, m := c.outbound, RollupMaxOutbound
	var out []interval
	for i := 0; i+m < len(x); i++ {
		if i > 0 && x[i].Equal(x[i-1]) {
			continue
		}
		e := x[i+m]
		if e.Sub(x[i]) >= cadence.Week {
			continue
		}
		if n := len(out); n > 0 && out[n-1].until.Equal(e) {
			out[n-1] = interval{x[i], e}
			continue
		}
		out = append(out, interval{x[i], e})
	}
	return out
}

// followUpFact is one follow-up as the rollup keeps it.
type followUpFact struct {
	id                 uuid.UUID
	scheduledAt, dueAt time.Time
	doneAt             *time.Time
}

// settledAt is greatest(due_at, done_at), nil while pending.
func (f followUpFact) settledAt() *time.Time {
	if f.doneAt == nil {
		return nil
	}
	if f.doneAt.After(f.dueAt) {
		return f.doneAt
	}
	return &f.dueAt
}

// dayCounts are one day's changes of contact_days.
type dayCounts struct{ coverStarts, coverEnds, freshStarts, freshEnds, due, settled int64 }

func (d dayCounts) zero() bool { return d == dayCounts{} }

type dayKey struct {
	dim, key string
	day      string
}

// dayDeltas accumulates contact_days changes.
type dayDeltas map[dayKey]*dayCounts

func (m dayDeltas) add(k keys, t time.Time, sign int64, set func(*dayCounts, int64)) {
	day := t.UTC().Format(time.DateOnly)
	for _, dim := range Dims {
		dk := dayKey{dim, k.of(dim), day}
		c := m[dk]
		if c == nil {
			c = &dayCounts{}
			m[dk] = c
		}
		set(c, sign)
	}
}

func (m dayDeltas) spans(k keys, kind int, ivs []interval, sign int64) {
	for _, iv := range ivs {
		if kind == kindCoverage {
			m.add(k, iv.from, sign, func(c *dayCounts, s int64) { c.coverStarts += s })
			m.add(k, iv.until, sign, func(c *dayCounts, s int64) { c.coverEnds += s })
		} else {
			m.add(k, iv.from, sign, func(c *dayCounts, s int64) { c.freshStarts += s })
			m.add(k, iv.until, sign, func(c *dayCounts, s int64) { c.freshEnds += s })
		}
	}
}

func (m dayDeltas) followUp(k keys, f followUpFact, sign int64) {
	m.add(k, f.dueAt, sign, func(c *dayCounts, s int64) { c.due += s })
	if at := f.settledAt(); at != nil {
		m.add(k, *at, sign, func(c *dayCounts, s int64) { c.settled += s })
	}
}

// contactState is a customer's stored rollup state and what it becomes.
type contactState struct {
	oldKeys, newKeys   keys
	facts              customerContacts
	oldCover, oldFresh []interval
	oldBursts          []interval
	followUps          map[uuid.UUID]*followUpFact
	oldFollowUps       map[uuid.UUID]followUpFact
	followUpOrder      []uuid.UUID
	newContacts        []contactRow
	newCover, newFresh []interval
	newBursts          []interval
}

type contactRow struct {
	id       uuid.UUID
	at       time.Time
	outbound bool
}

// write folds the batch's contact events and every re-keyed customer
// (stored holds the keys before the batch of the customers whose keys the
// batch set, current after it): it records the contacts and follow-ups,
// recomputes the touched customers' intervals and bursts, and adds the
// difference to contact_days under their keys — subtracting what was
// stored under the old keys, adding what is now under the new ones, which
// is also the re-keying. It runs after the keys and spells are written.
func (f *contactFold) write(ctx context.Context, tx pgx.Tx, noRekey bool, stored, current map[uuid.UUID]keys) error {
	ids := slices.Clone(f.order)
	seen := map[uuid.UUID]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	for id, k := range current {
		if old, had := stored[id]; had && old != k && !seen[id] && !noRekey {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	st, err := loadContactStates(ctx, tx, ids)
	if err != nil {
		return err
	}
	for id, s := range st {
		if old, had := stored[id]; had && !noRekey {
			s.oldKeys = old
		} else {
			s.oldKeys = s.newKeys
		}
	}
	// The batch's events, in log order: contacts, follow-ups and their
	// completion (the first contact logged after a follow-up that occurred
	// at or after its scheduling, as package contacts folds it).
	for _, id := range f.order {
		s := st[id]
		for _, e := range f.events[id] {
			switch e := e.(type) {
			case domain.ContactLogged:
				at := micro(e.OccurredAt)
				s.newContacts = append(s.newContacts, contactRow{e.ContactID, at, e.Direction == domain.DirectionOutbound})
				s.facts.contacts = append(s.facts.contacts, at)
				if e.Direction == domain.DirectionOutbound {
					s.facts.outbound = append(s.facts.outbound, at)
				}
				for _, fid := range s.followUpOrder {
					fu := s.followUps[fid]
					if fu.doneAt == nil && !at.Before(fu.scheduledAt) {
						done := at
						fu.doneAt = &done
					}
				}
			case domain.FollowUpScheduled:
				if _, dup := s.followUps[e.FollowUpID]; dup {
					continue
				}
				s.followUps[e.FollowUpID] = &followUpFact{id: e.FollowUpID, scheduledAt: micro(e.OccurredAt), dueAt: micro(e.DueAt)}
				s.followUpOrder = append(s.followUpOrder, e.FollowUpID)
			}
		}
	}
	deltas := dayDeltas{}
	var (
		cCust, cID                    []uuid.UUID
		cAt                           []time.Time
		cOut                          []bool
		delCust                       []uuid.UUID
		delKind                       []int16
		delStart                      []time.Time
		insCust                       []uuid.UUID
		insKind                       []int16
		insStart, insEnd              []time.Time
		bDelCust, bInsCust            []uuid.UUID
		bDelStart, bInsStart, bInsEnd []time.Time
		fCust, fID                    []uuid.UUID
		fSched, fDue                  []time.Time
		fDone                         []*time.Time
	)
	for _, id := range ids {
		s := st[id]
		for _, c := range s.newContacts {
			cCust, cID, cAt, cOut = append(cCust, id), append(cID, c.id), append(cAt, c.at), append(cOut, c.outbound)
		}
		slices.SortFunc(s.facts.contacts, time.Time.Compare)
		slices.SortFunc(s.facts.outbound, time.Time.Compare)
		s.newCover, s.newFresh = s.facts.spans(s.newKeys.tier)
		s.newBursts = s.facts.bursts()
		deltas.spans(s.oldKeys, kindCoverage, s.oldCover, -1)
		deltas.spans(s.oldKeys, kindFresh, s.oldFresh, -1)
		deltas.spans(s.newKeys, kindCoverage, s.newCover, 1)
		deltas.spans(s.newKeys, kindFresh, s.newFresh, 1)
		for _, kind := range []int{kindCoverage, kindFresh} {
			old, now := s.oldCover, s.newCover
			if kind == kindFresh {
				old, now = s.oldFresh, s.newFresh
			}
			for _, iv := range old {
				if !slices.Contains(now, iv) {
					delCust, delKind, delStart = append(delCust, id), append(delKind, int16(kind)), append(delStart, iv.from)
				}
			}
			for _, iv := range now {
				if !slices.Contains(old, iv) {
					insCust, insKind, insStart, insEnd = append(insCust, id), append(insKind, int16(kind)), append(insStart, iv.from), append(insEnd, iv.until)
				}
			}
		}
		for _, b := range s.oldBursts {
			if !slices.Contains(s.newBursts, b) {
				bDelCust, bDelStart = append(bDelCust, id), append(bDelStart, b.from)
			}
		}
		for _, b := range s.newBursts {
			if !slices.Contains(s.oldBursts, b) {
				bInsCust, bInsStart, bInsEnd = append(bInsCust, id), append(bInsStart, b.from), append(bInsEnd, b.until)
			}
		}
		for _, fid := range s.followUpOrder {
			fu := *s.followUps[fid]
			old, had := s.oldFollowUps[fid]
			if had {
				deltas.followUp(s.oldKeys, old, -1)
			}
			deltas.followUp(s.newKeys, fu, 1)
			if !had || (old.doneAt == nil) != (fu.doneAt == nil) {
				fCust, fID, fSched, fDue, fDone = append(fCust, id), append(fID, fid), append(fSched, fu.scheduledAt), append(fDue, fu.dueAt), append(fDone, fu.doneAt)
			}
		}
	}
	if len(cID) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO contact_facts (customer_id, contact_id, occurred_at, outbound)
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::boolean[])`, cCust, cID, cAt, cOut); err != nil {
			return fmt.Errorf("rollups: write %d contacts: %w", len(cID), err)
		}
	}
	if len(delCust) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM contact_spans s USING unnest($1::uuid[], $2::smallint[], $3::timestamptz[]) AS t(customer_id, kind, start_at)
			WHERE s.customer_id = t.customer_id AND s.kind = t.kind AND s.start_at = t.start_at`, delCust, delKind, delStart); err != nil {
			return fmt.Errorf("rollups: delete %d contact intervals: %w", len(delCust), err)
		}
	}
	if len(insCust) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO contact_spans (customer_id, kind, start_at, end_at, `+factKeys+`)
			`+withKeys(`unnest($1::uuid[], $2::smallint[], $3::timestamptz[], $4::timestamptz[]) AS t(customer_id, kind, start_at, end_at)`), insCust, insKind, insStart, insEnd); err != nil {
			return fmt.Errorf("rollups: write %d contact intervals: %w", len(insCust), err)
		}
	}
	if len(bDelCust) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM contact_bursts b USING unnest($1::uuid[], $2::timestamptz[]) AS t(customer_id, start_at)
			WHERE b.customer_id = t.customer_id AND b.start_at = t.start_at`, bDelCust, bDelStart); err != nil {
			return fmt.Errorf("rollups: delete %d bursts: %w", len(bDelCust), err)
		}
	}
	if len(bInsCust) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO contact_bursts (customer_id, start_at, end_at, `+factKeys+`)
			`+withKeys(`unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS t(customer_id, start_at, end_at)`), bInsCust, bInsStart, bInsEnd); err != nil {
			return fmt.Errorf("rollups: write %d bursts: %w", len(bInsCust), err)
		}
	}
	if len(fID) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO followup_facts AS f (customer_id, follow_up_id, scheduled_at, due_at, done_at, `+factKeys+`)
			`+withKeys(`unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[]) AS t(customer_id, follow_up_id, scheduled_at, due_at, done_at)`)+`
			ON CONFLICT (customer_id, follow_up_id) DO UPDATE SET done_at = EXCLUDED.done_at, segment = EXCLUDED.segment,
				tier = EXCLUDED.tier, region = EXCLUDED.region, account_manager = EXCLUDED.account_manager`, fCust, fID, fSched, fDue, fDone); err != nil {
			return fmt.Errorf("rollups: write %d follow-ups: %w", len(fID), err)
		}
	}
	return writeContactDays(ctx, tx, deltas)
}

// writeContactDays adds the deltas to contact_days and deletes the rows
// they leave at zero: a row of zeros means what no row means, and without
// the delete the table would depend on how the log was batched (see
// pruneEmptyDays).
func writeContactDays(ctx context.Context, tx pgx.Tx, deltas dayDeltas) error {
	var dims, ks, days []string
	var cs, ce, fs, fe, due, settled []int64
	for k, c := range deltas {
		if c.zero() {
			continue
		}
		dims, ks, days = append(dims, k.dim), append(ks, k.key), append(days, k.day)
		cs, ce, fs, fe = append(cs, c.coverStarts), append(ce, c.coverEnds), append(fs, c.freshStarts), append(fe, c.freshEnds)
		due, settled = append(due, c.due), append(settled, c.settled)
	}
	if len(dims) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO contact_days AS d (dim, key, day, cover_starts, cover_ends, fresh_starts, fresh_ends, due, settled)
		SELECT t.dim, t.key, t.day::date, t.cs, t.ce, t.fs, t.fe, t.due, t.settled
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
			AS t(dim, key, day, cs, ce, fs, fe, due, settled)
		ON CONFLICT (dim, key, day) DO UPDATE SET cover_starts = d.cover_starts + EXCLUDED.cover_starts,
			cover_ends = d.cover_ends + EXCLUDED.cover_ends, fresh_starts = d.fresh_starts + EXCLUDED.fresh_starts,
			fresh_ends = d.fresh_ends + EXCLUDED.fresh_ends, due = d.due + EXCLUDED.due, settled = d.settled + EXCLUDED.settled`,
		dims, ks, days, cs, ce, fs, fe, due, settled); err != nil {
		return fmt.Errorf("rollups: add %d contact days: %w", len(dims), err)
	}
	if _, err := tx.Exec(ctx, `
		DELETE FROM contact_days d USING unnest($1::text[], $2::text[], $3::text[]) AS t(dim, key, day)
		WHERE d.dim = t.dim AND d.key = t.key AND d.day = t.day::date
			AND d.cover_starts = 0 AND d.cover_ends = 0 AND d.fresh_starts = 0 AND d.fresh_ends = 0 AND d.due = 0 AND d.settled = 0`,
		dims, ks, days); err != nil {
		return fmt.Errorf("rollups: prune contact days: %w", err)
	}
	return nil
}

// loadContactStates reads, for the customers ids, their current keys
// (written before), contacts, spells, intervals, bursts and follow-ups.
func loadContactStates(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]*contactState, error) {
	st := make(map[uuid.UUID]*contactState, len(ids))
	for _, id := range ids {
		st[id] = &contactState{followUps: map[uuid.UUID]*followUpFact{}, oldFollowUps: map[uuid.UUID]followUpFact{}}
	}
	batch := &pgx.Batch{}
	batch.Queue(`SELECT id, segment, tier, region, coalesce(account_manager, '') FROM rollup_customers WHERE id = ANY($1)`, ids).Query(func(rows pgx.Rows) error {
		var id uuid.UUID
		var k keys
		_, err := pgx.ForEachRow(rows, []any{&id, &k.segment, &k.tier, &k.region, &k.owner}, func() error {
			st[id].newKeys = k
			return nil
		})
		return err
	})
	batch.Queue(`SELECT customer_id, occurred_at, outbound FROM contact_facts WHERE customer_id = ANY($1)`, ids).Query(func(rows pgx.Rows) error {
		var id uuid.UUID
		var at time.Time
		var out bool
		_, err := pgx.ForEachRow(rows, []any{&id, &at, &out}, func() error {
			s := st[id]
			s.facts.contacts = append(s.facts.contacts, at.UTC())
			if out {
				s.facts.outbound = append(s.facts.outbound, at.UTC())
			}
			return nil
		})
		return err
	})
	batch.Queue(`SELECT customer_id, spell, active_from, active_until FROM spell_facts WHERE customer_id = ANY($1) ORDER BY customer_id, spell`, ids).Query(func(rows pgx.Rows) error {
		var id uuid.UUID
		var n int32
		var from time.Time
		var until *time.Time
		_, err := pgx.ForEachRow(rows, []any{&id, &n, &from, &until}, func() error {
			s := st[id]
			u := maxTime
			if until != nil {
				u = until.UTC()
			}
			s.facts.spells = append(s.facts.spells, interval{from.UTC(), u})
			if n == 1 {
				s.facts.reg, s.facts.hasReg = from.UTC(), true
			}
			until = nil // pgx scans into a non-nil pointer's value
			return nil
		})
		return err
	})
	batch.Queue(`SELECT customer_id, kind, start_at, end_at FROM contact_spans WHERE customer_id = ANY($1) ORDER BY customer_id, kind, start_at`, ids).Query(func(rows pgx.Rows) error {
		var id uuid.UUID
		var kind int16
		var from, until time.Time
		_, err := pgx.ForEachRow(rows, []any{&id, &kind, &from, &until}, func() error {
			s := st[id]
			if kind == kindCoverage {
				s.oldCover = append(s.oldCover, interval{from.UTC(), until.UTC()})
			} else {
				s.oldFresh = append(s.oldFresh, interval{from.UTC(), until.UTC()})
			}
			return nil
		})
		return err
	})
	batch.Queue(`SELECT customer_id, start_at, end_at FROM contact_bursts WHERE customer_id = ANY($1) ORDER BY customer_id, start_at`, ids).Query(func(rows pgx.Rows) error {
		var id uuid.UUID
		var from, until time.Time
		_, err := pgx.ForEachRow(rows, []any{&id, &from, &until}, func() error {
			st[id].oldBursts = append(st[id].oldBursts, interval{from.UTC(), until.UTC()})
			return nil
		})
		return err
	})
	batch.Queue(`SELECT customer_id, follow_up_id, scheduled_at, due_at, done_at FROM followup_facts WHERE customer_id = ANY($1)
		ORDER BY customer_id, scheduled_at, follow_up_id`, ids).Query(func(rows pgx.Rows) error {
		var id uuid.UUID
		var fu followUpFact
		_, err := pgx.ForEachRow(rows, []any{&id, &fu.id, &fu.scheduledAt, &fu.dueAt, &fu.doneAt}, func() error {
			s := st[id]
			fu.scheduledAt, fu.dueAt = fu.scheduledAt.UTC(), fu.dueAt.UTC()
			if fu.doneAt != nil {
				d := fu.doneAt.UTC()
				fu.doneAt = &d
			}
			s.oldFollowUps[fu.id] = fu
			cp := fu
			s.followUps[fu.id] = &cp
			s.followUpOrder = append(s.followUpOrder, fu.id)
			fu.doneAt = nil // pgx scans into a non-nil pointer's value
			return nil
		})
		return err
	})
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return nil, fmt.Errorf("rollups: load contact states: %w", err)
	}
	return st, nil
}
