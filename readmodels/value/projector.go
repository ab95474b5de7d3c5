package value

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
	"github.com/rapport-crm/rapport/readmodels/risk"
)

// Name is the projector's name; its tables are readmodels.purchases,
// readmodels.loyalty_ledger and readmodels.value_customers.
const Name = "value"

// version of the tables, the fold and the SQL functions; bumping it
// rebuilds. 2: value_customers_position_idx. 3: the value figures' day
// sums (value_keys, value_groups, purchase_days, the purchases' chains;
// rollup.go).
const version = 3

// Ledger entry kinds (loyalty_ledger.kind).
const (
	KindPurchase   = "purchase"
	KindAward      = "award"
	KindRedemption = "redemption"
	KindRefund     = "refund"
	// KindExpiry is not stored: expired points are judged at query time.
	KindExpiry = "expiry"
)

// Projector builds the value read model. It implements
// projections.Projector, Reconciler and Indexer.
type Projector struct {
	// noRekey leaves the day sums of a reclassified customer under its
	// old keys: only tests set it, to see the agreement test fail.
	noRekey bool
}

var (
	_ projections.Projector  = Projector{}
	_ projections.Reconciler = Projector{}
	_ projections.Indexer    = Projector{}
)

// NewProjector returns the projector.
func NewProjector() Projector { return Projector{} }

// Name implements projections.Projector.
func (Projector) Name() string { return Name }

// Version implements projections.Projector.
func (Projector) Version() int { return version }

// Handles implements projections.Projector.
func (Projector) Handles() []string {
	return []string{domain.TypePurchaseRecorded, domain.TypePurchaseRefunded, domain.TypePointsAwarded,
		domain.TypePointsRedeemed, domain.TypePointsRevoked,
		domain.TypeCustomerChurned, domain.TypeCustomerReactivated, domain.TypeCustomerDataErased,
		// The group keys of the value figures (rollup.go).
		domain.TypeCustomerRegistered, domain.TypeCustomerClassified, domain.TypeTeamMemberAssigned}
}

// Setup implements projections.Projector: the tables, and the SQL
// function that judges recency, frequency and monetary value.
func (Projector) Setup(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `
		CREATE TABLE value_customers (
			customer_id   uuid     PRIMARY KEY,
			currency      text,
			decimals      smallint,
			churned       boolean  NOT NULL DEFAULT false,
			erased        boolean  NOT NULL DEFAULT false,
			last_counted_at timestamptz,
			last_revision bigint   NOT NULL,
			last_position bigint   NOT NULL
		);`+rollupSetupSQL+`
		CREATE TABLE purchases (
			customer_id    uuid        NOT NULL,
			purchase_id    uuid        NOT NULL,
			reference      text        NOT NULL,
			amount_minor   bigint      NOT NULL,
			refunded_minor bigint      NOT NULL DEFAULT 0,
			currency       text        NOT NULL,
			decimals       smallint    NOT NULL,
			channel        text,
			occurred_at    timestamptz NOT NULL,
			recorded_at    timestamptz NOT NULL,
			prev_at        timestamptz,
			prev2_at       timestamptz,
			next_at        timestamptz,
			next2_at       timestamptz,
			segment        text        NOT NULL DEFAULT '',
			tier           text        NOT NULL DEFAULT '',
			region         text        NOT NULL DEFAULT '',
			owner          text        NOT NULL DEFAULT '',
			revision       bigint      NOT NULL,
			position       bigint      NOT NULL,
			PRIMARY KEY (customer_id, purchase_id)
		);
		CREATE TABLE loyalty_ledger (
			customer_id uuid        NOT NULL,
			kind        text        NOT NULL,
			entry_id    uuid        NOT NULL,
			points      bigint      NOT NULL,
			remaining   bigint,
			expires_at  timestamptz,
			reason      text,
			purchase_id uuid,
			occurred_at timestamptz NOT NULL,
			revision    bigint      NOT NULL,
			position    bigint      NOT NULL,
			PRIMARY KEY (customer_id, kind, entry_id)
		);`); err != nil {
		return err
	}
	// The function reads the readmodels.* views, which point at this
	// generation only once it serves: its body is checked when called.
	if _, err := tx.Exec(ctx, `SET LOCAL check_function_bodies = off`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, functionSQL); err != nil {
		return err
	}
	// The churn-risk purchase factors read these purchases.
	_, err := tx.Exec(ctx, risk.PurchaseFunctionSQL())
	return err
}

