package customers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

// complaintJSON is one complaint in the complaints column: what the
// figures and the churn-risk factors need, without the (personal)
// description.
type complaintJSON struct {
	ID             uuid.UUID              `json:"id"`
	Category       string                 `json:"category"`
	Severity       domain.Severity        `json:"severity"`
	Channel        domain.Channel         `json:"channel,omitempty"`
	Status         domain.ComplaintStatus `json:"status"`
	Assignee       string                 `json:"assignee,omitempty"`
	FiledAt        time.Time              `json:"filed_at"`
	OpenedAt       time.Time              `json:"opened_at"`
	AcknowledgedAt *time.Time             `json:"acknowledged_at,omitempty"`
	ResolvedAt     *time.Time             `json:"resolved_at,omitempty"`
	Openings       int                    `json:"openings"`
	Escalations    int                    `json:"escalations"`
}

// followUpJSON is one pending follow-up in the follow_ups column. Done
// follow-ups are dropped: nothing changes them any more.
type followUpJSON struct {
	ID          uuid.UUID `json:"id"`
	DueAt       time.Time `json:"due_at"`
	By          string    `json:"by"`
	ScheduledAt time.Time `json:"scheduled_at"`
}

const columns = `id, name, email, phone, company, tags, segment, tier, region, industry,
	account_manager, support, sales, status, personal_data_erased, registered_at, last_contact_at, churned_at, erased_at,
	surveys, last_csat, last_csat_at, prev_csat, prev_csat_at, last_nps, last_nps_at,
	complaints, follow_ups, last_revision, last_position, updated_at`

func load(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]*row, error) {
	out := make(map[uuid.UUID]*row, len(ids))
	keys := make([][16]byte, len(ids))
	for i, id := range ids {
		keys[i] = id
	}
	rows, err := tx.Query(ctx, `SELECT `+columns+` FROM customers WHERE id = ANY($1)`, keys)
	if err != nil {
		return nil, fmt.Errorf("customers: load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r                                    row
			c                                    = &r.state
			name, email, phone, company          *string
			am, support, sales                   *string
			status                               string
			registeredAt, lastContact, churnedAt *time.Time
			erasedAt                             *time.Time
			lastCSAT, prevCSAT, lastNPS          *int16
			lastCSATAt, prevCSATAt, lastNPSAt    *time.Time
			complaints, followUps                []byte
		)
		if err := rows.Scan(&c.ID, &name, &email, &phone, &company, &c.Tags, &c.Segment, &c.Tier, &c.Region, &c.Industry,
			&am, &support, &sales, &status, &r.erased, &registeredAt, &lastContact, &churnedAt, &erasedAt,
			&c.Surveys.Count, &lastCSAT, &lastCSATAt, &prevCSAT, &prevCSATAt, &lastNPS, &lastNPSAt,
			&complaints, &followUps, &r.lastRevision, &r.lastPosition, &r.updatedAt); err != nil {
			return nil, fmt.Errorf("customers: load: %w", err)
		}
		c.Registered = true
		c.Status = domain.CustomerStatus(status)
		c.Name, c.Email, c.Phone, c.Company = readmodel.Deref(name), readmodel.Deref(email), readmodel.Deref(phone), readmodel.Deref(company)
		if len(c.Tags) == 0 {
			c.Tags = nil
		}
		for role, m := range map[domain.Role]*string{domain.RoleAccountManager: am, domain.RoleSupport: support, domain.RoleSales: sales} {
			if m != nil {
				if c.Team == nil {
					c.Team = map[domain.Role]string{}
				}
				c.Team[role] = *m
			}
		}
		c.RegisteredAt, c.LastContactAt, c.ChurnedAt, c.ErasedAt = derefTime(registeredAt), derefTime(lastContact), derefTime(churnedAt), derefTime(erasedAt)
		c.Surveys.LastCSAT, c.Surveys.LastCSATAt = readmodel.Int(lastCSAT), derefTime(lastCSATAt)
		c.Surveys.PrevCSAT, c.Surveys.PrevCSATAt = readmodel.Int(prevCSAT), derefTime(prevCSATAt)
		c.Surveys.LastNPS, c.Surveys.LastNPSAt = readmodel.Int(lastNPS), derefTime(lastNPSAt)
		var cs []complaintJSON
		if err := json.Unmarshal(complaints, &cs); err != nil {
			return nil, fmt.Errorf("customers: complaints of %s: %w", c.ID, err)
		}
		for _, j := range cs {
			c.Complaints = append(c.Complaints, domain.Complaint{
				ID: j.ID, Category: j.Category, Severity: j.Severity, Channel: j.Channel, Status: j.Status, Assignee: j.Assignee,
				FiledAt: j.FiledAt, OpenedAt: j.OpenedAt, Acknowledged: j.AcknowledgedAt != nil, AcknowledgedAt: derefTime(j.AcknowledgedAt),
				ResolvedAt: derefTime(j.ResolvedAt), Openings: j.Openings, Escalations: j.Escalations,
			})
		}
		var fs []followUpJSON
		if err := json.Unmarshal(followUps, &fs); err != nil {
			return nil, fmt.Errorf("customers: follow-ups of %s: %w", c.ID, err)
		}
		for _, j := range fs {
			c.FollowUps = append(c.FollowUps, domain.FollowUp{ID: j.ID, DueAt: j.DueAt, By: j.By, ScheduledAt: j.ScheduledAt})
		}
		out[c.ID] = &r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("customers: load: %w", err)
	}
	return out, nil
}

