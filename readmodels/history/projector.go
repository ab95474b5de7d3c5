package history

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/projections"
)

// Name is the projector's name; its table is readmodels.history.
const Name = "history"

// version of the tables and of the rendering; bumping it rebuilds.
const version = 1

// Projector builds the audit history. It keeps the profiles it wrote in
// memory (per generation, committed ones only, like the customer
// directory's rows), so that a batch need not read back and parse what
// the previous ones wrote: during a rebuild that read-back was a third of
// the history's statements.
type Projector struct {
	// The committed profiles of each generation; it implements
	// projections.Cache for the projector.
	*projections.GenerationCache[profile]
}

// cacheSize is how many customers' profiles a generation keeps.
const cacheSize = 100_000

var (
	_ projections.Projector  = (*Projector)(nil)
	_ projections.Reconciler = (*Projector)(nil)
	_ projections.Indexer    = (*Projector)(nil)
	_ projections.Cache      = (*Projector)(nil)
)

// NewProjector returns the audit history's projector.
func NewProjector() *Projector {
	return &Projector{GenerationCache: projections.NewGenerationCache[profile](cacheSize)}
}

// Name implements projections.Projector.
func (*Projector) Name() string { return Name }

// Version implements projections.Projector.
func (*Projector) Version() int { return version }

// Handles implements projections.Projector: every event is history.
func (*Projector) Handles() []string { return domain.NewRegistry().Types() }

