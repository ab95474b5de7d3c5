package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rapport-crm/rapport/infra/postgres"
)

// openDatabase connects to DATABASE_URL (or --database-url; else the
// development instance's database, from devInfoPath) and migrates.
func openDatabase(ctx context.Context, url string) (*pgxpool.Pool, error) {
	if url == "" {
		info, hint, err := loadDevInfo()
		if err != nil {
			return nil, fmt.Errorf("no database: set DATABASE_URL; %s", hint)
		}
		url = info.DatabaseURL
	}
	pool, err := postgres.OpenPool(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := postgres.Migrate(ctx, pool, nil); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

func databaseFlag(fs *flag.FlagSet) *string {
	return fs.String("database-url", envString("DATABASE_URL", ""), "PostgreSQL URL [DATABASE_URL]")
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("migrate", "Applies the database migrations (serve also does at start).", stderr)
	url := databaseFlag(fs)
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	pool, err := openDatabase(ctx, *url)
	if err != nil {
		return err
	}
	pool.Close()
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runAPIKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const summary = "Manages API keys:\n  rapport apikey create --name NAME --role ROLE [--role ROLE]\n  rapport apikey list\n  rapport apikey revoke NAME|ID\nRoles: writer, analyst, auditor, admin."
	if len(args) == 0 {
		fmt.Fprintln(stderr, summary)
		return exitError(2)
	}
	sub, args := args[0], args[1:]
	fs := flagSet("apikey "+sub, summary, stderr)
	url := databaseFlag(fs)
	var name string
	var roles stringList
	if sub == "create" {
		fs.StringVar(&name, "name", "", "the key's name: the actor recorded on events (letters, digits, . _ @ -)")
		fs.Var(&roles, "role", "a role of the key; repeat for several")
	}
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	pool, err := openDatabase(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()
	keys := postgres.NewAPIKeys(pool)
	switch sub {
	case "create":
		if name == "" || len(roles) == 0 {
			return fmt.Errorf("apikey create needs --name and at least one --role")
		}
		for _, r := range roles {
			if !slices.Contains([]string{"writer", "analyst", "auditor", "admin"}, r) {
				return fmt.Errorf("unknown role %q: use writer, analyst, auditor or admin", r)
			}
		}
		key, secret, err := keys.Create(ctx, name, roles)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created API key %q (%s) with roles %s; it is shown once, keep it:\n", key.Name, key.ID, strings.Join(key.Roles, ","))
		fmt.Fprintln(stdout, secret)
	case "list":
		list, err := keys.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tID\tROLES\tPREFIX\tCREATED\tREVOKED")
		for _, k := range list {
			revoked := "-"
			if k.RevokedAt != nil {
				revoked = k.RevokedAt.UTC().Format("2006-01-02 15:04")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s…\t%s\t%s\n", k.Name, k.ID, strings.Join(k.Roles, ","), k.Prefix, k.CreatedAt.UTC().Format("2006-01-02 15:04"), revoked)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return fmt.Errorf("apikey revoke needs the key's name or id")
		}
		if err := keys.Revoke(ctx, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s (other running processes stop accepting it within %s)\n", fs.Arg(0), postgres.APIKeyCacheTTL)
	default:
		fmt.Fprintln(stderr, summary)
		return exitError(2)
	}
	return nil
}
