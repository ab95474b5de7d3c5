package pgboot

import (
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestDatabaseURL(t *testing.T) {
	tests := []struct {
		server, name, want string
	}{
		{"postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable", "rapport_dev",
			"postgres://postgres@127.0.0.1:55432/rapport_dev?sslmode=disable"},
		{"postgresql://u:p%40ss@db.example:5432/postgres", "app",
			"postgresql://u:p%40ss@db.example:5432/app"},
		{"postgres://u@db/", "Weird Name/é", "postgres://u@db/Weird%20Name%2F%C3%A9"},
		{"postgres://u@db", "x", "postgres://u@db/x"},
		{"host=db user=u dbname=postgres", "app", "host=db user=u dbname=postgres dbname='app'"},
		{"host=db user=u", `it's\x`, `host=db user=u dbname='it\'s\\x'`},
	}
	for _, tt := range tests {
		got, err := DatabaseURL(tt.server, tt.name)
		if err != nil || got != tt.want {
			t.Errorf("DatabaseURL(%q, %q) = %q, %v; want %q", tt.server, tt.name, got, err, tt.want)
			continue
		}
		// Whatever the form, pgx must read back the name we asked for.
		cfg, err := pgconn.ParseConfig(got)
		if err != nil {
			t.Errorf("pgx cannot parse %q: %v", got, err)
		} else if cfg.Database != tt.name {
			t.Errorf("pgx reads database %q from %q, want %q", cfg.Database, got, tt.name)
		}
	}
}

func TestDatabaseURLRejects(t *testing.T) {
	for _, name := range []string{"", strings.Repeat("x", 64), "a\x00b"} {
		if _, err := DatabaseURL("postgres://u@db/postgres", name); err == nil || !strings.HasPrefix(err.Error(), "pgboot: ") {
			t.Errorf("DatabaseURL(_, %q) = %v, want a pgboot error", name, err)
		}
	}
	if _, err := DatabaseURL("", "x"); err == nil {
		t.Error("DatabaseURL accepted an empty server URL")
	}
	if _, err := DatabaseURL("postgres://u:s3cret@db:bad port/x", "x"); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("DatabaseURL on a bad URL = %v, want an error without the password", err)
	}
	if _, err := DatabaseURL("postgres://u@db/postgres", strings.Repeat("x", 63)); err != nil {
		t.Errorf("a 63-byte name is valid, got %v", err)
	}
}

func TestServerURLFor(t *testing.T) {
	got := serverURLFor("postgres", "127.0.0.1:55432", url.Values{"sslmode": {"disable"}})
	if want := "postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable"; got != want {
		t.Errorf("serverURLFor = %q, want %q", got, want)
	}
	got = serverURLFor("jane doe", "localhost:5432", nil)
	cfg, err := pgconn.ParseConfig(got)
	if err != nil || cfg.User != "jane doe" || cfg.Host != "localhost" || cfg.Port != 5432 || cfg.Database != "postgres" {
		t.Errorf("serverURLFor = %q, parsed as %+v, %v", got, cfg, err)
	}
}

func TestRedact(t *testing.T) {
	tests := map[string]string{
		"postgres://u:s3cret@db/x":             "postgres://u:xxxxx@db/x",
		"postgres://u@db/x":                    "postgres://u@db/x",
		"host=db password=s3cret user=u":       "host=db password=xxxxx user=u",
		"host=db password='s3 cr\\'et' user=u": "host=db password=xxxxx user=u",
	}
	for in, want := range tests {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