// Setup implements projections.Projector.
func (*Projector) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE history (
			customer_id      uuid        NOT NULL,
			revision         bigint      NOT NULL,
			position         bigint      NOT NULL,
			event_id         uuid        NOT NULL,
			event_type       text        NOT NULL,
			recorded_at      timestamptz NOT NULL,
			occurred_at      timestamptz NOT NULL,
			actor            text        NOT NULL,
			correlation_id   text        NOT NULL,
			causation_id     uuid        NOT NULL,
			summary          text        NOT NULL,
			details          jsonb       NOT NULL,
			personal         jsonb,
			changes          jsonb,
			personal_changes jsonb,
			PRIMARY KEY (customer_id, revision)
		);
		-- What the fold needs to render "before": each customer's profile
		-- (personal) and classification as of the last event applied.
		CREATE TABLE history_profiles (
			customer_id    uuid    PRIMARY KEY,
			profile        jsonb,
			classification jsonb   NOT NULL,
			erased         boolean NOT NULL DEFAULT false,
			revision       bigint  NOT NULL
		);`)
	return err
}

// CreateIndexes implements projections.Indexer: filters by type and time
// within a customer's history.
func (*Projector) CreateIndexes(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `CREATE INDEX IF NOT EXISTS history_recorded_idx ON history (customer_id, recorded_at)`)
	return err
}

// AppliedRevisions implements projections.Reconciler.
func (*Projector) AppliedRevisions(ctx context.Context, tx pgx.Tx, visit func(stream string, revision uint64) error) error {
	return projections.VisitAppliedRevisions(ctx, tx, `SELECT customer_id, revision FROM history_profiles`, visit)
}

// profile is what history_profiles keeps per customer.
type profile struct {
	Profile        map[string]any    `json:"-"`
	Classification map[string]string `json:"-"`
	Erased         bool
	Revision       int64
	dirty          bool
}

// Apply implements projections.Projector: it renders the batch's events
// with the profiles of their customers, writes them with one COPY, and
// writes the profiles back with one statement.
func (p *Projector) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	ids := make([]uuid.UUID, len(batch))
	for i := range batch {
		id, err := batch[i].CustomerID()
		if err != nil {
			return fmt.Errorf("history: %w", err)
		}
		ids[i] = id
	}
	profiles, err := p.profiles(ctx, tx, uniq(ids))
	if err != nil {
		return err
	}
	rows := make([][]any, 0, len(batch))
	var erased []uuid.UUID
	for i := range batch {
		d := &batch[i]
		id := ids[i]
		p := profiles[id]
		if p == nil {
			p = &profile{Profile: map[string]any{}, Classification: map[string]string{}, Revision: -1}
			profiles[id] = p
		}
		e := render(d, p)
		p.Revision, p.dirty = int64(d.Record.Revision), true
		if _, ok := d.Event.(domain.CustomerDataErased); ok {
			p.Erased, p.Profile = true, nil
			erased = append(erased, id)
		}
		meta := d.Metadata
		rows = append(rows, []any{
			id, int64(d.Record.Revision), int64(d.Record.Position), d.Record.ID, d.Record.Type,
			meta.RecordedTime(d.Record.RecordedAt), meta.OccurredAt, meta.Actor, meta.CorrelationID, meta.CausationID,
			e.summary, e.details, e.personal, e.changes, e.personalChanges,
		})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"history"}, []string{
		"customer_id", "revision", "position", "event_id", "event_type", "recorded_at", "occurred_at",
		"actor", "correlation_id", "causation_id", "summary", "details", "personal", "changes", "personal_changes",
	}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("history: write rows: %w", err)
	}
	if len(erased) > 0 {
		// Erasure reaches back: every earlier row of the customer loses its
		// personal columns.
		if _, err := tx.Exec(ctx, `UPDATE history SET personal = NULL, personal_changes = NULL WHERE customer_id = ANY($1)`, erased); err != nil {
			return fmt.Errorf("history: erase: %w", err)
		}
	}
	if err := saveProfiles(ctx, tx, profiles); err != nil {
		return err
	}
	p.remember(ctx, profiles)
	return nil
}

// profiles returns the profiles of ids: copies of those cached, the rest
// read from the table.
func (p *Projector) profiles(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]*profile, error) {
	out := make(map[uuid.UUID]*profile, len(ids))
	missing := ids
	if c := p.For(projections.GenerationSchema(ctx)); c != nil {
		missing = make([]uuid.UUID, 0, len(ids))
		for _, id := range ids {
			if cached, ok := c.Get(id); ok {
				out[id] = cached.clone()
			} else {
				missing = append(missing, id)
			}
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	loaded, err := loadProfiles(ctx, tx, missing)
	if err != nil {
		return nil, err
	}
	for id, pr := range loaded {
		out[id] = pr
	}
	return out, nil
}

// clone copies a profile deeply enough for render to change the copy:
// render replaces the values of the maps, never changes them in place.
func (pr profile) clone() *profile {
	c := pr
	// An erased profile is nil here and an empty map when read from the
	// table: the copy is what the table would give.
	c.Profile = maps.Clone(pr.Profile)
	if c.Profile == nil {
		c.Profile = map[string]any{}
	}
	c.Classification = maps.Clone(pr.Classification)
	if c.Classification == nil {
		c.Classification = map[string]string{}
	}
	c.dirty = false
	return &c
}

// remember keeps the profiles an Apply wrote until its transaction ends.
func (p *Projector) remember(ctx context.Context, profiles map[uuid.UUID]*profile) {
	written := make(map[uuid.UUID]profile, len(profiles))
	for id, pr := range profiles {
		if pr.dirty {
			written[id] = *pr.clone()
		}
	}
	p.Stage(projections.GenerationSchema(ctx), written)
}

func uniq(ids []uuid.UUID) []uuid.UUID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(out)
}

func loadProfiles(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]*profile, error) {
	rows, err := tx.Query(ctx, `SELECT customer_id, profile, classification, erased, revision FROM history_profiles WHERE customer_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("history: load profiles: %w", err)
	}
	defer rows.Close()
	out := make(map[uuid.UUID]*profile, len(ids))
	for rows.Next() {
		var (
			id              uuid.UUID
			prof, classific []byte
			p               profile
		)
		if err := rows.Scan(&id, &prof, &classific, &p.Erased, &p.Revision); err != nil {
			return nil, err
		}
		p.Profile, p.Classification = map[string]any{}, map[string]string{}
		if prof != nil {
			if err := json.Unmarshal(prof, &p.Profile); err != nil {
				return nil, err
			}
		}
		if err := json.Unmarshal(classific, &p.Classification); err != nil {
			return nil, err
		}
		out[id] = &p
	}
	return out, rows.Err()
}

