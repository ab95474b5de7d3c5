// Command pgcheck is the first step of `make test`. It tells within
// seconds, before the build and the vet that take minutes on a fresh
// machine, whether the tests will have a PostgreSQL server: it runs
// pgboot.Available with the tests' configuration (pgboot.TestConfig), which
// installs PostgreSQL when pgboot would (as root on Debian or Ubuntu) and
// starts nothing. When there is no server to be had it prints what to
// install or set and exits with status 1.
//
// It is a program of its own, importing only pgboot, because building
// cmd/rapport to ask would cost the very minutes it saves.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/rapport-crm/rapport/infra/pgboot"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := pgboot.TestConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	source, err := pgboot.Available(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgcheck: the tests need PostgreSQL, and there is none to be had:\n%v\n", err)
		stop()
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "pgcheck: PostgreSQL for the tests: %s\n", source)
}
