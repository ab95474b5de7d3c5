package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rapport-crm/rapport/domain/integration"
)

// Config configures a Deliverer. Zero durations take the defaults.
type Config struct {
	Pool    *pgxpool.Pool
	Sealer  *Sealer
	Targets Targets
	// Timeout bounds one delivery, connection included. Default 10 s.
	Timeout time.Duration
	// Workers is how many deliveries run at once (to different
	// customers). Default 16.
	Workers int
	// BaseDelay is the first retry's delay; each further one doubles, up
	// to MaxDelay, with jitter (a random half of it). Defaults 5 s, 1 h.
	BaseDelay, MaxDelay time.Duration
	// FailAfter is how long a delivery is retried before its subscription
	// is marked failing and holds its deliveries. Default (and, in
	// production, at least — PRODUCT.md) 24 h.
	FailAfter time.Duration
	// Poll is how often the deliverer looks for work when nothing woke
	// it. Default 500 ms.
	Poll time.Duration
	// WaitForFeed, when set, returns when the feed may have passed after
	// (the projection engine's WaitForPosition), so that new events go out
	// without waiting for a poll.
	WaitForFeed func(ctx context.Context, after uint64)
	// Registerer receives the delivery metrics.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Workers == 0 {
		c.Workers = 16
	}
	if c.BaseDelay == 0 {
		c.BaseDelay = 5 * time.Second
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = time.Hour
	}
	if c.FailAfter == 0 {
		c.FailAfter = 24 * time.Hour
	}
	if c.Poll == 0 {
		c.Poll = 500 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Deliverer queues and sends the webhook deliveries. Run it in every
// process that may deliver: one holds the lock and works, the others
// stand by.
type Deliverer struct {
	cfg     Config
	client  *http.Client
	metrics *metrics

	wake chan struct{}

	mu   sync.Mutex
	busy map[chainKey]bool
}

// chainKey is one customer's queue in one subscription: its deliveries go
// out one at a time.
type chainKey struct {
	sub      uuid.UUID
	customer uuid.UUID
}

// NewDeliverer returns a deliverer; Run starts it.
func NewDeliverer(cfg Config) (*Deliverer, error) {
	cfg.setDefaults()
	if cfg.Pool == nil || cfg.Sealer == nil {
		return nil, errors.New("webhooks: Pool and Sealer are required")
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: cfg.Targets.control}
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us, past the target check
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   cfg.Workers,
		IdleConnTimeout:       90 * time.Second,
	}
	client := &http.Client{
		Transport: transport,
		Timeout:   cfg.Timeout,
		// A redirect is an answer, not an instruction: following it could
		// reach an address the target check refused.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Deliverer{cfg: cfg, client: client, metrics: m, wake: make(chan struct{}, 1), busy: map[chainKey]bool{}}, nil
}

// lockNamespace and lockName key the deliverer's session advisory lock
// (two-int form, like the projectors', with its own namespace).
const lockNamespace int32 = 0x52574800 // "RWH\0"

// Run delivers until ctx ends: it waits for the lock, then queues and
// sends; if its locking connection dies it stops working and waits for
// the lock again.
func (d *Deliverer) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		err := d.runLocked(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			d.cfg.Logger.Warn("webhooks: deliverer stopped; waiting for the lock again", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// runLocked takes the lock (returns nil at once when another process
// holds it) and works while it holds it.
func (d *Deliverer) runLocked(ctx context.Context) error {
	conn, err := d.cfg.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext('deliverer'))`, lockNamespace).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return nil // another process delivers
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, hashtext('deliverer'))`, lockNamespace)
	}()
	d.cfg.Logger.Info("webhooks: delivering")
	work, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); d.queueLoop(work) }()
	go func() { defer wg.Done(); d.dispatchLoop(work) }()
	go func() { defer wg.Done(); d.metricsLoop(work) }()
	// The lock lives as long as its connection: check it, and stop work
	// when it is gone (another process may have taken over).
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	var lost error
watch:
	for {
		select {
		case <-ctx.Done():
			break watch
		case <-ticker.C:
			if err := conn.Ping(ctx); err != nil && ctx.Err() == nil {
				lost = fmt.Errorf("webhooks: lock connection: %w", err)
				break watch
			}
		}
	}
	cancel()
	wg.Wait()
	return lost
}

