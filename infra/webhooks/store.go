package webhooks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Subscription states.
const (
	StateActive   = "active"
	StateFailing  = "failing"
	StateDisabled = "disabled"
)

// Subscription is a webhook subscription as the admin API shows it; the
// secret is never part of it.
type Subscription struct {
	ID          uuid.UUID `json:"id"`
	URL         string    `json:"url"`
	EventTypes  []string  `json:"event_types"`
	Description string    `json:"description"`
	State       string    `json:"state"`
	// FailingSince and FailingReason say since when and why deliveries
	// are held (state failing).
	FailingSince  *time.Time `json:"failing_since"`
	FailingReason *string    `json:"failing_reason"`
	// Checkpoint is the feed position up to which deliveries are queued.
	Checkpoint uint64    `json:"checkpoint"`
	CreatedAt  time.Time `json:"created_at"`
}

// ErrNotFound is the answer for a subscription that does not exist.
var ErrNotFound = errors.New("webhooks: no such subscription")

// Store keeps subscriptions, deliveries and attempts in PostgreSQL.
type Store struct {
	pool    *pgxpool.Pool
	sealer  *Sealer
	targets Targets
	// knownTypes are the integration types a subscription may name.
	knownTypes []string
	// SecretGrace is how long a rotated-out secret keeps signing.
	secretGrace time.Duration
}

// NewStore returns the store; knownTypes are the integration event types
// subscriptions may ask for.
func NewStore(pool *pgxpool.Pool, sealer *Sealer, targets Targets, knownTypes []string) *Store {
	return &Store{pool: pool, sealer: sealer, targets: targets, knownTypes: knownTypes, secretGrace: 24 * time.Hour}
}

// InvalidError names the field of a subscription request that is wrong.
type InvalidError struct {
	Field   string
	Message string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("webhooks: %s %s", e.Field, e.Message) }

// NewSubscription is what a subscriber gives.
type NewSubscription struct {
	URL         string
	EventTypes  []string
	Description string
}

// Created is a subscription just created or whose secret was rotated,
// with the secret: the only time it is shown.
type Created struct {
	Subscription
	Secret string `json:"secret"`
}

func (s *Store) validate(ctx context.Context, n NewSubscription) error {
	if len(n.URL) > 2048 {
		return &InvalidError{"url", "is longer than 2048 characters"}
	}
	if err := s.targets.CheckURL(ctx, n.URL); err != nil {
		return &InvalidError{"url", err.Error()}
	}
	for _, t := range n.EventTypes {
		if !slices.Contains(s.knownTypes, t) {
			return &InvalidError{"event_types", fmt.Sprintf("names the unknown integration event type %q", t)}
		}
	}
	if len(n.Description) > 500 {
		return &InvalidError{"description", "is longer than 500 characters"}
	}
	return nil
}

// Create stores a new subscription and returns it with its secret. It
// starts at the feed's current head (from), so it receives what happens
// from now on; a replay delivers earlier events.
func (s *Store) Create(ctx context.Context, n NewSubscription, from uint64) (Created, error) {
	if err := s.validate(ctx, n); err != nil {
		return Created{}, err
	}
	secret, err := NewSecret()
	if err != nil {
		return Created{}, err
	}
	types := slices.Clone(n.EventTypes)
	if types == nil {
		types = []string{}
	}
	slices.Sort(types)
	types = slices.Compact(types)
	id := uuid.New()
	var sub Subscription
	row := s.pool.QueryRow(ctx, `
		INSERT INTO rapport.webhook_subscriptions (id, url, event_types, description, secret_sealed, checkpoint)
		VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING `+subscriptionColumns, id, n.URL, types, n.Description, s.sealer.Seal(id, secret), int64(from))
	if sub, err = scanSubscription(row); err != nil {
		return Created{}, fmt.Errorf("webhooks: create: %w", err)
	}
	return Created{Subscription: sub, Secret: secret}, nil
}

const subscriptionColumns = `id, url, event_types, description, state, failing_since, failing_reason, checkpoint, created_at`

