package projections

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// lockNamespace is the first key of the two-int advisory locks that make a
// projector exclusive: pg_try_advisory_lock(lockNamespace, hashtext(name)).
// The event store locks streams with the one-bigint form, a different key
// space, so the two never collide.
const lockNamespace int32 = 0x52504A00 // "RPJ\0"

// lockConn is a projector's dedicated connection: it holds the session
// advisory lock that makes this process the projector's only writer, and
// every write of the projector runs on it. If the connection dies, the lock
// dies with it and so do the writes in flight: a process that lost the lock
// cannot commit anything any more (fencing).
type lockConn struct {
	e    *Engine
	name string

	mu    sync.Mutex // one transaction at a time
	conn  *pgx.Conn
	epoch int64 // lock_epoch this process got when it last took the lock
	held  bool  // the lock was taken on conn
}

func newLockConn(e *Engine, name string) *lockConn { return &lockConn{e: e, name: name} }

// tryLock takes the lock if it is free. It keeps the connection for the
// next try when the lock is taken.
func (l *lockConn) tryLock(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		return true, nil
	}
	if err := l.connect(ctx); err != nil {
		return false, err
	}
	var ok bool
	if err := l.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, lockNamespace, l.name).Scan(&ok); err != nil {
		l.closeLocked()
		return false, fmt.Errorf("projections: lock %s: %w", l.name, err)
	}
	if !ok {
		return false, nil
	}
	var epoch int64
	err := l.conn.QueryRow(ctx, `
		INSERT INTO projections.projectors AS p (name, lock_epoch, owner, state) VALUES ($1, 1, $2, 'starting')
		ON CONFLICT (name) DO UPDATE SET lock_epoch = p.lock_epoch + 1, owner = $2, state = 'starting', updated_at = now()
		RETURNING lock_epoch`, l.name, l.e.cfg.Instance).Scan(&epoch)
	if err != nil {
		l.closeLocked()
		return false, fmt.Errorf("projections: lock %s: %w", l.name, err)
	}
	l.held, l.epoch = true, epoch
	return true, nil
}

func (l *lockConn) connect(ctx context.Context) error {
	if l.conn != nil && !l.conn.IsClosed() {
		return nil
	}
	l.conn, l.held = nil, false
	cfg := l.e.cfg.Pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "rapport-projector-" + l.name
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("projections: connect for %s: %w", l.name, err)
	}
	encodeUUIDsNatively(conn.TypeMap())
	l.conn = conn
	return nil
}

// relock takes the lock back on a new connection after the old one broke,
// provided nobody else took it in between: lock_epoch must still be ours.
func (l *lockConn) relock(ctx context.Context) error {
	l.closeLocked()
	if err := l.connect(ctx); err != nil {
		return err
	}
	var ok bool
	if err := l.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, lockNamespace, l.name).Scan(&ok); err != nil {
		l.closeLocked()
		return fmt.Errorf("projections: relock %s: %w", l.name, err)
	}
	if !ok {
		l.closeLocked()
		return errLockLost
	}
	tag, err := l.conn.Exec(ctx, `UPDATE projections.projectors SET lock_epoch = lock_epoch + 1, updated_at = now() WHERE name = $1 AND lock_epoch = $2`, l.name, l.epoch)
	if err != nil {
		l.closeLocked()
		return fmt.Errorf("projections: relock %s: %w", l.name, err)
	}
	if tag.RowsAffected() != 1 {
		l.closeLocked()
		return errLockLost
	}
	l.held = true
	l.epoch++
	// Nobody else wrote in between (the epoch says so), but what a
	// caching projector remembers of a transaction whose commit was cut
	// off is unsure: start afresh.
	if rt, ok := l.e.byName[l.name]; ok {
		rt.forget("")
	}
	l.e.cfg.Logger.Info("projections: took the projector lock back on a new connection", "projector", l.name)
	return nil
}

// ReadModelApplicationName marks a projector's transactions (SET LOCAL
// application_name): they write read models and never append events, so
// the Postgres event store's horizon need not wait for them, and a long
// rebuild batch does not hold back every live subscriber. The store refuses
// an append from a transaction so marked (migration 00025), so the mark
// cannot lie; a transaction must never set it after appending.
const ReadModelApplicationName = "rapport:readmodel"

// tx runs fn in a transaction on the locked connection, with search_path
// set to schema when it is not empty. A broken connection is replaced
// first (relock), so that a transient error is retried on a healthy one.
func (l *lockConn) tx(ctx context.Context, schema string, fn func(tx pgx.Tx) error) error {
	return l.txAfter(ctx, schema, fn, nil)
}

// txAfter is tx, then calls after (when not nil) with the outcome before
// another transaction may start: a caching projector learns how its Apply
// ended before its next Apply, whichever goroutine runs that one.
func (l *lockConn) txAfter(ctx context.Context, schema string, fn func(tx pgx.Tx) error, after func(err error)) (err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if after != nil {
		defer func() { after(err) }()
	}
	if !l.held || l.conn == nil || l.conn.IsClosed() {
		if !l.held && l.conn == nil && l.epoch == 0 {
			return errLockLost
		}
		if err := l.relock(ctx); err != nil {
			return err
		}
	}
	tx, err := l.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The mark comes before any write and lasts for the transaction only.
	setup := `SET LOCAL application_name TO '` + ReadModelApplicationName + `'`
	if schema != "" {
		setup += `; SET LOCAL search_path TO ` + pgx.Identifier{schema}.Sanitize()
	}
	if _, err := tx.Exec(ctx, setup); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// ping checks the connection while the projector is idle, relocking when
// it broke; errLockLost means another process has the projector now.
func (l *lockConn) ping(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil && !l.conn.IsClosed() {
		if err := l.conn.Ping(ctx); err == nil {
			return nil
		} else if ctx.Err() != nil {
			return err
		}
	}
	return l.relock(ctx)
}

// release unlocks and closes the connection.
func (l *lockConn) release(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil && !l.conn.IsClosed() && l.held {
		_, _ = l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, lockNamespace, l.name)
	}
	l.closeLocked()
}

func (l *lockConn) closeLocked() {
	if l.conn != nil {
		_ = l.conn.Close(context.Background())
	}
	l.conn, l.held = nil, false
}

// lockHeldQuery tells whether some session holds the lock of projector
// $2 ($1 is lockNamespace).
func lockHeldQuery() string {
	return `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
		AND classid = ($1::bigint & 4294967295)::oid AND objid = (hashtext($2)::bigint & 4294967295)::oid
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`
}
