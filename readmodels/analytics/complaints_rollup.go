package analytics

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/readmodels/rollups"
)

// The complaint report with rollups reads package rollups' complaint
// blocks: for each group, the arrays of the facts of each whole UTC day of
// the period, and the same arrays aggregated from the facts of its partial
// days at the edges (or of the whole period while the blocks are not
// built). scanComplaintBlocks computes the figures from them exactly as
// the documented SQL does: the counts, the breaches judged at now against
// the targets (instants in microseconds, as PostgreSQL keeps them), and
// the medians as percentile_cont(0.5) computes them over the same float8
// durations (the facts' generated columns).

// complaintBlockColumns are the arrays of a block, alias b.
const complaintBlockColumns = `b.n, b.severity, b.opened_us, b.first_response_us, b.resolved_us, b.first_response_s, b.resolution_s, b.resolved`

// complaintBlocks are the blocks and edge arrays of [$1, $2) by {bkey}
// (over a block b) and {fkey} (over a fact f): whole days [{a}, {b}) of
// dimension {dim}, partial days [$1, {ats}) and [{bts}, $2).
var complaintBlocks = `
	built AS (SELECT s.built FROM readmodels.complaint_blocks_state s),
	blocks AS (
		SELECT {bkey} AS key, ` + complaintBlockColumns + `
		FROM readmodels.complaint_blocks b
		WHERE (SELECT built FROM built) AND b.dim = {dim} AND b.day >= {a}::date AND b.day < {b}::date
		UNION ALL
		SELECT {fkey}, ` + rollups.BlockArrays + `
		FROM readmodels.complaint_facts f
		WHERE (SELECT built FROM built) AND (f.filed_at >= $1::timestamptz AND f.filed_at < {ats}::timestamptz
			OR f.filed_at >= {bts}::timestamptz AND f.filed_at < $2::timestamptz)
		GROUP BY 1
		UNION ALL
		SELECT {fkey}, ` + rollups.BlockArrays + `
		FROM readmodels.complaint_facts f
		WHERE NOT (SELECT built FROM built) AND f.filed_at >= $1::timestamptz AND f.filed_at < $2::timestamptz
		GROUP BY 1)`

// complaintsRollup is the complaint report: its groups (every key, every
// group with complaints or active customers) with their active customers
// (from the spells, $3 the dimension), then its blocks, a row each, in
// the order of their keys. The blocks are not joined to their groups
// here: IS NOT DISTINCT FROM (a null key is a group) joins by nested loop,
// 6 of the 27 ms of a report by owner.
var complaintsRollup = `
	WITH keys AS ({keys}),
	` + strings.ReplaceAll(activeInPeriodRollup, "$5::text", "$3::text") + `,
	` + strings.NewReplacer("{dim}", "$3::text", "{a}", "$4", "{b}", "$5", "{ats}", "$6", "{bts}", "$7").Replace(complaintBlocks) + `
	SELECT g.key, coalesce(a.active, 0), NULL::int, NULL::bytea, NULL::bytea, NULL::bytea, NULL::bytea, NULL::bytea, NULL::bytea, NULL::bytea
	FROM (SELECT key FROM keys UNION SELECT key FROM blocks UNION SELECT key FROM active) g
	LEFT JOIN active a ON a.key IS NOT DISTINCT FROM g.key
	UNION ALL
	SELECT b.key, NULL, ` + complaintBlockColumns + ` FROM blocks b
	ORDER BY 1 NULLS LAST, 3 NULLS FIRST`

// complaintsMonthlyRollup is complaintsRollup by month (${m}…), each
// month's active customers counted over its own bounds. MATERIALIZED: the
// CTE is referenced once, and inlined the planner evaluated each month's
// subqueries once per block row joined to it (362 times for 13 months:
// 86 of the report's 87 ms).
var complaintsMonthlyRollup = `
	WITH keys AS (` + months + `),
	` + strings.NewReplacer("{dim}", "'all'", "{a}", "$3", "{b}", "$4", "{ats}", "$5", "{bts}", "$6",
	"{bkey}", `to_char(b.day, 'YYYY-MM')`, "{fkey}", `to_char(f.filed_at AT TIME ZONE 'UTC', 'YYYY-MM')`).Replace(complaintBlocks) + `,
	active AS MATERIALIZED (
		SELECT g.key, (SELECT coalesce(sum(d.starts), 0) FROM readmodels.spell_days d WHERE d.dim = 'all' AND d.day < (g.t AT TIME ZONE 'UTC')::date)
			- (SELECT coalesce(sum(d.ends), 0) FROM readmodels.spell_days d WHERE d.dim = 'all' AND d.day < (g.f AT TIME ZONE 'UTC')::date)
			+ (SELECT count(*) FROM readmodels.spell_facts s
				WHERE s.active_from >= date_trunc('day', g.t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AND s.active_from < g.t)
			- (SELECT count(*) FROM readmodels.spell_facts s
				WHERE s.active_until >= date_trunc('day', g.f AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AND s.active_until <= g.f)
			- (SELECT count(*) FROM readmodels.spell_facts s
				WHERE s.active_until = s.active_from AND s.active_from > g.f AND s.active_from < g.t)
			- (SELECT count(*) FROM readmodels.spell_facts s
				WHERE s.prev_until > g.f AND s.active_from < g.t AND (s.active_until IS NULL OR s.active_until > s.active_from)) AS active
		FROM keys g)
	SELECT g.key, g.active, ` + complaintBlockColumns + `
	FROM active g LEFT JOIN blocks b ON b.key = g.key
	ORDER BY g.key`

// complaintTally is what a group's blocks add up to.
type complaintTally struct {
	active, filed, resolved, breaches, frBreaches, resBreaches int64
	firstResponse, resolution                                  []float64
}

