package pgtest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/infra/pgboot"
)

// TestNewDatabaseFrom: parallel callers each get their own copy of the
// template, holding what prepare built (and what one copy writes the
// others do not see); prepare runs once for them all, its template stays
// and the copies are dropped; a template dropped meanwhile is built again.
func TestNewDatabaseFrom(t *testing.T) {
	key := "pgtest_" + randomSuffix()
	template := templatePrefix + key
	srv, err := server(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pgboot.DropDatabase(context.Background(), srv.URL, template) })
	var prepared atomic.Int32
	prepare := func(ctx context.Context, dbURL string) error {
		prepared.Add(1)
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		_, err = conn.Exec(ctx, `CREATE TABLE prepared (n int); INSERT INTO prepared VALUES (1)`)
		return err
	}
	var mu sync.Mutex
	names := map[string]bool{}
	t.Run("group", func(t *testing.T) {
		for i := range 6 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				conn, err := pgx.Connect(t.Context(), NewDatabaseFrom(t, key, prepare))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(context.Background())
				var name string
				var n int
				if err := conn.QueryRow(t.Context(), `SELECT current_database(), (SELECT count(*) FROM prepared)`).Scan(&name, &n); err != nil {
					t.Fatal(err)
				}
				if n != 1 {
					t.Errorf("%s holds %d rows of prepare's one", name, n)
				}
				if _, err := conn.Exec(t.Context(), `INSERT INTO prepared VALUES (2)`); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				defer mu.Unlock()
				if names[name] {
					t.Errorf("database %s handed out twice", name)
				}
				names[name] = true
			})
		}
	})
	if n := prepared.Load(); n != 1 {
		t.Errorf("prepare ran %d times, want once", n)
	}
	if !databaseExists(t, template) {
		t.Errorf("template %s is gone", template)
	}
	for name := range names {
		if databaseExists(t, name) {
			t.Errorf("database %s is left after its test ended", name)
		}
	}

	if err := pgboot.DropDatabase(t.Context(), srv.URL, template); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), NewDatabaseFrom(t, key, prepare))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM prepared`).Scan(&n); err != nil || n != 1 {
		t.Errorf("after the template was dropped: %d rows (%v)", n, err)
	}
	if got := prepared.Load(); got != 2 {
		t.Errorf("prepare ran %d times in all, want twice", got)
	}
}