// Wake makes the deliverer look for work now (tests, and the HTTP
// replay and enable answers).
func (d *Deliverer) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// queueBatch bounds the feed events one queueing transaction covers.
const queueBatch = 1000

// queueLoop moves every subscription's checkpoint along the feed,
// queueing the deliveries of the events it passes in the same
// transaction.
func (d *Deliverer) queueLoop(ctx context.Context) {
	for ctx.Err() == nil {
		start := time.Now()
		more, subs, head, err := d.queueAll(ctx)
		if err != nil && ctx.Err() == nil {
			d.cfg.Logger.Warn("webhooks: queueing failed", "err", err)
		}
		if more && err == nil {
			continue
		}
		if d.cfg.WaitForFeed != nil && err == nil && subs > 0 {
			wctx, cancel := context.WithTimeout(ctx, d.cfg.Poll)
			d.cfg.WaitForFeed(wctx, head)
			cancel()
			// The feed's checkpoint may already be past its last event
			// (the wait returns at once): do not spin.
			sleep(ctx, idleFloor-time.Since(start))
			continue
		}
		sleep(ctx, d.cfg.Poll)
	}
}

// idleFloor is the least time between two idle rounds of queueing.
const idleFloor = 50 * time.Millisecond

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// queueAll queues one batch for every subscription; more says a
// subscription has more to queue at once; subs counts them; head is the
// newest feed position queued.
func (d *Deliverer) queueAll(ctx context.Context) (more bool, subs int, head uint64, err error) {
	rows, err := d.cfg.Pool.Query(ctx, `SELECT id FROM rapport.webhook_subscriptions`)
	if err != nil {
		return false, 0, 0, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return false, 0, 0, err
	}
	for _, id := range ids {
		m, cp, err := d.queue(ctx, id)
		if err != nil {
			return false, len(ids), 0, err
		}
		more = more || m
		head = max(head, cp)
	}
	return more, len(ids), head, nil
}

