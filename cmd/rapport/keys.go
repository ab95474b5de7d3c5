package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/postgres"
)

const keysSummary = `Manages the master key that wraps the customers' data keys:
  rapport keys check                     check RAPPORT_MASTER_KEY against the database's key check
  rapport keys rotate --new-key NEW      re-wrap every data key under NEW while the service runs;
                                         then restart every process with RAPPORT_MASTER_KEY=NEW
A new key: openssl rand -base64 32`

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "check" && args[0] != "rotate") {
		fmt.Fprintln(stderr, keysSummary)
		return exitError(2)
	}
	sub, args := args[0], args[1:]
	fs := flagSet("keys "+sub, keysSummary, stderr)
	url := databaseFlag(fs)
	masterKey := fs.String("master-key", envString("RAPPORT_MASTER_KEY", ""), "the current master key, base64 (else the development instance's) [RAPPORT_MASTER_KEY]")
	var (
		newKey *string
		opts   postgres.RotateOptions
	)
	if sub == "rotate" {
		newKey = fs.String("new-key", envString("RAPPORT_NEW_MASTER_KEY", ""), "the new master key, base64 of 32 random bytes [RAPPORT_NEW_MASTER_KEY]")
		fs.IntVar(&opts.BatchSize, "batch", 1000, "data keys re-wrapped per statement")
		fs.DurationVar(&opts.Grace, "grace", 10*time.Second, "least time between publishing the new key and retiring the old one, so that running processes learn it (they look every 2 s)")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *masterKey == "" && *url == "" {
		if info, err := readDevInfo(filepath.Join(".data", "dev.json")); err == nil {
			*masterKey = info.MasterKey
		}
	}
	if *masterKey == "" {
		return errors.New("no master key: set RAPPORT_MASTER_KEY (or --master-key) to the current master key")
	}
	current, err := app.ParseMasterKey(*masterKey)
	if err != nil {
		return err
	}
	pool, err := openDatabase(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()
	if sub == "check" {
		k, err := postgres.NewKeyring(pool, current, postgres.KeyringConfig{})
		if err != nil {
			return err
		}
		if err := k.VerifyMasterKey(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "the master key matches the database's key check")
		return nil
	}
	if *newKey == "" {
		return errors.New("keys rotate needs --new-key (openssl rand -base64 32)")
	}
	next, err := app.ParseMasterKey(*newKey)
	if err != nil {
		return fmt.Errorf("--new-key: %w", err)
	}
	start := time.Now()
	lastReport := 0
	opts.Progress = func(n int) {
		if n-lastReport >= 10_000 {
			fmt.Fprintf(stderr, "re-wrapped %d data keys (%s)\n", n, time.Since(start).Round(time.Millisecond))
			lastReport = n
		}
	}
	fmt.Fprintf(stderr, "rotating: the new key is published; running processes accept both keys until the rotation ends\n")
	report, err := postgres.RotateMasterKey(ctx, pool, current, next, opts)
	if err != nil {
		return fmt.Errorf("rotation not finished (run it again with the same keys to resume): %w", err)
	}
	resumed := ""
	if report.Resumed {
		resumed = ", resuming an interrupted rotation"
	}
	fmt.Fprintf(stdout, "rotated: %d data keys re-wrapped in %d pass(es) in %s (of which %s waiting for running processes to learn the key%s).\nThe database's key check is now the new key's: restart every process with RAPPORT_MASTER_KEY set to it; the old key is refused from now on.\n",
		report.Rewrapped, report.Passes, time.Since(start).Round(time.Millisecond), report.Waited.Round(time.Millisecond), resumed)
	return nil
}
