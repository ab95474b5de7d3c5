package customers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Customer is a customer as the directory shows it (GET /v1/customers/{id}).
// Personal fields are nil once the customer's data was erased.
type Customer struct {
	ID       uuid.UUID
	Name     *string
	Email    *string
	Phone    *string
	Company  *string
	Tags     []string
	Segment  string
	Tier     string
	Region   string
	Industry string
	// Team maps each filled role to its member.
	Team           map[string]string
	Status         string
	RegisteredAt   time.Time
	LastContactAt  *time.Time
	OpenComplaints int
	LastCSAT       *int
	LastNPS        *int
	// Revision and Position are those of the last event applied: the
	// customer is shown as of that event.
	Revision uint64
	Position uint64
	// Risk holds what the churn-risk score is computed from at query time.
	Risk RiskInputs
}

// RiskInputs are the facts the churn-risk factors read (PRODUCT.md, Churn
// risk). The score is computed at query time from them, so it is never
// stale; new factors add fields here and columns in the table.
type RiskInputs struct {
	RegisteredAt      time.Time
	LastContactAt     *time.Time
	Complaints        []ComplaintInput
	LastCSAT          *int
	LastCSATAt        *time.Time
	PrevCSAT          *int
	LastNPS           *int
	FollowUpsPending  []FollowUpInput
	NextFollowUpDueAt *time.Time
}

// ComplaintInput is one complaint's state.
type ComplaintInput struct {
	ID             uuid.UUID  `json:"id"`
	Category       string     `json:"category"`
	Severity       string     `json:"severity"`
	Channel        string     `json:"channel,omitempty"`
	Status         string     `json:"status"`
	Assignee       string     `json:"assignee,omitempty"`
	FiledAt        time.Time  `json:"filed_at"`
	OpenedAt       time.Time  `json:"opened_at"`
	AcknowledgedAt *time.Time `json:"acknowledged_at,omitempty"`
	ResolvedAt     *time.Time `json:"resolved_at,omitempty"`
	Openings       int        `json:"openings"`
	Escalations    int        `json:"escalations"`
}

// Open reports whether the complaint awaits a resolution.
func (c ComplaintInput) Open() bool { return c.Status != "resolved" }

// FollowUpInput is a follow-up no contact has completed yet.
type FollowUpInput struct {
	ID          uuid.UUID `json:"id"`
	DueAt       time.Time `json:"due_at"`
	By          string    `json:"by"`
	ScheduledAt time.Time `json:"scheduled_at"`
}

// Filter narrows List. Empty fields do not filter.
type Filter struct {
	Segment string
	Tier    string
	Region  string
	// Owner is a team member in any role.
	Owner  string
	Status string
	// Q searches name, email and company (case-insensitive substring).
	Q string
}

// Page is one page of List.
type Page struct {
	Items []Customer
	// NextCursor continues the list; empty on the last page.
	NextCursor string
}

// ErrNotFound is returned by Get for a customer the read model lacks.
var ErrNotFound = errors.New("customers: customer not found")

// ErrBadCursor is returned by List for a cursor it did not make.
var ErrBadCursor = errors.New("customers: invalid cursor")

// Queries reads the directory through the readmodels.customers view, so
// it always sees the active generation.
type Queries struct {
	pool *pgxpool.Pool
}

// NewQueries returns queries on pool.
func NewQueries(pool *pgxpool.Pool) *Queries { return &Queries{pool: pool} }

const selectColumns = `id, name, email, phone, company, tags, segment, tier, region, industry,
	account_manager, support, sales, status, registered_at, last_contact_at, open_complaints,
	last_csat, last_csat_at, prev_csat, last_nps, next_follow_up_due_at, complaints, follow_ups, last_revision, last_position`

// Get returns one customer.
func (q *Queries) Get(ctx context.Context, id uuid.UUID) (Customer, error) {
	rows, err := q.pool.Query(ctx, `SELECT `+selectColumns+` FROM readmodels.customers WHERE id = $1`, id)
	if err != nil {
		return Customer{}, fmt.Errorf("customers: get: %w", err)
	}
	items, err := collect(rows)
	if err != nil {
		return Customer{}, err
	}
	if len(items) == 0 {
		return Customer{}, ErrNotFound
	}
	return items[0], nil
}

// MaxLimit bounds List's page size.
const MaxLimit = 500