// noInstant is a missing instant in a block (the minimum int8).
const noInstant = math.MinInt64

// scanComplaintBlocks reads the rows of complaintsRollup into m.
func (q *Queries) scanComplaintBlocks(rows pgx.Rows, m *merger) error {
	defer rows.Close()
	// The targets by severity code (1 critical … 4 low; 0 names none,
	// whose breaches the documented SQL's join leaves NULL: no breach).
	var frTarget, resTarget [5]int64
	var known [5]bool
	targets := q.targetsJSON()
	for i, sev := range []string{"critical", "high", "medium", "low"} {
		if t, ok := targets[sev]; ok {
			frTarget[i+1], resTarget[i+1], known[i+1] = t[0]*1_000_000, t[1]*1_000_000, true
		}
	}
	now := q.now().UnixMicro()
	tallies := map[*Group]*complaintTally{}
	var order []*Group
	for rows.Next() {
		var (
			key    *string
			active *int64
			n      *int32
			// Packed big-endian columns (rollups.BlockArrays).
			severity, opened, firstAt, resolved, firstS, resolutionS, isResolved []byte
		)
		if err := rows.Scan(&key, &active, &n, &severity, &opened, &firstAt, &resolved, &firstS, &resolutionS, &isResolved); err != nil {
			return err
		}
		g := m.group(key)
		t := tallies[g]
		if t == nil {
			t = &complaintTally{}
			tallies[g] = t
			order = append(order, g)
		}
		if active != nil {
			t.active = *active
		}
		if n == nil {
			continue
		}
		count := int(*n)
		if len(severity) != 2*count || len(opened) != 8*count || len(firstAt) != 8*count || len(resolved) != 8*count ||
			len(firstS) != 8*count || len(resolutionS) != 8*count || len(isResolved) != count {
			return fmt.Errorf("analytics: a complaint block of %d facts has columns of %d, %d, %d, %d, %d, %d and %d bytes",
				count, len(severity), len(opened), len(firstAt), len(resolved), len(firstS), len(resolutionS), len(isResolved))
		}
		for i := range count {
			t.filed++
			if isResolved[i] != 0 {
				t.resolved++
				if r := float(resolutionS, i); !math.IsNaN(r) {
					t.resolution = append(t.resolution, r)
				}
			}
			if f := float(firstS, i); !math.IsNaN(f) {
				t.firstResponse = append(t.firstResponse, f)
			}
			code := int16(binary.BigEndian.Uint16(severity[2*i:]))
			if code < 0 || int(code) >= len(known) || !known[code] {
				continue
			}
			first, res, open := instant(firstAt, i), instant(resolved, i), instant(opened, i)
			if first == noInstant {
				first = now
			}
			if res == noInstant {
				res = now
			}
			frBreach, resBreach := first > open+frTarget[code], res > open+resTarget[code]
			if frBreach {
				t.frBreaches++
			}
			if resBreach {
				t.resBreaches++
			}
			if frBreach || resBreach {
				t.breaches++
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, g := range order {
		t := tallies[g]
		g.Filed, g.Resolved, g.ActiveInPeriod = t.filed, t.resolved, t.active
		g.SLABreaches, g.FirstResponseBreaches, g.ResolutionBreaches = t.breaches, t.frBreaches, t.resBreaches
		g.FirstResponseMedianS, g.ResolutionMedianS = percentileCont50(t.firstResponse), percentileCont50(t.resolution)
		g.ComplaintRate, g.ResolutionRate = percent(t.filed, t.active), percent(t.resolved, t.filed)
	}
	return nil
}

// instant is the i-th int8 of a packed column.
func instant(b []byte, i int) int64 { return int64(binary.BigEndian.Uint64(b[8*i:])) }

// float is the i-th float8 of a packed column.
func float(b []byte, i int) float64 { return math.Float64frombits(binary.BigEndian.Uint64(b[8*i:])) }

// percentileCont50 is PostgreSQL's percentile_cont(0.5) of v (which it
// reorders): the middle value, or between the two middle ones the first
// plus half their difference (float8_lerp), rounded as PostgreSQL rounds
// it. The explicit conversion keeps the compiler from fusing the
// multiplication and the addition (the Go spec allows it), which would
// round once where PostgreSQL rounds twice. The middle values are
// selected, not sorted into place: the rest of the order is not needed.
func percentileCont50(v []float64) *float64 {
	if len(v) == 0 {
		return nil
	}
	pos := 0.5 * float64(len(v)-1)
	lo := math.Floor(pos)
	k := int(lo)
	first := selectKth(v, k)
	if pos == lo {
		return &first
	}
	// After the selection every value right of k is at least v[k]: the
	// next value in order is their minimum.
	second := slices.Min(v[k+1:])
	r := first + float64((pos-lo)*(second-first))
	return &r
}

// selectKth reorders v so that v[k] is the value a sort would put there,
// the values before it not greater and those after it not smaller
// (Hoare's selection, median-of-three pivots), and returns it.
func selectKth(v []float64, k int) float64 {
	lo, hi := 0, len(v)-1
	for hi > lo {
		mid := lo + (hi-lo)/2
		// Median of three to v[mid], as the pivot.
		if v[mid] < v[lo] {
			v[mid], v[lo] = v[lo], v[mid]
		}
		if v[hi] < v[lo] {
			v[hi], v[lo] = v[lo], v[hi]
		}
		if v[hi] < v[mid] {
			v[hi], v[mid] = v[mid], v[hi]
		}
		pivot := v[mid]
		i, j := lo, hi
		for i <= j {
			for v[i] < pivot {
				i++
			}
			for v[j] > pivot {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return v[k]
		}
	}
	return v[k]
}
