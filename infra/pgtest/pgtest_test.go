package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rapport-crm/rapport/infra/pgboot"
)

// databaseExists asks the process's server whether name exists.
func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	srv, err := server(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}

func TestNewDatabaseInParallel(t *testing.T) {
	const n = 16
	var mu sync.Mutex
	names := map[string]bool{}
	var took []time.Duration

	t.Run("group", func(t *testing.T) {
		for i := range n {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				began := time.Now()
				dbURL := NewDatabase(t)
				elapsed := time.Since(began)

				conn, err := pgx.Connect(t.Context(), dbURL)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(context.Background())
				var name string
				var tables int
				err = conn.QueryRow(t.Context(), `SELECT current_database(),
					(SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema'))`).
					Scan(&name, &tables)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(name, dbPrefix) || tables != 0 {
					t.Errorf("database %q with %d tables, want a fresh %s… database", name, tables, dbPrefix)
				}
				// Same table name in every database: they do not interfere.
				if _, err := conn.Exec(t.Context(), `CREATE TABLE contacts (id int PRIMARY KEY); INSERT INTO contacts VALUES (1)`); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				defer mu.Unlock()
				if names[name] {
					t.Errorf("database %s handed out twice", name)
				}
				names[name] = true
				took = append(took, elapsed)
			})
		}
	})

	if len(names) != n {
		t.Fatalf("%d databases, want %d", len(names), n)
	}
	for name := range names {
		if databaseExists(t, name) {
			t.Errorf("database %s is left after its test ended", name)
		}
	}
	var total time.Duration
	for _, d := range took {
		total += d
	}
	srv, _ := server(t.Context())
	t.Logf("server: %s; NewDatabase took %s on average over %d parallel calls", srv.Source, (total / time.Duration(len(took))).Round(time.Millisecond), len(took))
}

func TestDatabaseDroppedDespiteOpenConnection(t *testing.T) {
	var name string
	var leaked *pgx.Conn
	t.Run("leaks a connection", func(t *testing.T) {
		conn, err := pgx.Connect(t.Context(), NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		leaked = conn // never closed by the subtest
		if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	defer leaked.Close(context.Background())
	if databaseExists(t, name) {
		t.Errorf("database %s survived its test because a connection was open", name)
	}
}

func TestNewPool(t *testing.T) {
	began := time.Now()
	pool := NewPool(t)
	t.Logf("NewPool took %s", time.Since(began).Round(time.Millisecond))
	if got := pool.Config().MaxConns; got != poolMaxConns {
		t.Errorf("MaxConns = %d, want %d", got, poolMaxConns)
	}
	var name string
	if err := pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, dbPrefix) {
		t.Errorf("pool is on %q, want a %s… database", name, dbPrefix)
	}
}

// TestNoServerFailsTheTest runs a test in a child process whose
// DATABASE_URL leads nowhere: the test must fail with pgboot's message, not
// skip and not hang.
func TestNoServerFailsTheTest(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "1" {
		NewDatabase(t)
		t.Error("NewDatabase returned without a server")
		return
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestNoServerFailsTheTest$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PGTEST_CHILD=1", "DATABASE_URL=postgres://postgres@127.0.0.1:1/postgres")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the child test passed:\n%s", out)
	}
	if !strings.Contains(string(out), "--- FAIL: TestNoServerFailsTheTest") ||
		!strings.Contains(string(out), "pgboot: DATABASE_URL is set but its server cannot be used") {
		t.Errorf("child output lacks the failure and pgboot's message:\n%s", out)
	}
}

// TestServerThatWentAwayIsFoundAgain: when the cached server stops
// answering (someone stopped the shared cluster mid-run), NewDatabase finds
// or starts one again instead of failing every later test.
func TestServerThatWentAwayIsFoundAgain(t *testing.T) {
	srv, err := server(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	gone := &pgboot.Server{URL: "postgres://postgres@127.0.0.1:1/postgres", Source: "a server that went away"}
	shared.mu.Lock()
	shared.srv = gone
	shared.mu.Unlock()

	conn, err := pgx.Connect(t.Context(), NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	shared.mu.Lock()
	again := shared.srv
	shared.mu.Unlock()
	if again == gone || again.URL != srv.URL {
		t.Errorf("cached server is %+v, want one like %+v", again, srv)
	}
}
