package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/rapport-crm/rapport/cmd/rapport/internal/progress"

	"github.com/rapport-crm/rapport/projections"
)

func runProject(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("project", "Runs the projectors without the HTTP API: for a separate projection process.\nAt most one process runs each projector; the others stand by and take over when it dies.", stderr)
	var f serviceFlags
	f.register(fs, true)
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	logger, err := f.logger(stderr)
	if err != nil {
		return err
	}
	cfg, err := f.appConfig(logger)
	if err != nil {
		return err
	}
	cfg.ServeHTTP = false
	m, err := openApp(ctx, cfg)
	if err != nil {
		return err
	}
	logger.Info("rapport: projecting", "projectors", projectorNames(m.Engine))
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
	defer cancel()
	return m.Close(shutdown)
}

func projectorNames(e *projections.Engine) []string {
	statuses, _ := e.Status(context.Background())
	names := make([]string, len(statuses))
	for i, st := range statuses {
		names[i] = st.Name
	}
	return names
}

const projectionsSummary = `Operates the projectors:
  rapport projections status             each projector's checkpoint, lag and state
  rapport projections rebuild NAME|--all rebuild without downtime, with a progress bar
  rapport projections verify             compare each customer stream with what the read models applied
  rapport projections retry NAME STREAM  retry a parked stream after a fix (the process running NAME does it)`

func runProjections(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || !slices.Contains([]string{"status", "rebuild", "verify", "retry"}, args[0]) {
		fmt.Fprintln(stderr, projectionsSummary)
		return exitError(2)
	}
	sub := args[0]
	fs := flagSet("projections "+sub, projectionsSummary, stderr)
	var f serviceFlags
	f.register(fs, true)
	all := fs.Bool("all", false, "rebuild: every projector")
	asJSON := fs.Bool("json", false, "status and verify: print JSON")
	if err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	m, err := openTool(ctx, &f, stderr)
	if err != nil {
		return err
	}
	defer m.Close(context.WithoutCancel(ctx))
	switch sub {
	case "status":
		statuses, err := m.Engine.Status(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(statuses)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PROJECTOR\tGEN\tSTATE\tCHECKPOINT\tHEAD\tLAG EVENTS\tLAG S\tAPPLIED\tOWNER")
		for _, st := range statuses {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%.1f\t%d\t%s\n", st.Name, st.Generation, st.State, st.Checkpoint, st.Head, st.LagEvents, st.LagSeconds, st.EventsApplied, st.Owner)
			if st.Poison != nil {
				fmt.Fprintf(tw, "  stopped at\t%s@%d\t%s\t%s\n", st.Poison.Stream, st.Poison.Revision, st.Poison.EventType, st.Poison.Err)
			}
			for _, p := range st.Parked {
				fmt.Fprintf(tw, "  parked (g%d)\t%s@%d\t%s\t%d waiting, %d attempts: %s\n", p.Generation, p.Stream, p.Revision, p.EventType, p.Waiting, p.Attempts, p.Err)
			}
		}
		return tw.Flush()
	case "rebuild":
		names := fs.Args()
		if *all {
			names = projectorNames(m.Engine)
		}
		if len(names) == 0 {
			return fmt.Errorf("projections rebuild needs a projector name or --all (projectors: %s)", strings.Join(projectorNames(m.Engine), ", "))
		}
		for _, name := range names {
			report, finish := progress.Rebuild(stderr, "rebuilding "+name)
			err := m.Engine.Rebuild(ctx, name, report)
			finish()
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "rebuilt %s: the new generation serves readers\n", name)
		}
		return nil
	case "retry":
		if fs.NArg() != 2 {
			return fmt.Errorf("projections retry needs a projector name and a parked stream (see projections status)")
		}
		name, stream := fs.Arg(0), fs.Arg(1)
		err := m.Engine.RetryParked(ctx, name, stream)
		switch {
		case errors.Is(err, projections.ErrRetryQueued):
			fmt.Fprintf(stdout, "retry of %s in %s queued: the process running %s applies it at its next poll (see projections status)\n", stream, name, name)
			return nil
		case err == nil:
			fmt.Fprintf(stdout, "%s in %s: applied, no longer parked\n", stream, name)
			return nil
		}
		return err
	default: // verify
		report, err := m.Engine.Verify(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			if err := json.NewEncoder(stdout).Encode(report); err != nil {
				return err
			}
		} else {
			printReport(stdout, report)
		}
		if !report.OK() {
			return exitError(3)
		}
		return nil
	}
}

func printReport(w io.Writer, r projections.Report) {
	for _, p := range r.Projectors {
		verdict := "matches the log"
		if !p.OK() {
			verdict = fmt.Sprintf("DIFFERS: %d missing, %d extra, %d revision mismatches", len(p.Missing), len(p.Extra), len(p.Mismatches))
		}
		fmt.Fprintf(w, "%s (generation %d, checkpoint %d): %d streams, %s\n", p.Name, p.Generation, p.Checkpoint, p.Streams, verdict)
		for _, s := range p.Parked {
			fmt.Fprintf(w, "  parked   %s (compared up to the event it is parked on)\n", s)
		}
		for i, s := range p.Missing {
			if i == 10 {
				fmt.Fprintf(w, "  … %d more missing\n", len(p.Missing)-10)
				break
			}
			fmt.Fprintf(w, "  missing  %s\n", s)
		}
		for i, s := range p.Extra {
			if i == 10 {
				fmt.Fprintf(w, "  … %d more extra\n", len(p.Extra)-10)
				break
			}
			fmt.Fprintf(w, "  extra    %s\n", s)
		}
		for i, m := range p.Mismatches {
			if i == 10 {
				fmt.Fprintf(w, "  … %d more mismatches\n", len(p.Mismatches)-10)
				break
			}
			fmt.Fprintf(w, "  mismatch %s: log at revision %d, read model at %d\n", m.Stream, m.Log, m.Model)
		}
	}
}