func scanSubscription(row pgx.Row) (Subscription, error) {
	var (
		sub Subscription
		cp  int64
	)
	err := row.Scan(&sub.ID, &sub.URL, &sub.EventTypes, &sub.Description, &sub.State, &sub.FailingSince, &sub.FailingReason, &cp, &sub.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return sub, ErrNotFound
	}
	sub.Checkpoint = uint64(cp)
	sub.CreatedAt = sub.CreatedAt.UTC()
	return sub, err
}

// Get returns one subscription.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (Subscription, error) {
	return scanSubscription(s.pool.QueryRow(ctx, `SELECT `+subscriptionColumns+` FROM rapport.webhook_subscriptions WHERE id = $1`, id))
}

// List returns every subscription, oldest first.
func (s *Store) List(ctx context.Context) ([]Subscription, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+subscriptionColumns+` FROM rapport.webhook_subscriptions ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("webhooks: list: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Subscription, error) { return scanSubscription(r) })
}

// Delete removes a subscription with its deliveries.
func (s *Store) Delete(ctx context.Context, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM rapport.webhook_subscriptions WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("webhooks: delete: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// RotateSecret gives the subscription a new secret, returned once. The
// previous one keeps signing beside it (two signatures in
// webhook-signature) for a grace period, so receivers can switch without
// refusing a delivery.
func (s *Store) RotateSecret(ctx context.Context, id uuid.UUID) (Created, error) {
	secret, err := NewSecret()
	if err != nil {
		return Created{}, err
	}
	row := s.pool.QueryRow(ctx, `
		UPDATE rapport.webhook_subscriptions
		SET previous_secret_sealed = secret_sealed, previous_expires_at = now() + $3 * interval '1 second',
		    secret_sealed = $2, updated_at = now()
		WHERE id = $1
		RETURNING `+subscriptionColumns, id, s.sealer.Seal(id, secret), s.secretGrace.Seconds())
	sub, err := scanSubscription(row)
	if err != nil {
		return Created{}, err
	}
	return Created{Subscription: sub, Secret: secret}, nil
}

// Enable makes a failing or disabled subscription active again. Its held
// deliveries go out at once, in order, and their retry clocks start
// afresh.
func (s *Store) Enable(ctx context.Context, id uuid.UUID) (Subscription, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Subscription{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	sub, err := scanSubscription(tx.QueryRow(ctx, `
		UPDATE rapport.webhook_subscriptions SET state = 'active', failing_since = NULL, failing_reason = NULL, updated_at = now()
		WHERE id = $1 RETURNING `+subscriptionColumns, id))
	if err != nil {
		return Subscription{}, err
	}
	if _, err := tx.Exec(ctx, `
		UPDATE rapport.webhook_deliveries SET next_attempt_at = now(), first_attempt_at = NULL
		WHERE subscription_id = $1 AND NOT delivered`, id); err != nil {
		return Subscription{}, err
	}
	return sub, tx.Commit(ctx)
}

// Disable holds a subscription's deliveries (they are still queued).
func (s *Store) Disable(ctx context.Context, id uuid.UUID) (Subscription, error) {
	return scanSubscription(s.pool.QueryRow(ctx, `
		UPDATE rapport.webhook_subscriptions SET state = 'disabled', updated_at = now()
		WHERE id = $1 RETURNING `+subscriptionColumns, id))
}

// Replay queues again, for one subscription, every feed event of its
// types after position and up to its checkpoint (the later ones come in
// their turn), and returns how many. A replayed delivery carries the
// event's own id in webhook-id, so a receiver can tell it from new work.
func (s *Store) Replay(ctx context.Context, id uuid.UUID, from uint64) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var (
		cp    int64
		types []string
	)
	// The row lock orders the replay with the deliverer's queueing.
	err = tx.QueryRow(ctx, `SELECT checkpoint, event_types FROM rapport.webhook_subscriptions WHERE id = $1 FOR UPDATE`, id).Scan(&cp, &types)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	if from > 1<<63-1 {
		return 0, &InvalidError{"from_position", "is beyond any position"}
	}
	n, err := enqueue(ctx, tx, id, types, int64(from), cp, true)
	if err != nil {
		return 0, err
	}
	return n, tx.Commit(ctx)
}

// enqueue inserts the deliveries of the feed events of types in (after,
// upTo] for the subscription.
func enqueue(ctx context.Context, tx pgx.Tx, id uuid.UUID, types []string, after, upTo int64, replay bool) (int64, error) {
	var filter []string
	if len(types) > 0 {
		filter = types
	}
	tag, err := tx.Exec(ctx, `
		INSERT INTO rapport.webhook_deliveries (subscription_id, position, customer_id, event_id, event_type, payload, replay)
		SELECT $1, position, customer_id, event_id, type,
		       jsonb_build_object('id', event_id, 'type', type, 'customer_id', customer_id, 'revision', revision,
		                          'position', position, 'occurred_at', occurred_at, 'recorded_at', recorded_at, 'data', data),
		       $5
		FROM readmodels.feed
		WHERE position > $2 AND position <= $3 AND ($4::text[] IS NULL OR type = ANY($4))
		ORDER BY position`, id, after, upTo, filter, replay)
	if err != nil {
		return 0, fmt.Errorf("webhooks: queue deliveries: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Delivery is one queued event of a subscription with its attempts: the
// delivery log.
type Delivery struct {
	ID            int64      `json:"id"`
	Position      uint64     `json:"position"`
	CustomerID    uuid.UUID  `json:"customer_id"`
	EventID       uuid.UUID  `json:"event_id"`
	EventType     string     `json:"event_type"`
	Replay        bool       `json:"replay"`
	State         string     `json:"state"` // pending or delivered
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	DeliveredAt   *time.Time `json:"delivered_at"`
	LastStatus    *int       `json:"last_status"`
	LastError     *string    `json:"last_error"`
	Log           []Attempt  `json:"log"`
}

// Attempt is one try of a delivery.
type Attempt struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	DurationMS int       `json:"duration_ms"`
	Status     *int      `json:"status"`
	Error      *string   `json:"error"`
}

// DeliveryFilter narrows the delivery log.
type DeliveryFilter struct {
	// State is "pending", "delivered" or "" for both.
	State string
	// Before returns deliveries older than this id (0: the newest).
	Before int64
	Limit  int
}

// Deliveries returns a subscription's deliveries, newest first, each with
// its last attempts (at most 10).
func (s *Store) Deliveries(ctx context.Context, id uuid.UUID, f DeliveryFilter) ([]Delivery, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	before := f.Before
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id, position, customer_id, event_id, event_type, replay, delivered, attempts,
		       CASE WHEN delivered THEN NULL ELSE next_attempt_at END, delivered_at, last_status, last_error,
		       coalesce((SELECT jsonb_agg(jsonb_build_object('attempt', a.attempt, 'at', a.at, 'duration_ms', a.duration_ms, 'status', a.status, 'error', a.error) ORDER BY a.attempt)
		                 FROM (SELECT * FROM rapport.webhook_attempts WHERE delivery_id = d.id ORDER BY attempt DESC LIMIT 10) a), '[]')
		FROM rapport.webhook_deliveries d
		WHERE subscription_id = $1 AND id < $2
		  AND ($3 = '' OR ($3 = 'delivered') = delivered)
		ORDER BY id DESC
		LIMIT $4`, id, before, f.State, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("webhooks: deliveries: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) {
		var (
			dl        Delivery
			pos       int64
			delivered bool
			log       []Attempt
		)
		if err := r.Scan(&dl.ID, &pos, &dl.CustomerID, &dl.EventID, &dl.EventType, &dl.Replay, &delivered, &dl.Attempts,
			&dl.NextAttemptAt, &dl.DeliveredAt, &dl.LastStatus, &dl.LastError, &log); err != nil {
			return dl, err
		}
		dl.Position, dl.Log = uint64(pos), log
		dl.State = "pending"
		if delivered {
			dl.State = "delivered"
		}
		for i := range dl.Log {
			dl.Log[i].At = dl.Log[i].At.UTC()
		}
		return dl, nil
	})
}