func saveProfiles(ctx context.Context, tx pgx.Tx, profiles map[uuid.UUID]*profile) error {
	var (
		ids             []uuid.UUID
		profs, classifs []string
		erased          []bool
		revisions       []int64
	)
	for id, p := range profiles {
		if !p.dirty {
			continue
		}
		var prof []byte
		if p.Profile != nil && !p.Erased {
			prof, _ = json.Marshal(p.Profile)
		}
		classif, _ := json.Marshal(p.Classification)
		ids, profs, classifs, erased, revisions = append(ids, id), append(profs, string(prof)), append(classifs, string(classif)), append(erased, p.Erased), append(revisions, p.Revision)
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO history_profiles (customer_id, profile, classification, erased, revision)
		SELECT id, nullif(prof, '')::jsonb, classif::jsonb, erased, rev
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bool[], $5::bigint[]) AS t(id, prof, classif, erased, rev)
		ON CONFLICT (customer_id) DO UPDATE SET profile = excluded.profile, classification = excluded.classification,
			erased = excluded.erased, revision = excluded.revision`,
		ids, profs, classifs, erased, revisions)
	if err != nil {
		return fmt.Errorf("history: save profiles: %w", err)
	}
	return nil
}

// rendered is one history row's content.
type rendered struct {
	summary                  string
	details                  []byte
	personal                 []byte // nil when none or erased
	changes, personalChanges []byte
}

// personalMark stands in for a personal value while the payload is split.
const personalMark = "\x00personal\x00"

// render splits the event's payload into its non-personal details and its
// personal fields (found through domain.PersonalFields, so no list of
// field names is kept here), computes the changes of profile and
// classification events against the customer's profile, and writes a
// summary without personal data.
func render(d *eventcodec.Decoded, p *profile) rendered {
	var r rendered
	// One JSON round trip of the event with each personal field replaced
	// by a numbered mark: a top-level value holding a mark is personal,
	// and putting the originals back gives its plain value. (This was two
	// round trips, of the plain event and of a masked copy; the history
	// renders every event of the log.)
	var originals []string
	masked, _ := domain.RewritePersonalFields(d.Event, func(s string) (string, error) {
		originals = append(originals, s)
		return personalMark + strconv.Itoa(len(originals)-1), nil
	})
	details, personal := map[string]any{}, map[string]any{}
	for k, v := range asMap(masked) {
		if isPersonal(v) {
			personal[k] = unmask(v, originals)
			continue
		}
		details[k] = v
	}
	delete(details, "occurred_at") // a column of its own
	r.details, _ = json.Marshal(details)
	if len(personal) > 0 && !d.Erased && !p.Erased {
		r.personal, _ = json.Marshal(personal)
	}
	r.summary = summary(d.Event)

	switch e := d.Event.(type) {
	case domain.CustomerRegistered:
		p.Profile = map[string]any{"name": e.Name, "email": e.Email, "phone": e.Phone, "company": e.Company, "tags": e.Tags}
		for k, v := range map[string]string{"segment": e.Segment, "tier": e.Tier, "region": e.Region, "industry": e.Industry} {
			if v != "" {
				p.Classification[k] = v
			}
		}
	case domain.CustomerProfileUpdated:
		changes := map[string]any{}
		set := func(field string, after any) {
			changes[field] = map[string]any{"before": p.Profile[field], "after": after}
			p.Profile[field] = after
		}
		if e.Name != nil {
			set("name", *e.Name)
		}
		if e.Email != nil {
			set("email", *e.Email)
		}
		if e.Phone != nil {
			set("phone", *e.Phone)
		}
		if e.Company != nil {
			set("company", *e.Company)
		}
		if e.Tags != nil {
			set("tags", *e.Tags)
		}
		if !d.Erased && !p.Erased {
			r.personalChanges, _ = json.Marshal(changes)
		}
	case domain.CustomerClassified:
		changes := map[string]any{}
		for field, after := range map[string]*string{"segment": e.Segment, "tier": e.Tier, "region": e.Region, "industry": e.Industry} {
			if after != nil {
				before, had := p.Classification[field]
				changes[field] = map[string]any{"before": nullIf(!had, before), "after": *after}
				p.Classification[field] = *after
			}
		}
		r.changes, _ = json.Marshal(changes)
	}
	return r
}

func nullIf(null bool, v string) any {
	if null {
		return nil
	}
	return v
}

func isPersonal(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.HasPrefix(v, personalMark)
	case []any:
		return len(v) > 0 && slices.ContainsFunc(v, isPersonal)
	}
	return false
}

// unmask puts the original values back in place of the marks in v.
func unmask(v any, originals []string) any {
	switch v := v.(type) {
	case string:
		if i, err := strconv.Atoi(strings.TrimPrefix(v, personalMark)); err == nil && strings.HasPrefix(v, personalMark) && i < len(originals) {
			return originals[i]
		}
		return v
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = unmask(e, originals)
		}
		return out
	}
	return v
}

func asMap(e domain.Event) map[string]any {
	raw, _ := domain.Marshal(e)
	m := map[string]any{}
	_ = json.Unmarshal(raw, &m)
	return m
}

// summary says what happened in one line, without personal data.
func summary(e domain.Event) string {
	switch e := e.(type) {
	case domain.CustomerRegistered:
		return fmt.Sprintf("Customer registered%s", classification(e.Segment, e.Tier, e.Region))
	case domain.CustomerProfileUpdated:
		var fields []string
		for name, set := range map[string]bool{"name": e.Name != nil, "email": e.Email != nil, "phone": e.Phone != nil, "company": e.Company != nil, "tags": e.Tags != nil} {
			if set {
				fields = append(fields, name)
			}
		}
		slices.Sort(fields)
		return "Profile updated: " + strings.Join(fields, ", ")
	case domain.CustomerClassified:
		var fields []string
		for name, v := range map[string]*string{"segment": e.Segment, "tier": e.Tier, "region": e.Region, "industry": e.Industry} {
			if v != nil {
				fields = append(fields, fmt.Sprintf("%s %s", name, *v))
			}
		}
		slices.Sort(fields)
		return "Classified: " + strings.Join(fields, ", ")
	case domain.TeamMemberAssigned:
		if e.PreviousMember != "" {
			return fmt.Sprintf("%s is now %s (was %s)", roleName(e.Role), e.Member, e.PreviousMember)
		}
		return fmt.Sprintf("%s is now %s", roleName(e.Role), e.Member)
	case domain.ContactLogged:
		return fmt.Sprintf("%s contact (%s) by %s", e.Channel, e.Direction, e.By)
	case domain.FollowUpScheduled:
		return fmt.Sprintf("Follow-up due %s scheduled by %s", e.DueAt.UTC().Format(time.DateOnly), e.By)
	case domain.ComplaintFiled:
		return fmt.Sprintf("Complaint filed: %s, %s severity", e.Category, e.Severity)
	case domain.ComplaintAssigned:
		return fmt.Sprintf("Complaint assigned to %s", e.Assignee)
	case domain.ComplaintAcknowledged:
		return fmt.Sprintf("Complaint acknowledged by %s", e.By)
	case domain.ComplaintEscalated:
		return fmt.Sprintf("Complaint escalated to %s", e.To)
	case domain.ComplaintResolved:
		return fmt.Sprintf("Complaint resolved by %s", e.By)
	case domain.ComplaintReopened:
		return "Complaint reopened"
	case domain.SurveyRecorded:
		var parts []string
		if e.CSAT != nil {
			parts = append(parts, fmt.Sprintf("CSAT %d", *e.CSAT))
		}
		if e.NPS != nil {
			parts = append(parts, fmt.Sprintf("NPS %d", *e.NPS))
		}
		return "Survey answered: " + strings.Join(parts, ", ")
	case domain.CustomerChurned:
		return "Customer churned"
	case domain.CustomerReactivated:
		return "Customer reactivated"
	case domain.CustomerDataErased:
		return fmt.Sprintf("Personal data erased (%s)", e.Reason)
	}
	return e.EventType()
}

func classification(segment, tier, region string) string {
	var parts []string
	for _, kv := range [][2]string{{"segment", segment}, {"tier", tier}, {"region", region}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func roleName(r domain.Role) string {
	return strings.ReplaceAll(string(r), "_", " ")
}
