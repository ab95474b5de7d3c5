package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/rapport-crm/rapport/infra/pgboot"
)

func runDevDB(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("devdb", "Runs a command (after --) with DATABASE_URL pointing at a PostgreSQL server: DATABASE_URL\nif set, else localhost:5432, else a throwaway cluster it starts (and stops afterwards\nunless --keep), installing PostgreSQL with apt-get as a last resort.", stderr)
	keep := fs.Bool("keep", envBool("RAPPORT_DEVDB_KEEP", false), "leave a cluster it started running [RAPPORT_DEVDB_KEEP]")
	if err := fs.Parse(args); err != nil {
		return err
	}
	command := fs.Args()
	if len(command) == 0 {
		return errors.New("devdb: no command (usage: rapport devdb -- COMMAND [ARGS])")
	}
	// The tests' own configuration, so that `make test` and a plain
	// `go test` share one cluster.
	server, err := pgboot.Ensure(ctx, pgboot.TestConfig())
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "rapport devdb: PostgreSQL from %s\n", server.Source)
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.Env = append(withoutEnv(os.Environ(), "DATABASE_URL"), "DATABASE_URL="+server.URL)
	runErr := cmd.Run()
	if server.Started && !*keep {
		if err := server.Stop(context.WithoutCancel(ctx)); err != nil {
			fmt.Fprintf(stderr, "rapport devdb: stop the cluster: %v\n", err)
		}
	}
	var exit *exec.ExitError
	if errors.As(runErr, &exit) {
		return exitError(exit.ExitCode())
	}
	return runErr
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
