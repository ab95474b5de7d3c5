package rollups

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/complaints"
)

// Name is the projector's name; its tables are readmodels.rollup_customers,
// rollup_keys, survey_facts, survey_days, spell_facts, spell_days and
// complaint_facts.
const Name = "rollups"

// version of the tables and of the fold; bumping it rebuilds. 3: the
// contact and follow-up facts, which no report read (the contacts family
// judges cadence at query time over the documented tables), are gone.
// 4: the contact rollup (contacts.go): coverage, freshness and follow-up
// intervals by day, bursts of outbound contacts. 5: complaint facts carry
// their customer's group keys and their timings (complaints.go). 6: so do
// the spell, survey, contact-interval, burst and follow-up facts
// (factKeys).
const version = 6

// Dims are the dimensions the day tables are kept by: "all" (key "all")
// and the customer attributes a report may group by.
var Dims = []string{"all", "segment", "tier", "region", "owner"}

// Projector maintains the rollups. It implements projections.Projector
// and Indexer.
type Projector struct {
	// noRekey leaves the sums of a reclassified customer under its old
	// key: only tests set it, to see the agreement test fail without the
	// re-keying.
	noRekey bool
}

var (
	_ projections.Projector = Projector{}
	_ projections.Indexer   = Projector{}
)

// NewProjector returns the projector.
func NewProjector() Projector { return Projector{} }

// Name implements projections.Projector.
func (Projector) Name() string { return Name }

// Version implements projections.Projector.
func (Projector) Version() int { return version }

// Handles implements projections.Projector: the events that set a
// customer's group keys and the facts rolled up (surveys, life-cycle
// spells, complaints). Erasure is not among
// them: nothing here is personal, and an erasure changes no figure.
func (Projector) Handles() []string {
	return []string{domain.TypeCustomerRegistered, domain.TypeCustomerClassified, domain.TypeTeamMemberAssigned, domain.TypeSurveyRecorded,
		domain.TypeCustomerChurned, domain.TypeCustomerReactivated,
		domain.TypeComplaintFiled, domain.TypeComplaintAssigned, domain.TypeComplaintAcknowledged, domain.TypeComplaintEscalated,
		domain.TypeComplaintResolved, domain.TypeComplaintReopened,
		domain.TypeContactLogged, domain.TypeFollowUpScheduled}
}

