package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// withoutFlushWait runs one statement in a transaction of its own that
// commits without waiting for its WAL flush (synchronous_commit off, for
// this transaction only), in one round trip. dest, if any, receives the
// row the statement returns (pgx.ErrNoRows when none); the command tag is
// returned.
//
// Where the write comes before an append to the embedded event store, in
// the same PostgreSQL cluster, this loses nothing: the WAL is one ordered
// stream, so the append's own flush at its commit makes every record
// written before it durable too, this commit included. A crash before that
// flush loses both, and the command's retry runs again. With EventStoreDB
// the append does not flush PostgreSQL's WAL, so writes that must outlive
// the append (the email reservation, a data key) keep waiting for theirs.
func withoutFlushWait(ctx context.Context, pool *pgxpool.Pool, sql string, args []any, dest ...any) (pgconn.CommandTag, error) {
	batch := &pgx.Batch{}
	batch.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
	q := batch.Queue(sql, args...)
	var tag pgconn.CommandTag
	if len(dest) > 0 {
		q.QueryRow(func(row pgx.Row) error { return row.Scan(dest...) })
	} else {
		q.Exec(func(ct pgconn.CommandTag) error { tag = ct; return nil })
	}
	return tag, pool.SendBatch(ctx, batch).Close()
}
