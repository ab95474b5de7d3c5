package history_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/domain/eventcodec"
	"github.com/rapport-crm/rapport/infra/postgres/postgrestest"
	"github.com/rapport-crm/rapport/projections"
	"github.com/rapport-crm/rapport/readmodels/history"
)

// uncached is the history projector made to forget its profiles before
// every batch, so that each one reads them back from the table: the way
// the history was built before it kept them.
type uncached struct{ *history.Projector }

func (u uncached) Apply(ctx context.Context, tx pgx.Tx, batch []eventcodec.Decoded) error {
	u.Forget("")
	return u.Projector.Apply(ctx, tx, batch)
}

// TestCachedProfilesBuildTheSameHistory: the history built with the
// profiles kept in memory between batches equals, row for row, the one
// built reading them back from the table before each batch (small
// batches, so that most customers span many).
func TestCachedProfilesBuildTheSameHistory(t *testing.T) {
	log := postgrestest.LoadLog(t, 3000)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := func(p projections.Projector) map[string]string {
		eng, err := projections.New(projections.Config{Pool: log.Pool, Store: log.Store, Codec: log.Codec, Projectors: []projections.Projector{p},
			BatchSize: 7, RebuildBatchSize: 13, PollInterval: 50 * time.Millisecond, LockRetryInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Rebuild(ctx, history.Name, nil); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, table := range []string{"history", "history_profiles"} {
			var n int64
			var digest string
			if err := log.Pool.QueryRow(ctx, `SELECT count(*), coalesce(md5(string_agg(r::text, E'\n' ORDER BY r::text)), '') FROM readmodels.`+table+` r`).Scan(&n, &digest); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatalf("readmodels.%s is empty", table)
			}
			out[table] = digest
		}
		return out
	}
	want := build(uncached{history.NewProjector()})
	got := build(history.NewProjector())
	for table, w := range want {
		if got[table] != w {
			t.Errorf("readmodels.%s built with cached profiles differs from the one built reading them back", table)
		}
	}
}