// copyThreshold is the number of changed rows from which write goes
// through COPY: a few statements more, but cheaper per row for Postgres.
const copyThreshold = 256

// write upserts the changed rows: small batches (live traffic) with one
// statement of unnest arrays, large ones (catch-up, rebuilds) with COPY
// into a staging table and one INSERT from it.
func (p *Projector) write(ctx context.Context, tx pgx.Tx, ids []uuid.UUID, rows map[uuid.UUID]*row) error {
	n := 0
	for _, id := range ids {
		if rows[id].dirty {
			n++
		}
	}
	if n >= copyThreshold && projections.GenerationSchema(ctx) != "" {
		return p.writeCopy(ctx, tx, ids, rows)
	}
	return writeUnnest(ctx, tx, ids, rows)
}

// writeUnnest upserts the changed rows with one statement of unnest
// arrays. Every array is of a type pgx encodes without reflection; NULLs
// travel as sentinels (empty member, zero time, -1 score) that the
// statement turns back into NULL.
func writeUnnest(ctx context.Context, tx pgx.Tx, ids []uuid.UUID, rows map[uuid.UUID]*row) error {
	n := 0
	for _, id := range ids {
		if rows[id].dirty {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	var (
		cid                                                 = make([][16]byte, 0, n)
		name, email, phone, company, tags                   = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		segment, tier, region, industry                     = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		am, support, sales                                  = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		members, status                                     = make([]string, 0, n), make([]string, 0, n)
		erased                                              = make([]bool, 0, n)
		registeredAt, lastContact, churnedAt, erasedAt      = make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n)
		openComplaints, complaintsTotal, surveys, followUps = make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n)
		lastCSAT, prevCSAT, lastNPS                         = make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n)
		lastCSATAt, prevCSATAt, lastNPSAt, nextDue          = make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n), make([]time.Time, 0, n)
		complaintsJSON, followUpsJSON                       = make([]string, 0, n), make([]string, 0, n)
		lastRevision, lastPosition                          = make([]int64, 0, n), make([]int64, 0, n)
		updatedAt                                           = make([]time.Time, 0, n)
	)
	var buf strings.Builder
	var jsonBuf []byte
	for _, id := range ids {
		r := rows[id]
		if !r.dirty {
			continue
		}
		c := &r.state
		cid = append(cid, id)
		if r.erased {
			name, email, phone, company, tags = append(name, ""), append(email, ""), append(phone, ""), append(company, ""), append(tags, "{}")
		} else {
			name, email, phone, company = append(name, c.Name), append(email, c.Email), append(phone, c.Phone), append(company, c.Company)
			tags = append(tags, textArray(&buf, c.Tags))
		}
		segment, tier, region, industry = append(segment, c.Segment), append(tier, c.Tier), append(region, c.Region), append(industry, c.Industry)
		var team []string
		teamOf := func(role domain.Role) string {
			m := c.Team[role]
			if m != "" {
				team = append(team, m)
			}
			return m
		}
		am, support, sales = append(am, teamOf(domain.RoleAccountManager)), append(support, teamOf(domain.RoleSupport)), append(sales, teamOf(domain.RoleSales))
		members = append(members, textArray(&buf, team))
		status = append(status, string(c.Status))
		erased = append(erased, r.erased)
		registeredAt, lastContact = append(registeredAt, c.RegisteredAt), append(lastContact, c.LastContactAt)
		churnedAt, erasedAt = append(churnedAt, c.ChurnedAt), append(erasedAt, c.ErasedAt)
		openComplaints = append(openComplaints, int32(c.OpenComplaints()))
		complaintsTotal = append(complaintsTotal, int32(len(c.Complaints)))
		surveys = append(surveys, int32(c.Surveys.Count))
		lastCSAT, lastCSATAt = append(lastCSAT, score(c.Surveys.LastCSAT)), append(lastCSATAt, c.Surveys.LastCSATAt)
		prevCSAT, prevCSATAt = append(prevCSAT, score(c.Surveys.PrevCSAT)), append(prevCSATAt, c.Surveys.PrevCSATAt)
		lastNPS, lastNPSAt = append(lastNPS, score(c.Surveys.LastNPS)), append(lastNPSAt, c.Surveys.LastNPSAt)
		cj, pending, due, jb := encodeRiskInputs(c, jsonBuf)
		jsonBuf = jb
		complaintsJSON, followUpsJSON = append(complaintsJSON, cj), append(followUpsJSON, pending)
		followUps, nextDue = append(followUps, int32(countPending(c))), append(nextDue, due)
		lastRevision, lastPosition, updatedAt = append(lastRevision, r.lastRevision), append(lastPosition, r.lastPosition), append(updatedAt, r.updatedAt)
	}
	// risk_key = NULL: the row's facts change, so the cached churn-risk
	// score the at-risk queue keeps beside them (package work) is void
	// until it is scored again; a new row has none.
	_, err := tx.Exec(ctx, `
		INSERT INTO customers (id, name, email, phone, company, tags, segment, tier, region, industry,
			account_manager, support, sales, team_members, status, personal_data_erased,
			registered_at, last_contact_at, churned_at, erased_at,
			open_complaints, complaints_total, surveys, last_csat, last_csat_at, prev_csat, prev_csat_at, last_nps, last_nps_at,
			follow_ups_pending, next_follow_up_due_at, complaints, follow_ups, last_revision, last_position, updated_at)
		SELECT id,
			CASE WHEN erased THEN NULL ELSE name END, CASE WHEN erased THEN NULL ELSE email END,
			CASE WHEN erased THEN NULL ELSE phone END, CASE WHEN erased THEN NULL ELSE company END,
			CASE WHEN erased THEN NULL ELSE tags::text[] END, segment, tier, region, industry,
			nullif(am, ''), nullif(support, ''), nullif(sales, ''), members::text[], status, erased,
			nullif(registered_at, '0001-01-01 00:00:00+00'), nullif(last_contact_at, '0001-01-01 00:00:00+00'), nullif(churned_at, '0001-01-01 00:00:00+00'), nullif(erased_at, '0001-01-01 00:00:00+00'),
			open_complaints, complaints_total, surveys,
			nullif(last_csat, -1), nullif(last_csat_at, '0001-01-01 00:00:00+00'), nullif(prev_csat, -1), nullif(prev_csat_at, '0001-01-01 00:00:00+00'),
			nullif(last_nps, -1), nullif(last_nps_at, '0001-01-01 00:00:00+00'),
			follow_ups_pending, nullif(next_due, '0001-01-01 00:00:00+00'), complaints::jsonb, follow_ups::jsonb, last_revision, last_position, updated_at
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
			$11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::boolean[],
			$17::timestamptz[], $18::timestamptz[], $19::timestamptz[], $20::timestamptz[],
			$21::int[], $22::int[], $23::int[], $24::int[], $25::timestamptz[], $26::int[], $27::timestamptz[], $28::int[], $29::timestamptz[],
			$30::int[], $31::timestamptz[], $32::text[], $33::text[], $34::bigint[], $35::bigint[], $36::timestamptz[])
			AS t(id, name, email, phone, company, tags, segment, tier, region, industry,
			am, support, sales, members, status, erased,
			registered_at, last_contact_at, churned_at, erased_at,
			open_complaints, complaints_total, surveys, last_csat, last_csat_at, prev_csat, prev_csat_at, last_nps, last_nps_at,
			follow_ups_pending, next_due, complaints, follow_ups, last_revision, last_position, updated_at)
		ON CONFLICT (id) DO UPDATE SET
			name = EXCLUDED.name, email = EXCLUDED.email, phone = EXCLUDED.phone, company = EXCLUDED.company, tags = EXCLUDED.tags,
			segment = EXCLUDED.segment, tier = EXCLUDED.tier, region = EXCLUDED.region, industry = EXCLUDED.industry,
			account_manager = EXCLUDED.account_manager, support = EXCLUDED.support, sales = EXCLUDED.sales,
			team_members = EXCLUDED.team_members, status = EXCLUDED.status, personal_data_erased = EXCLUDED.personal_data_erased,
			registered_at = EXCLUDED.registered_at, last_contact_at = EXCLUDED.last_contact_at,
			churned_at = EXCLUDED.churned_at, erased_at = EXCLUDED.erased_at,
			open_complaints = EXCLUDED.open_complaints, complaints_total = EXCLUDED.complaints_total, surveys = EXCLUDED.surveys,
			last_csat = EXCLUDED.last_csat, last_csat_at = EXCLUDED.last_csat_at, prev_csat = EXCLUDED.prev_csat,
			prev_csat_at = EXCLUDED.prev_csat_at, last_nps = EXCLUDED.last_nps, last_nps_at = EXCLUDED.last_nps_at,
			follow_ups_pending = EXCLUDED.follow_ups_pending, next_follow_up_due_at = EXCLUDED.next_follow_up_due_at,
			complaints = EXCLUDED.complaints, follow_ups = EXCLUDED.follow_ups,
			last_revision = EXCLUDED.last_revision, last_position = EXCLUDED.last_position, updated_at = EXCLUDED.updated_at,
			risk_key = NULL`,
		cid, name, email, phone, company, tags, segment, tier, region, industry,
		am, support, sales, members, status, erased,
		registeredAt, lastContact, churnedAt, erasedAt,
		openComplaints, complaintsTotal, surveys, lastCSAT, lastCSATAt, prevCSAT, prevCSATAt, lastNPS, lastNPSAt,
		followUps, nextDue, complaintsJSON, followUpsJSON, lastRevision, lastPosition, updatedAt)
	if err != nil {
		return fmt.Errorf("customers: write %d rows: %w", n, err)
	}
	return nil
}