// Setup implements projections.Projector. Keys of the day tables are
// NOT NULL text with "" for a null key (no segment, no account manager),
// so that one unique index and ON CONFLICT cover them.
func (Projector) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE rollup_customers (
			id              uuid PRIMARY KEY,
			segment         text NOT NULL DEFAULT '',
			tier            text NOT NULL DEFAULT '',
			region          text NOT NULL DEFAULT '',
			account_manager text
		);
		CREATE TABLE rollup_keys (
			dim       text   NOT NULL,
			key       text   NOT NULL,
			customers bigint NOT NULL,
			PRIMARY KEY (dim, key)
		);
		CREATE TABLE survey_facts (
			customer_id uuid        NOT NULL,
			survey_id   uuid        NOT NULL,
			answered_at timestamptz NOT NULL,
			csat        smallint,
			nps         smallint,
			`+keyColumns+`,
			PRIMARY KEY (customer_id, survey_id)
		);
		CREATE TABLE survey_days (
			dim        text   NOT NULL,
			key        text   NOT NULL,
			day        date   NOT NULL,
			responses  bigint NOT NULL,
			csat_n     bigint NOT NULL,
			csat_top   bigint NOT NULL,
			csat_sum   bigint NOT NULL,
			nps_n      bigint NOT NULL,
			promoters  bigint NOT NULL,
			detractors bigint NOT NULL,
			PRIMARY KEY (dim, key, day)
		);
		CREATE TABLE spell_facts (
			customer_id     uuid        NOT NULL,
			spell           integer     NOT NULL,
			active_from     timestamptz NOT NULL,
			active_until    timestamptz,
			prev_until      timestamptz,
			segment         text        NOT NULL DEFAULT '',
			tier            text        NOT NULL DEFAULT '',
			region          text        NOT NULL DEFAULT '',
			account_manager text,
			PRIMARY KEY (customer_id, spell)
		);
		CREATE TABLE complaint_facts (
			customer_id     uuid        NOT NULL,
			complaint_id    uuid        NOT NULL,
			severity        text        NOT NULL,
			status          text        NOT NULL,
			filed_at        timestamptz NOT NULL,
			opened_at       timestamptz NOT NULL,
			acknowledged_at timestamptz,
			resolved_at     timestamptz,
			openings        integer     NOT NULL,
			escalations     integer     NOT NULL,
			segment         text        NOT NULL DEFAULT '',
			tier            text        NOT NULL DEFAULT '',
			region          text        NOT NULL DEFAULT '',
			account_manager text,
			first_response_at timestamptz GENERATED ALWAYS AS (coalesce(acknowledged_at, resolved_at)) STORED,
			first_response_s  float8 GENERATED ALWAYS AS (extract(epoch FROM coalesce(acknowledged_at, resolved_at) - opened_at)::float8) STORED,
			resolution_s      float8 GENERATED ALWAYS AS (extract(epoch FROM resolved_at - opened_at)::float8) STORED,
			PRIMARY KEY (customer_id, complaint_id)
		);
		CREATE TABLE spell_days (
			dim    text   NOT NULL,
			key    text   NOT NULL,
			day    date   NOT NULL,
			starts bigint NOT NULL,
			ends   bigint NOT NULL,
			PRIMARY KEY (dim, key, day)
		);`)
	if err != nil {
		return err
	}
	if err := setupComplaintBlocks(ctx, tx); err != nil {
		return err
	}
	return setupContacts(ctx, tx)
}

// CreateIndexes implements projections.Indexer: the facts by answered_at
// for a period's partial days, and statistics for the planner.
func (Projector) CreateIndexes(ctx context.Context, tx pgx.Tx) error {
	for _, s := range append([]string{
		`CREATE INDEX IF NOT EXISTS survey_facts_answered_idx ON survey_facts (answered_at) INCLUDE (customer_id, csat, nps, ` + factKeys + `)`,
		`CREATE INDEX IF NOT EXISTS spell_facts_from_idx ON spell_facts (active_from) INCLUDE (customer_id, ` + factKeys + `)`,
		`CREATE INDEX IF NOT EXISTS spell_facts_until_idx ON spell_facts (active_until) INCLUDE (customer_id, active_from, ` + factKeys + `) WHERE active_until IS NOT NULL`,
		`CREATE INDEX IF NOT EXISTS spell_facts_empty_idx ON spell_facts (active_from) INCLUDE (customer_id, ` + factKeys + `) WHERE active_until = active_from`,
		`CREATE INDEX IF NOT EXISTS spell_facts_prev_idx ON spell_facts (prev_until) INCLUDE (customer_id, active_from, active_until, ` + factKeys + `) WHERE prev_until IS NOT NULL`,
		`CREATE INDEX IF NOT EXISTS complaint_facts_filed_idx ON complaint_facts (filed_at) INCLUDE (severity, status, opened_at, first_response_at,
			resolved_at, first_response_s, resolution_s, segment, tier, region, account_manager)`,
		`ANALYZE complaint_facts`, `ANALYZE complaint_blocks`,
		`ANALYZE rollup_customers`, `ANALYZE rollup_keys`, `ANALYZE survey_facts`, `ANALYZE survey_days`, `ANALYZE spell_facts`, `ANALYZE spell_days`,
	}, contactIndexes...) {
		if _, err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	// A generation that caught up with a log that has complaints builds
	// its complaint blocks now, before it serves readers (complaint_blocks.go).
	return buildBlocks(ctx, tx, false)
}

// keys are a customer's group keys, as the directory holds them: ""
// for none.
type keys struct{ segment, tier, region, owner string }

func (k keys) of(dim string) string {
	switch dim {
	case "segment":
		return k.segment
	case "tier":
		return k.tier
	case "region":
		return k.region
	case "owner":
		return k.owner
	}
	return "all"
}

// Apply implements projections.Projector. It folds the batch's
// classification events in memory over the customers' stored keys, then,
// in this order: moves the stored surveys of every customer whose keys
// changed to the new keys, writes the keys and the groups' customer
// counts, and adds the batch's surveys under each customer's keys at the
// end of the batch. Every survey thus counts under its customer's
// current keys, whatever the order of the events in the batch.
func (p Projector) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	var touched, ending []uuid.UUID
	seen, seenEnding := map[uuid.UUID]bool{}, map[uuid.UUID]bool{}
	var needComplaints []complaintKey
	filedHere, needed := map[complaintKey]bool{}, map[complaintKey]bool{}
	for i := range batch {
		if cid, ok := complaints.ComplaintOf(batch[i].Event); ok {
			id, err := batch[i].CustomerID()
			if err != nil {
				return err
			}
			k := complaintKey{id, cid}
			if _, filing := batch[i].Event.(domain.ComplaintFiled); filing {
				filedHere[k] = true
			} else if !filedHere[k] && !needed[k] {
				needed[k] = true
				needComplaints = append(needComplaints, k)
			}
			continue
		}
		switch batch[i].Event.(type) {
		case domain.CustomerClassified, domain.TeamMemberAssigned:
			id, err := batch[i].CustomerID()
			if err != nil {
				return err
			}
			if !seen[id] {
				seen[id] = true
				touched = append(touched, id)
			}
		case domain.CustomerChurned, domain.CustomerReactivated:
			id, err := batch[i].CustomerID()
			if err != nil {
				return err
			}
			if !seenEnding[id] {
				seenEnding[id] = true
				ending = append(ending, id)
			}
		}
	}
	stored, err := loadKeys(ctx, tx, touched)
	if err != nil {
		return err
	}
	spells, err := loadSpells(ctx, tx, ending)
	if err != nil {
		return err
	}
	cfold, err := loadComplaints(ctx, tx, needComplaints)
	if err != nil {
		return err
	}
	current := map[uuid.UUID]keys{}
	var order []uuid.UUID // customers whose keys the batch sets, first-seen order
	var surveys surveyRows
	contactsFold := newContactFold()
	for i := range batch {
		d := &batch[i]
		id, err := d.CustomerID()
		if err != nil {
			return err
		}
		if isLifecycle(d.Event) {
			spells.apply(id, d.Event)
		}
		if isContactEvent(d.Event) {
			contactsFold.note(id, d.Event)
		}
		if cid, ok := complaints.ComplaintOf(d.Event); ok {
			cfold.apply(id, cid, d.Event)
			continue
		}
		k, ok := current[id]
		if !ok {
			k = stored[id]
		}
		switch e := d.Event.(type) {
		case domain.CustomerRegistered:
			k = keys{segment: e.Segment, tier: e.Tier, region: e.Region}
		case domain.CustomerClassified:
			setIf(&k.segment, e.Segment)
			setIf(&k.tier, e.Tier)
			setIf(&k.region, e.Region)
		case domain.TeamMemberAssigned:
			if e.Role == domain.RoleAccountManager {
				k.owner = e.Member
			}
		case domain.SurveyRecorded:
			surveys.add(id, e)
			continue
		default:
			continue
		}
		if !ok {
			order = append(order, id)
		}
		current[id] = k
	}
	moved, err := p.writeKeys(ctx, tx, order, stored, current)
	if err != nil {
		return err
	}
	if len(surveys.customer) > 0 {
		if err := addSurveys(ctx, tx, &surveys); err != nil {
			return err
		}
	}
	if err := spells.write(ctx, tx); err != nil {
		return err
	}
	if err := contactsFold.write(ctx, tx, p.noRekey, stored, current); err != nil {
		return err
	}
	if err := cfold.write(ctx, tx); err != nil {
		return err
	}
	changed := slices.Clone(moved.id)
	for _, k := range cfold.order {
		changed = append(changed, k.customer)
	}
	return maintainBlocks(ctx, tx, len(batch), changed, moved)
}

func setIf(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

// loadKeys reads the stored keys of the customers ids.
func loadKeys(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]keys, error) {
	out := make(map[uuid.UUID]keys, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT id, segment, tier, region, coalesce(account_manager, '') FROM rollup_customers WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("rollups: load keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var k keys
		if err := rows.Scan(&id, &k.segment, &k.tier, &k.region, &k.owner); err != nil {
			return nil, fmt.Errorf("rollups: load keys: %w", err)
		}
		out[id] = k
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rollups: load keys: %w", err)
	}
	return out, nil
}

// groupKey is one group of one dimension.
type groupKey struct{ dim, key string }

// writeKeys stores the keys of the customers in order and re-keys what
// changed: the stored surveys of a customer that had keys move from the
// old ones to the new ones, and the groups' customer counts follow. It
// returns the re-keyed customers with their old keys (none without the
// re-keying).
func (p Projector) writeKeys(ctx context.Context, tx pgx.Tx, order []uuid.UUID, stored, current map[uuid.UUID]keys) (rekeyed, error) {
	if len(order) == 0 {
		return rekeyed{}, nil
	}
	counts := map[groupKey]int64{}
	var ids, moved []uuid.UUID
	var seg, tier, region, owner []string
	var mDim, mOld, mNew []string
	var mID []uuid.UUID
	for _, id := range order {
		k := current[id]
		old, had := stored[id]
		ids = append(ids, id)
		seg, tier, region, owner = append(seg, k.segment), append(tier, k.tier), append(region, k.region), append(owner, k.owner)
		for _, dim := range Dims {
			if !had {
				counts[groupKey{dim, k.of(dim)}]++
				continue
			}
			if old.of(dim) == k.of(dim) {
				continue
			}
			counts[groupKey{dim, old.of(dim)}]--
			counts[groupKey{dim, k.of(dim)}]++
			mID, mDim, mOld, mNew = append(mID, id), append(mDim, dim), append(mOld, old.of(dim)), append(mNew, k.of(dim))
		}
		if had && old != k {
			moved = append(moved, id)
		}
	}
	if len(mID) > 0 && !p.noRekey {
		if _, err := tx.Exec(ctx, `
			INSERT INTO survey_days AS d (dim, key, day, responses, csat_n, csat_top, csat_sum, nps_n, promoters, detractors)
			SELECT x.dim, x.key, (f.answered_at AT TIME ZONE 'UTC')::date, `+signedSums+`
			FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS m(id, dim, old, new)
			JOIN survey_facts f ON f.customer_id = m.id
			CROSS JOIN LATERAL (VALUES (m.dim, m.old, -1), (m.dim, m.new, 1)) AS x(dim, key, sign)
			GROUP BY 1, 2, 3
			`+addOnConflict, mID, mDim, mOld, mNew); err != nil {
			return rekeyed{}, fmt.Errorf("rollups: re-key %d customers' surveys: %w", len(moved), err)
		}
		if _, err := tx.Exec(ctx, moveSpells, mID, mDim, mOld, mNew); err != nil {
			return rekeyed{}, fmt.Errorf("rollups: re-key %d customers' spells: %w", len(moved), err)
		}
		if _, err := tx.Exec(ctx, pruneEmptyDays, mDim, mOld); err != nil {
			return rekeyed{}, fmt.Errorf("rollups: prune the emptied days of %d customers' old keys: %w", len(moved), err)
		}
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO rollup_customers AS c (id, segment, tier, region, account_manager)
		SELECT id, segment, tier, region, nullif(owner, '')
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) AS t(id, segment, tier, region, owner)
		ON CONFLICT (id) DO UPDATE SET segment = EXCLUDED.segment, tier = EXCLUDED.tier, region = EXCLUDED.region,
			account_manager = EXCLUDED.account_manager`, ids, seg, tier, region, owner); err != nil {
		return rekeyed{}, fmt.Errorf("rollups: write %d customers' keys: %w", len(ids), err)
	}
	if len(moved) > 0 && !p.noRekey {
		if err := rekeyComplaints(ctx, tx, moved); err != nil {
			return rekeyed{}, err
		}
		if err := rekeyFacts(ctx, tx, moved); err != nil {
			return rekeyed{}, err
		}
	}
	var dims, ks []string
	var ns []int64
	for g, n := range counts {
		if n != 0 {
			dims, ks, ns = append(dims, g.dim), append(ks, g.key), append(ns, n)
		}
	}
	if len(dims) > 0 {
		if _, err := tx.Exec(ctx, `
			INSERT INTO rollup_keys AS k (dim, key, customers)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
			ON CONFLICT (dim, key) DO UPDATE SET customers = k.customers + EXCLUDED.customers`, dims, ks, ns); err != nil {
			return rekeyed{}, fmt.Errorf("rollups: count the groups' customers: %w", err)
		}
	}
	if p.noRekey {
		return rekeyed{}, nil
	}
	return rekeyed{id: mID, dim: mDim, old: mOld}, nil
}