// queue moves one subscription's checkpoint over up to queueBatch feed
// events, queueing its deliveries, in one transaction.
func (d *Deliverer) queue(ctx context.Context, id uuid.UUID) (more bool, checkpoint uint64, err error) {
	tx, err := d.cfg.Pool.Begin(ctx)
	if err != nil {
		return false, 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var (
		cp    int64
		types []string
	)
	err = tx.QueryRow(ctx, `SELECT checkpoint, event_types FROM rapport.webhook_subscriptions WHERE id = $1 FOR UPDATE`, id).Scan(&cp, &types)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, 0, nil // deleted meanwhile
	}
	if err != nil {
		return false, 0, err
	}
	// The end of this batch: the queueBatch-th feed event after the
	// checkpoint, or the feed's head. The feed is written in log order by
	// one writer, so every event up to it is visible once it is.
	var upTo int64
	err = tx.QueryRow(ctx, `
		SELECT coalesce(
			(SELECT position FROM readmodels.feed WHERE position > $1 ORDER BY position OFFSET $2 LIMIT 1),
			(SELECT max(position) FROM readmodels.feed), 0)`, cp, queueBatch-1).Scan(&upTo)
	if err != nil {
		return false, uint64(cp), err
	}
	if upTo <= cp {
		return false, uint64(cp), nil
	}
	n, err := enqueue(ctx, tx, id, types, cp, upTo, false)
	if err != nil {
		return false, uint64(cp), err
	}
	if _, err := tx.Exec(ctx, `UPDATE rapport.webhook_subscriptions SET checkpoint = $2 WHERE id = $1`, id, upTo); err != nil {
		return false, uint64(cp), err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, uint64(cp), err
	}
	if n > 0 {
		d.Wake()
	}
	// A full batch may have more behind it.
	var behind bool
	_ = d.cfg.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM readmodels.feed WHERE position > $1)`, upTo).Scan(&behind)
	return behind, uint64(upTo), nil
}

// dispatchLoop starts a chain for every customer queue whose head is due
// and that no worker is sending, within the worker limit.
func (d *Deliverer) dispatchLoop(ctx context.Context) {
	slots := make(chan struct{}, d.cfg.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		heads, err := d.dueHeads(ctx, d.cfg.Workers*4)
		if err != nil && ctx.Err() == nil {
			d.cfg.Logger.Warn("webhooks: reading the queues failed", "err", err)
		}
		for _, h := range heads {
			key := chainKey{h.sub, h.customer}
			d.mu.Lock()
			if d.busy[key] {
				d.mu.Unlock()
				continue
			}
			select {
			case slots <- struct{}{}:
			default:
				d.mu.Unlock()
				continue // every worker is busy; the next round
			}
			d.busy[key] = true
			d.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					d.mu.Lock()
					delete(d.busy, key)
					d.mu.Unlock()
					<-slots
					d.Wake() // a slot is free: look again
				}()
				d.chain(ctx, h)
			}()
		}
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-time.After(d.cfg.Poll):
		}
	}
}

// head is the oldest pending delivery of a customer queue.
type head struct {
	id       int64
	sub      uuid.UUID
	customer uuid.UUID
}

// dueHeads returns customer queues of active subscriptions whose oldest
// pending delivery is due, the oldest first.
//
// It reads one row per customer queue, not every pending delivery: a
// loose index scan of webhook_deliveries_pending (subscription, customer,
// id) jumps from each queue's head to the next customer's, so a backlog of
// many deliveries to a few customers costs as many probes as there are
// customers (the DISTINCT ON it replaces, dueHeadsScanSQL in the tests, read the whole
// backlog on every round; TestDueHeadsAgreesWithTheScan holds them equal).
func (d *Deliverer) dueHeads(ctx context.Context, limit int) ([]head, error) {
	rows, err := d.cfg.Pool.Query(ctx, dueHeadsSQL, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (head, error) {
		var h head
		return h, r.Scan(&h.id, &h.sub, &h.customer)
	})
}

const dueHeadsSQL = `
	WITH RECURSIVE q AS (
		SELECT h.subscription_id, h.customer_id, h.id
		FROM rapport.webhook_subscriptions s
		CROSS JOIN LATERAL (
			SELECT subscription_id, customer_id, id FROM rapport.webhook_deliveries
			WHERE subscription_id = s.id AND NOT delivered
			ORDER BY subscription_id, customer_id, id LIMIT 1) h
		WHERE s.state = 'active'
		UNION ALL
		SELECT n.subscription_id, n.customer_id, n.id
		FROM q CROSS JOIN LATERAL (
			SELECT subscription_id, customer_id, id FROM rapport.webhook_deliveries
			WHERE subscription_id = q.subscription_id AND customer_id > q.customer_id AND NOT delivered
			ORDER BY subscription_id, customer_id, id LIMIT 1) n
	)
	SELECT q.id, q.subscription_id, q.customer_id
	FROM q JOIN rapport.webhook_deliveries d ON d.id = q.id
	WHERE d.next_attempt_at <= now()
	ORDER BY q.id
	LIMIT $1`

// delivery is a pending delivery with what sending it needs.
type delivery struct {
	id           int64
	sub          uuid.UUID
	customer     uuid.UUID
	eventID      uuid.UUID
	payload      []byte
	attempts     int
	firstAttempt *time.Time
	url          string
	secrets      []string
}

// chain sends one customer queue's due deliveries in order, until one
// fails, none is due, or the subscription stops being active.
func (d *Deliverer) chain(ctx context.Context, h head) {
	for ctx.Err() == nil {
		dl, err := d.load(ctx, h)
		if err != nil {
			if !errors.Is(err, errNothingDue) && ctx.Err() == nil {
				d.cfg.Logger.Warn("webhooks: load delivery", "subscription", h.sub, "err", err)
			}
			return
		}
		outcome := d.send(ctx, dl)
		if ctx.Err() != nil {
			return // stopping: the attempt is not recorded; it is sent again
		}
		if err := d.record(ctx, dl, outcome); err != nil {
			d.cfg.Logger.Warn("webhooks: record attempt", "subscription", h.sub, "err", err)
			return
		}
		if !outcome.ok() {
			return
		}
	}
}

var errNothingDue = errors.New("webhooks: nothing due")

// load reads the customer queue's oldest pending delivery, if it is due
// and the subscription is active.
func (d *Deliverer) load(ctx context.Context, h head) (delivery, error) {
	dl := delivery{sub: h.sub, customer: h.customer}
	var (
		state            string
		sealed, previous []byte
		prevExpires      *time.Time
	)
	err := d.cfg.Pool.QueryRow(ctx, `
		SELECT d.id, d.event_id, d.payload, d.attempts, d.first_attempt_at, s.url, s.state,
		       s.secret_sealed, s.previous_secret_sealed, s.previous_expires_at
		FROM rapport.webhook_deliveries d JOIN rapport.webhook_subscriptions s ON s.id = d.subscription_id
		WHERE d.subscription_id = $1 AND d.customer_id = $2 AND NOT d.delivered AND d.next_attempt_at <= now()
		  AND d.id = (SELECT min(id) FROM rapport.webhook_deliveries WHERE subscription_id = $1 AND customer_id = $2 AND NOT delivered)`,
		h.sub, h.customer).Scan(&dl.id, &dl.eventID, &dl.payload, &dl.attempts, &dl.firstAttempt, &dl.url, &state, &sealed, &previous, &prevExpires)
	if errors.Is(err, pgx.ErrNoRows) {
		return dl, errNothingDue
	}
	if err != nil {
		return dl, err
	}
	if state != StateActive {
		return dl, errNothingDue
	}
	secret, err := d.cfg.Sealer.Open(h.sub, sealed)
	if err != nil {
		return dl, err
	}
	dl.secrets = []string{secret}
	if previous != nil && prevExpires != nil && time.Now().Before(*prevExpires) {
		if old, err := d.cfg.Sealer.Open(h.sub, previous); err == nil {
			dl.secrets = append(dl.secrets, old)
		}
	}
	return dl, nil
}

// outcome is what one attempt came to.
type outcome struct {
	at       time.Time
	duration time.Duration
	status   int // 0: no answer
	err      string
}

func (o outcome) ok() bool { return o.err == "" && o.status >= 200 && o.status < 300 }

// send makes one attempt.
func (d *Deliverer) send(ctx context.Context, dl delivery) outcome {
	o := outcome{at: time.Now()}
	body, err := canonical(dl.payload)
	if err != nil {
		o.err = err.Error()
		return o
	}
	ts := time.Now()
	var sigs []byte
	for i, s := range dl.secrets {
		sig, err := Sign(s, dl.eventID.String(), ts, body)
		if err != nil {
			o.err = err.Error()
			return o
		}
		if i > 0 {
			sigs = append(sigs, ' ')
		}
		sigs = append(sigs, sig...)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.url, bytes.NewReader(body))
	if err != nil {
		o.err = err.Error()
		return o
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Rapport-Webhooks/1")
	req.Header.Set("webhook-id", dl.eventID.String())
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", string(sigs))
	resp, err := d.client.Do(req)
	o.duration = time.Since(o.at)
	if err != nil {
		o.err = err.Error()
		return o
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	o.status = resp.StatusCode
	switch {
	case o.status >= 300 && o.status < 400:
		o.err = fmt.Sprintf("redirect to %q not followed (status %d)", resp.Header.Get("Location"), o.status)
	case o.status < 200 || o.status >= 300:
		o.err = fmt.Sprintf("status %d", o.status)
	}
	return o
}

// canonical re-encodes a stored payload as the feed encodes the event, so
// that a webhook body is byte for byte the feed's JSON.
func canonical(payload []byte) ([]byte, error) {
	var e integration.Event
	if err := json.Unmarshal(payload, &e); err != nil {
		return nil, fmt.Errorf("webhooks: stored payload: %w", err)
	}
	e.OccurredAt, e.RecordedAt = e.OccurredAt.UTC(), e.RecordedAt.UTC()
	return json.Marshal(e)
}

// backoff is the delay before attempt n+1 after n failed attempts:
// BaseDelay doubled n-1 times, at most MaxDelay, of which a random half
// (jitter, so that receivers coming back are not hit by every sender at
// once).
func (d *Deliverer) backoff(n int) time.Duration {
	delay := d.cfg.MaxDelay
	if n < 40 {
		delay = min(d.cfg.MaxDelay, d.cfg.BaseDelay<<max(0, n-1))
	}
	return delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
}

// record writes the attempt and its consequence in one transaction: the
// delivery done, or its next attempt scheduled — and, once it has failed
// for FailAfter, the subscription failing.
func (d *Deliverer) record(ctx context.Context, dl delivery, o outcome) error {
	tx, err := d.cfg.Pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Without waiting for the WAL flush: a PostgreSQL crash may lose the
	// record of the last deliveries, which are then sent again — at least
	// once holds, and the receiver dedupes by webhook-id. It spares a
	// disk flush per delivery.
	if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
		return err
	}
	attempt := dl.attempts + 1
	var status *int
	if o.status != 0 {
		status = &o.status
	}
	var errText *string
	if o.err != "" {
		e := truncate(o.err, 500)
		errText = &e
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rapport.webhook_attempts (delivery_id, attempt, at, duration_ms, status, error) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT DO NOTHING`, dl.id, attempt, o.at, o.duration.Milliseconds(), status, errText); err != nil {
		return err
	}
	first := o.at
	if dl.firstAttempt != nil {
		first = *dl.firstAttempt
	}
	if o.ok() {
		if _, err := tx.Exec(ctx, `UPDATE rapport.webhook_deliveries SET delivered = true, delivered_at = $2, attempts = $3,
			first_attempt_at = coalesce(first_attempt_at, $4), last_attempt_at = $2, last_status = $5, last_error = NULL WHERE id = $1`,
			dl.id, o.at, attempt, first, status); err != nil {
			return err
		}
		d.metrics.deliveries.WithLabelValues(dl.sub.String(), "delivered").Inc()
	} else {
		next := time.Now().Add(d.backoff(attempt))
		if _, err := tx.Exec(ctx, `UPDATE rapport.webhook_deliveries SET attempts = $2, first_attempt_at = coalesce(first_attempt_at, $3),
			last_attempt_at = $4, next_attempt_at = $5, last_status = $6, last_error = $7 WHERE id = $1`,
			dl.id, attempt, first, o.at, next, status, errText); err != nil {
			return err
		}
		d.metrics.deliveries.WithLabelValues(dl.sub.String(), "failed").Inc()
		if time.Since(first) >= d.cfg.FailAfter {
			reason := fmt.Sprintf("delivery of event %s failed for %s (%d attempts): %s", dl.eventID, time.Since(first).Round(time.Second), attempt, o.err)
			if _, err := tx.Exec(ctx, `UPDATE rapport.webhook_subscriptions SET state = 'failing', failing_since = now(), failing_reason = $2, updated_at = now()
				WHERE id = $1 AND state = 'active'`, dl.sub, truncate(reason, 1000)); err != nil {
				return err
			}
			d.cfg.Logger.Warn("webhooks: subscription failing; deliveries held until it is enabled", "subscription", dl.sub, "reason", reason)
		}
	}
	d.metrics.duration.Observe(o.duration.Seconds())
	return tx.Commit(ctx)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