// score is a survey score for write, -1 for none.
func score(v *int) int32 {
	if v == nil {
		return -1
	}
	return int32(*v)
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// copyColumns are the table's columns in the order writeCopy sends them.
var copyColumns = []string{"id", "name", "email", "phone", "company", "tags", "segment", "tier", "region", "industry",
	"account_manager", "support", "sales", "team_members", "status", "personal_data_erased",
	"registered_at", "last_contact_at", "churned_at", "erased_at",
	"open_complaints", "complaints_total", "surveys", "last_csat", "last_csat_at", "prev_csat", "prev_csat_at", "last_nps", "last_nps_at",
	"follow_ups_pending", "next_follow_up_due_at", "complaints", "follow_ups", "last_revision", "last_position", "updated_at"}

// rowSource feeds the changed rows to COPY, one reused slice per row.
type rowSource struct {
	rows    []*row
	i       int
	vals    []any
	jsonBuf []byte
}

func (s *rowSource) Next() bool { s.i++; return s.i <= len(s.rows) }

func (s *rowSource) Err() error { return nil }

func (s *rowSource) Values() ([]any, error) {
	r := s.rows[s.i-1]
	c := &r.state
	v := s.vals[:0]
	v = append(v, [16]byte(c.ID))
	if r.erased {
		v = append(v, nil, nil, nil, nil, nil)
	} else {
		v = append(v, c.Name, c.Email, c.Phone, c.Company, tagsValue(c.Tags))
	}
	v = append(v, c.Segment, c.Tier, c.Region, c.Industry)
	team := make([]string, 0, 3)
	for _, role := range []domain.Role{domain.RoleAccountManager, domain.RoleSupport, domain.RoleSales} {
		if m := c.Team[role]; m != "" {
			v = append(v, m)
			team = append(team, m)
		} else {
			v = append(v, nil)
		}
	}
	v = append(v, team, string(c.Status), r.erased,
		readmodel.NullTime(c.RegisteredAt), readmodel.NullTime(c.LastContactAt), readmodel.NullTime(c.ChurnedAt), readmodel.NullTime(c.ErasedAt),
		int32(c.OpenComplaints()), int32(len(c.Complaints)), int32(c.Surveys.Count),
		readmodel.SmallInt(c.Surveys.LastCSAT), readmodel.NullTime(c.Surveys.LastCSATAt), readmodel.SmallInt(c.Surveys.PrevCSAT), readmodel.NullTime(c.Surveys.PrevCSATAt),
		readmodel.SmallInt(c.Surveys.LastNPS), readmodel.NullTime(c.Surveys.LastNPSAt))
	cj, fj, due, jb := encodeRiskInputs(c, s.jsonBuf)
	s.jsonBuf = jb
	v = append(v, int32(countPending(c)), readmodel.NullTime(due), cj, fj, r.lastRevision, r.lastPosition, r.updatedAt)
	s.vals = v
	return v, nil
}

func tagsValue(tags []string) []string {
	if tags == nil {
		return []string{}
	}
	return tags
}

// writeCopy writes the changed rows through a temporary staging table of
// the locked connection (one per generation, emptied at each commit):
// COPY into it, then one INSERT … ON CONFLICT from it.
func (p *Projector) writeCopy(ctx context.Context, tx pgx.Tx, ids []uuid.UUID, rows map[uuid.UUID]*row) error {
	var dirty []*row
	for _, id := range ids {
		if r := rows[id]; r.dirty {
			r.state.ID = id
			dirty = append(dirty, r)
		}
	}
	if len(dirty) == 0 {
		return nil
	}
	stage := "stage_" + projections.GenerationSchema(ctx)
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS `+pgx.Identifier{stage}.Sanitize()+` (LIKE customers) ON COMMIT DELETE ROWS`); err != nil {
		return err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{stage}, copyColumns, &rowSource{rows: dirty}); err != nil {
		return fmt.Errorf("customers: copy %d rows: %w", len(dirty), err)
	}
	set := make([]string, 0, len(copyColumns)-1)
	for _, c := range copyColumns[1:] {
		set = append(set, c+" = EXCLUDED."+c)
	}
	// risk_key = NULL voids the cached churn-risk score, as in writeUnnest.
	_, err := tx.Exec(ctx, `INSERT INTO customers (`+strings.Join(copyColumns, ", ")+`) SELECT `+strings.Join(copyColumns, ", ")+` FROM `+
		pgx.Identifier{stage}.Sanitize()+` ON CONFLICT (id) DO UPDATE SET `+strings.Join(set, ", ")+`, risk_key = NULL`)
	if err != nil {
		return fmt.Errorf("customers: write %d rows: %w", len(dirty), err)
	}
	return nil
}