// List returns customers matching f, oldest registration first, limit at
// a time (1..MaxLimit; 0 means 50). cursor is "" or a previous page's
// NextCursor: pagination is by key (registered_at, id), so pages stay
// consistent while customers are added.
func (q *Queries) List(ctx context.Context, f Filter, limit int, cursor string) (Page, error) {
	if limit == 0 {
		limit = 50
	}
	if limit < 1 || limit > MaxLimit {
		return Page{}, fmt.Errorf("customers: limit must be within 1..%d", MaxLimit)
	}
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Segment != "" {
		add("segment = ?", f.Segment)
	}
	if f.Tier != "" {
		add("tier = ?", f.Tier)
	}
	if f.Region != "" {
		add("region = ?", f.Region)
	}
	if f.Status != "" {
		add("status = ?", f.Status)
	}
	if f.Owner != "" {
		add("team_members @> ARRAY[?::text]", f.Owner)
	}
	if f.Q != "" {
		add(searchExpr+" LIKE ?", "%"+likeEscape(strings.ToLower(f.Q))+"%")
	}
	if cursor != "" {
		at, id, err := decodeCursor(cursor)
		if err != nil {
			return Page{}, err
		}
		args = append(args, at, id)
		where = append(where, fmt.Sprintf("(registered_at, id) > ($%d, $%d)", len(args)-1, len(args)))
	}
	sql := `SELECT ` + selectColumns + ` FROM readmodels.customers`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	sql += fmt.Sprintf(` ORDER BY registered_at, id LIMIT $%d`, len(args))
	rows, err := q.pool.Query(ctx, sql, args...)
	if err != nil {
		return Page{}, fmt.Errorf("customers: list: %w", err)
	}
	items, err := collect(rows)
	if err != nil {
		return Page{}, err
	}
	page := Page{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		last := page.Items[limit-1]
		page.NextCursor = encodeCursor(last.RegisteredAt, last.ID)
	}
	return page, nil
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func encodeCursor(at time.Time, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + "." + id.String()))
}

func decodeCursor(c string) (time.Time, uuid.UUID, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, uuid.Nil, ErrBadCursor
	}
	micros, idText, ok := strings.Cut(string(raw), ".")
	if !ok {
		return time.Time{}, uuid.Nil, ErrBadCursor
	}
	us, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return time.Time{}, uuid.Nil, ErrBadCursor
	}
	id, err := uuid.Parse(idText)
	if err != nil {
		return time.Time{}, uuid.Nil, ErrBadCursor
	}
	return time.UnixMicro(us).UTC(), id, nil
}

func collect(rows pgx.Rows) ([]Customer, error) {
	defer rows.Close()
	var out []Customer
	for rows.Next() {
		var (
			c                     Customer
			am, support, sales    *string
			registeredAt          *time.Time
			lastCSAT, prevCSAT    *int16
			lastNPS               *int16
			complaints, followUps []byte
			rev, pos              int64
			lastCSATAt, nextDueAt *time.Time
			lastContact           *time.Time
			openComplaints        int32
		)
		if err := rows.Scan(&c.ID, &c.Name, &c.Email, &c.Phone, &c.Company, &c.Tags, &c.Segment, &c.Tier, &c.Region, &c.Industry,
			&am, &support, &sales, &c.Status, &registeredAt, &lastContact, &openComplaints,
			&lastCSAT, &lastCSATAt, &prevCSAT, &lastNPS, &nextDueAt, &complaints, &followUps, &rev, &pos); err != nil {
			return nil, fmt.Errorf("customers: read: %w", err)
		}
		c.Team = map[string]string{}
		for role, m := range map[string]*string{"account_manager": am, "support": support, "sales": sales} {
			if m != nil {
				c.Team[role] = *m
			}
		}
		if registeredAt != nil {
			c.RegisteredAt = *registeredAt
		}
		c.LastContactAt, c.OpenComplaints = lastContact, int(openComplaints)
		c.LastCSAT, c.LastNPS = intPtr(lastCSAT), intPtr(lastNPS)
		c.Revision, c.Position = uint64(rev), uint64(pos)
		c.Risk = RiskInputs{RegisteredAt: c.RegisteredAt, LastContactAt: lastContact, LastCSAT: c.LastCSAT, LastCSATAt: lastCSATAt,
			PrevCSAT: intPtr(prevCSAT), LastNPS: c.LastNPS, NextFollowUpDueAt: nextDueAt}
		if err := json.Unmarshal(complaints, &c.Risk.Complaints); err != nil {
			return nil, fmt.Errorf("customers: complaints of %s: %w", c.ID, err)
		}
		if err := json.Unmarshal(followUps, &c.Risk.FollowUpsPending); err != nil {
			return nil, fmt.Errorf("customers: follow-ups of %s: %w", c.ID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("customers: read: %w", err)
	}
	return out, nil
}
