package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/rapport-crm/rapport/cmd/rapport/internal/seed"
)

func runSeed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("seed", "Generates a realistic data set through the command layer: a simulated year of\nregistrations, contacts, complaints with lifecycles, surveys, churn and win-back.\nThe same --seed makes the same data, and running it again appends nothing new.", stderr)
	var f serviceFlags
	f.register(fs, true)
	customers := fs.Int("customers", 1000, "customers to create")
	workers := fs.Int("workers", 8, "customers generated concurrently")
	days := fs.Int("days", 365, "length of the simulated period, ending now")
	seedValue := fs.Uint64("seed", 1, "random seed")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	m, err := openTool(ctx, &f, stderr)
	if err != nil {
		return err
	}
	defer m.Close(context.WithoutCancel(ctx))
	bar := progressbar.NewOptions(*customers,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("seeding customers"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("customers"),
		progressbar.OptionThrottle(200*time.Millisecond),
	)
	stats, err := seed.Run(ctx, seed.Config{
		Handler:   m.Commands,
		Customers: *customers,
		Workers:   *workers,
		Days:      *days,
		Seed:      *seedValue,
		Progress:  func(done, _ int64) { _ = bar.Set64(done) },
	})
	_ = bar.Finish()
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d customers: %d commands, %d events appended, %d refused by the rules, in %s (%.0f events/s)\n",
		stats.Customers, stats.Commands, stats.Events, stats.Refused, stats.Duration.Round(time.Millisecond), float64(stats.Events)/stats.Duration.Seconds())
	return nil
}