// CreateIndexes implements projections.Indexer: purchases by time (the
// figures of a period, the 365-day window, the purchases the window lets
// in or out since a population snapshot), customers by the position of
// their last event (those changed since a snapshot), and statistics after
// a rebuild.
func (Projector) CreateIndexes(ctx context.Context, tx pgx.Tx) error {
	for _, s := range []string{
		`CREATE INDEX IF NOT EXISTS purchases_occurred_idx ON purchases (occurred_at) INCLUDE (customer_id, amount_minor, refunded_minor, currency, decimals, prev_at, prev2_at, next_at, next2_at, segment, tier, region, owner)`,
		`CREATE INDEX IF NOT EXISTS value_customers_position_idx ON value_customers (last_position)`,
		`ANALYZE value_customers`, `ANALYZE purchases`, `ANALYZE loyalty_ledger`,
		`ANALYZE value_keys`, `ANALYZE value_groups`, `ANALYZE purchase_days`,
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// AppliedRevisions implements projections.Reconciler: every event applied
// moves its customer's value_customers row, or (registration,
// classification, team) its value_keys row.
func (Projector) AppliedRevisions(ctx context.Context, tx pgx.Tx, visit func(stream string, revision uint64) error) error {
	return projections.VisitAppliedRevisions(ctx, tx, `SELECT customer_id, max(r) FROM (
		SELECT customer_id, last_revision AS r FROM value_customers UNION ALL SELECT customer_id, last_revision FROM value_keys) x
		GROUP BY customer_id`, visit)
}

// customerChange is what a batch changes of a value_customers row.
type customerChange struct {
	currency *string
	decimals int16
	churned  *bool
	erased   bool
	rev, pos int64
}

type lotKey struct{ customer, award uuid.UUID }
type purchaseKey struct{ customer, purchase uuid.UUID }

// Apply implements projections.Projector: the batch's purchases and ledger
// entries with one COPY each, then refunds, points taken from lots and
// customer rows with one statement each; around them, the day sums of the
// customers whose keys or purchases change are taken away and added back
// (rollup.go).
func (p Projector) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	keys, err := foldKeys(ctx, tx, batch)
	if err != nil {
		return err
	}
	moved, chains, err := rollupCustomers(batch, keys)
	if err != nil {
		return err
	}
	if p.noRekey {
		moved = chains
	}
	if err := daySums(ctx, tx, moved, -1); err != nil {
		return err
	}
	if err := p.apply(ctx, tx, batch); err != nil {
		return err
	}
	if err := keys.write(ctx, tx); err != nil {
		return err
	}
	return p.finishRollup(ctx, tx, moved, chains)
}

func (Projector) apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	var (
		purchases, entries [][]any
		refunded           = map[purchaseKey]int64{}
		taken              = map[lotKey]int64{}
		changes            = map[uuid.UUID]*customerChange{}
		order              []uuid.UUID
	)
	change := func(id uuid.UUID, rev, pos int64) *customerChange {
		c, ok := changes[id]
		if !ok {
			c = &customerChange{}
			changes[id] = c
			order = append(order, id)
		}
		c.rev, c.pos = rev, pos
		return c
	}
	take := func(id uuid.UUID, lots []domain.LotTake) {
		for _, l := range lots {
			taken[lotKey{id, l.AwardID}] += l.Points
		}
	}
	for i := range batch {
		d := &batch[i]
		if keyEvent(d.Event) {
			continue // rollup.go
		}
		id, err := d.CustomerID()
		if err != nil {
			return err
		}
		rev, pos := int64(d.Record.Revision), int64(d.Record.Position)
		c := change(id, rev, pos)
		switch e := d.Event.(type) {
		case domain.PurchaseRecorded:
			decimals, ok := domain.CurrencyDecimals(e.Currency)
			if !ok {
				return fmt.Errorf("value: purchase %s in unknown currency %q", e.PurchaseID, e.Currency)
			}
			if c.currency == nil {
				currency := e.Currency
				c.currency, c.decimals = &currency, int16(decimals)
			}
			var channel any
			if e.Channel != "" {
				channel = e.Channel
			}
			purchases = append(purchases, []any{id, e.PurchaseID, e.Reference, e.AmountMinor, e.Currency, int16(decimals), channel, e.OccurredAt, d.Record.RecordedAt, rev, pos})
		case domain.PurchaseRefunded:
			refunded[purchaseKey{id, e.PurchaseID}] += e.AmountMinor
		case domain.PointsAwarded:
			kind := KindAward
			var purchase any
			if e.PurchaseID != nil {
				kind, purchase = KindPurchase, *e.PurchaseID
			}
			entries = append(entries, []any{id, kind, e.AwardID, e.Points, e.Points, e.ExpiresAt, readmodel.Personal(d, e.Reason), purchase, e.OccurredAt, rev, pos})
		case domain.PointsRedeemed:
			entries = append(entries, []any{id, KindRedemption, e.RedemptionID, -e.Points, nil, nil, readmodel.Personal(d, e.Reason), nil, e.OccurredAt, rev, pos})
			take(id, e.Lots)
		case domain.PointsRevoked:
			entries = append(entries, []any{id, KindRefund, e.RefundID, -e.Points, nil, nil, nil, e.PurchaseID, e.OccurredAt, rev, pos})
			take(id, e.Lots)
		case domain.CustomerChurned:
			churned := true
			c.churned = &churned
		case domain.CustomerReactivated:
			churned := false
			c.churned = &churned
		case domain.CustomerDataErased:
			c.erased = true
		}
	}
	if len(purchases) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"purchases"},
			[]string{"customer_id", "purchase_id", "reference", "amount_minor", "currency", "decimals", "channel", "occurred_at", "recorded_at", "revision", "position"},
			pgx.CopyFromRows(purchases)); err != nil {
			return fmt.Errorf("value: write %d purchases: %w", len(purchases), err)
		}
	}
	if len(entries) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"loyalty_ledger"},
			[]string{"customer_id", "kind", "entry_id", "points", "remaining", "expires_at", "reason", "purchase_id", "occurred_at", "revision", "position"},
			pgx.CopyFromRows(entries)); err != nil {
			return fmt.Errorf("value: write %d ledger entries: %w", len(entries), err)
		}
	}
	if len(refunded) > 0 {
		var customers, ids []uuid.UUID
		var amounts []int64
		for k, v := range refunded {
			customers, ids, amounts = append(customers, k.customer), append(ids, k.purchase), append(amounts, v)
		}
		if _, err := tx.Exec(ctx, `UPDATE purchases p SET refunded_minor = p.refunded_minor + r.amount
			FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS r(customer_id, purchase_id, amount)
			WHERE p.customer_id = r.customer_id AND p.purchase_id = r.purchase_id`, customers, ids, amounts); err != nil {
			return fmt.Errorf("value: refunds: %w", err)
		}
	}
	if len(taken) > 0 {
		var customers, ids []uuid.UUID
		var points []int64
		for k, v := range taken {
			customers, ids, points = append(customers, k.customer), append(ids, k.award), append(points, v)
		}
		if _, err := tx.Exec(ctx, `UPDATE loyalty_ledger l SET remaining = greatest(l.remaining - t.points, 0)
			FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS t(customer_id, entry_id, points)
			WHERE l.customer_id = t.customer_id AND l.entry_id = t.entry_id AND l.kind IN ('purchase', 'award')`, customers, ids, points); err != nil {
			return fmt.Errorf("value: points taken: %w", err)
		}
	}
	if err := upsertCustomers(ctx, tx, order, changes); err != nil {
		return err
	}
	if len(purchases) == 0 && len(refunded) == 0 {
		return nil
	}
	// The last purchase not refunded in full, for recency.
	var touched []uuid.UUID
	seen := map[uuid.UUID]bool{}
	for _, p := range purchases {
		if id := p[0].(uuid.UUID); !seen[id] {
			seen[id] = true
			touched = append(touched, id)
		}
	}
	for k := range refunded {
		if !seen[k.customer] {
			seen[k.customer] = true
			touched = append(touched, k.customer)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE value_customers v SET last_counted_at = (
			SELECT max(p.occurred_at) FROM purchases p WHERE p.customer_id = v.customer_id AND p.amount_minor > p.refunded_minor)
		WHERE v.customer_id = ANY($1)`, touched); err != nil {
		return fmt.Errorf("value: last purchases: %w", err)
	}
	return nil
}

func upsertCustomers(ctx context.Context, tx pgx.Tx, order []uuid.UUID, changes map[uuid.UUID]*customerChange) error {
	if len(order) == 0 {
		return nil
	}
	n := len(order)
	currencies, decimals := make([]*string, n), make([]*int16, n)
	churned, erased := make([]*bool, n), make([]bool, n)
	revs, poss := make([]int64, n), make([]int64, n)
	var erasedIDs []uuid.UUID
	for i, id := range order {
		c := changes[id]
		currencies[i], churned[i], erased[i], revs[i], poss[i] = c.currency, c.churned, c.erased, c.rev, c.pos
		if c.currency != nil {
			d := c.decimals
			decimals[i] = &d
		}
		if c.erased {
			erasedIDs = append(erasedIDs, id)
		}
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO value_customers AS v (customer_id, currency, decimals, churned, erased, last_revision, last_position)
		SELECT c.id, c.currency, c.decimals, coalesce(c.churned, false), c.erased, c.rev, c.pos
		FROM unnest($1::uuid[], $2::text[], $3::smallint[], $4::boolean[], $5::boolean[], $6::bigint[], $7::bigint[])
			AS c(id, currency, decimals, churned, erased, rev, pos)
		ON CONFLICT (customer_id) DO UPDATE SET
			currency = coalesce(v.currency, EXCLUDED.currency),
			decimals = coalesce(v.decimals, EXCLUDED.decimals),
			erased = v.erased OR EXCLUDED.erased,
			last_revision = EXCLUDED.last_revision,
			last_position = EXCLUDED.last_position`,
		order, currencies, decimals, churned, erased, revs, poss); err != nil {
		return fmt.Errorf("value: customers: %w", err)
	}
	// A churn or reactivation sets churned; other events leave it (NULL).
	if _, err := tx.Exec(ctx, `UPDATE value_customers v SET churned = c.churned
		FROM unnest($1::uuid[], $2::boolean[]) AS c(id, churned)
		WHERE v.customer_id = c.id AND c.churned IS NOT NULL AND v.churned <> c.churned`, order, churned); err != nil {
		return fmt.Errorf("value: customers: %w", err)
	}
	if len(erasedIDs) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE loyalty_ledger SET reason = NULL WHERE customer_id = ANY($1) AND reason IS NOT NULL`, erasedIDs); err != nil {
			return fmt.Errorf("value: erase: %w", err)
		}
	}
	return nil
}