// pruneEmptyDays deletes the day rows that re-keying left at zero under
// the old keys (dim, key): a row of zeros means what no row means, and
// without the delete the tables would depend on how the log was batched
// (a rebuild that folds a customer's reclassification into the same batch
// as its facts never writes the zeros), so a rebuild would not equal the
// live tables row for row.
const pruneEmptyDays = `
	WITH old AS (SELECT DISTINCT dim, key FROM unnest($1::text[], $2::text[]) AS o(dim, key)),
	s AS (DELETE FROM survey_days d USING old o WHERE d.dim = o.dim AND d.key = o.key
		AND d.responses = 0 AND d.csat_n = 0 AND d.csat_top = 0 AND d.csat_sum = 0
		AND d.nps_n = 0 AND d.promoters = 0 AND d.detractors = 0)
	DELETE FROM spell_days d USING old o WHERE d.dim = o.dim AND d.key = o.key
		AND d.starts = 0 AND d.ends = 0`

// signedSums are the satisfaction sums of surveys f, each counted
// x.sign times (+1 added, -1 taken away).
const signedSums = `sum(x.sign),
	sum(CASE WHEN f.csat IS NOT NULL THEN x.sign ELSE 0 END),
	sum(CASE WHEN f.csat >= 4 THEN x.sign ELSE 0 END),
	sum(x.sign * coalesce(f.csat, 0)),
	sum(CASE WHEN f.nps IS NOT NULL THEN x.sign ELSE 0 END),
	sum(CASE WHEN f.nps >= 9 THEN x.sign ELSE 0 END),
	sum(CASE WHEN f.nps <= 6 THEN x.sign ELSE 0 END)`

