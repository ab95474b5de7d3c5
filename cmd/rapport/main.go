// Command rapport runs the Rapport service and its tools.
//
//	rapport serve        the HTTP API with the projectors (production)
//	rapport dev          a development instance: starts PostgreSQL if needed (make run)
//	rapport devdb -- CMD runs CMD with DATABASE_URL set to a PostgreSQL it finds or starts (make test)
//	rapport migrate      applies the database migrations
//	rapport apikey       creates, lists and revokes API keys
//	rapport keys         checks or rotates the master key
//	rapport project      runs the projectors without the HTTP API
//	rapport projections  shows, rebuilds and verifies the projectors
//	rapport audit        verifies hash chains and replays a customer's history
//	rapport seed         generates a realistic data set through the command layer
//	rapport bench        drives a realistic load over HTTP and reports the figures
//
// Run `rapport <command> --help` for a command's flags; every flag can also
// be set by the environment variable named in its help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// defaultGCPercent trades memory for CPU: Rapport allocates mostly
// short-lived garbage (decoded events, JSON), and with Go's default of 100
// collection took a quarter of the CPU of a rebuild; 400 gave 12% more
// rebuild throughput. GOGC, when set, wins.
const defaultGCPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	var exit exitError
	if errors.As(err, &exit) {
		os.Exit(int(exit))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rapport:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a status, having said why already.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commandList() []command {
	return []command{
		{"serve", "run the HTTP API and the projectors", runServe},
		{"dev", "run a development instance, starting PostgreSQL if needed (make run)", runDev},
		{"devdb", "run a command with DATABASE_URL set to a PostgreSQL found or started (make test)", runDevDB},
		{"migrate", "apply the database migrations", runMigrate},
		{"apikey", "create, list and revoke API keys", runAPIKey},
		{"keys", "check or rotate the master key (online re-wrap of every data key)", runKeys},
		{"project", "run the projectors without the HTTP API", runProject},
		{"projections", "status, rebuild and verify the projectors", runProjections},
		{"audit", "verify hash chains and replay a customer's history", runAudit},
		{"webhooks", "create, list, rotate, enable, replay and delete webhook subscriptions", runWebhooks},
		{"seed", "generate a realistic data set through the command layer", runSeed},
		{"bench", "drive a realistic load over HTTP and report throughput, latency and lag", runBench},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return exitError(2)
		}
		return nil
	}
	for _, c := range commandList() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "rapport: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitError(2)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: rapport <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commandList() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'rapport <command> --help' for its flags and environment variables.")
}