// addOnConflict adds a row's sums to the day's existing ones.
const addOnConflict = `ON CONFLICT (dim, key, day) DO UPDATE SET
	responses = d.responses + EXCLUDED.responses, csat_n = d.csat_n + EXCLUDED.csat_n,
	csat_top = d.csat_top + EXCLUDED.csat_top, csat_sum = d.csat_sum + EXCLUDED.csat_sum,
	nps_n = d.nps_n + EXCLUDED.nps_n, promoters = d.promoters + EXCLUDED.promoters,
	detractors = d.detractors + EXCLUDED.detractors`

// surveyRows are a batch's surveys, by column.
type surveyRows struct {
	customer, survey []uuid.UUID
	answered         []time.Time
	csat, nps        []*int16
}

func (s *surveyRows) add(customer uuid.UUID, e domain.SurveyRecorded) {
	s.customer, s.survey, s.answered = append(s.customer, customer), append(s.survey, e.SurveyID), append(s.answered, e.OccurredAt)
	s.csat, s.nps = append(s.csat, score(e.CSAT)), append(s.nps, score(e.NPS))
}

func score(v *int) *int16 {
	if v == nil {
		return nil
	}
	n := int16(*v)
	return &n
}

// addSurveys records the batch's surveys and adds them to the day sums of
// every dimension under their customers' keys (written just before).
func addSurveys(ctx context.Context, tx pgx.Tx, s *surveyRows) error {
	if _, err := tx.Exec(ctx, `
		WITH f AS (
			INSERT INTO survey_facts (customer_id, survey_id, answered_at, csat, nps, `+factKeys+`)
			`+withKeys(`unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::smallint[], $5::smallint[]) AS t(customer_id, survey_id, answered_at, csat, nps)`)+`
			RETURNING *)
		INSERT INTO survey_days AS d (dim, key, day, responses, csat_n, csat_top, csat_sum, nps_n, promoters, detractors)
		SELECT x.dim, x.key, (f.answered_at AT TIME ZONE 'UTC')::date, `+signedSums+`
		FROM f LEFT JOIN rollup_customers c ON c.id = f.customer_id
		CROSS JOIN LATERAL (VALUES `+everyDim+`) AS x0(dim, key)
		CROSS JOIN LATERAL (SELECT x0.dim, x0.key, 1 AS sign) AS x
		GROUP BY 1, 2, 3
		`+addOnConflict, s.customer, s.survey, s.answered, s.csat, s.nps); err != nil {
		return fmt.Errorf("rollups: add %d surveys: %w", len(s.customer), err)
	}
	return nil
}
