package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/schollz/progressbar/v3"

	"github.com/rapport-crm/rapport/domain"
	"github.com/rapport-crm/rapport/readmodels/audit"
)

const auditSummary = `Auditors' tools over the authoritative event log:
  rapport audit verify CUSTOMER_ID     recompute one customer's hash chain
  rapport audit verify STREAM          the same for goal-<id> or routing-complaints
  rapport audit verify --all           recompute every stream's (customers, goals, routing),
                                       reading the log once
  rapport audit verify --anchor FILE [CUSTOMER_ID | STREAM | --all]
                                       also check against an anchor: catches truncation and rollback
  rapport audit anchor [--out FILE]    write a signed digest of every stream head and the log head
                                       (keep it away from the database)
  rapport audit replay CUSTOMER_ID [--as-of RFC3339]
                                       print the customer's timeline and its state then`

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "verify" && args[0] != "replay" && args[0] != "anchor") {
		fmt.Fprintln(stderr, auditSummary)
		return exitError(2)
	}
	sub := args[0]
	fs := flagSet("audit "+sub, auditSummary, stderr)
	var f serviceFlags
	f.register(fs, true)
	all := fs.Bool("all", false, "verify every customer")
	asOf := fs.String("as-of", "", "replay: the instant (RFC 3339) to show the state at; default now")
	anchorFile := fs.String("anchor", "", "verify: check against this anchor file too (rapport audit anchor)")
	out := fs.String("out", "", "anchor: the file to write (default anchor-<time>.json)")
	if err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	m, err := openTool(ctx, &f, stderr)
	if err != nil {
		return err
	}
	defer m.Close(context.WithoutCancel(ctx))
	auditor := audit.New(m.Store, m.Codec)
	if sub == "anchor" {
		return writeAnchor(ctx, auditor, *out, stdout, stderr)
	}
	var anchor *audit.Anchor
	if *anchorFile != "" {
		if anchor, err = readAnchor(auditor, *anchorFile); err != nil {
			return err
		}
	}
	if sub == "verify" && (*all || (anchor != nil && fs.NArg() == 0)) {
		return verifyAll(ctx, auditor, anchor, stdout, stderr)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("audit %s needs a customer id", sub)
	}
	if sub == "verify" && audit.Audited(fs.Arg(0)) {
		v, err := verifyOne(ctx, auditor, anchor, fs.Arg(0))
		if err != nil {
			return err
		}
		printVerification(stdout, v)
		if !v.Intact {
			return exitError(3)
		}
		return nil
	}
	id, err := uuid.Parse(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("%q is not a customer id", fs.Arg(0))
	}
	if sub == "verify" {
		v, err := verifyOne(ctx, auditor, anchor, domain.StreamName(id))
		if err != nil {
			return err
		}
		printVerification(stdout, v)
		if !v.Intact {
			return exitError(3)
		}
		return nil
	}
	when := time.Now()
	if *asOf != "" {
		if when, err = time.Parse(time.RFC3339Nano, *asOf); err != nil {
			return fmt.Errorf("--as-of: %w", err)
		}
	}
	return replay(ctx, auditor, id, when, stdout)
}

func printVerification(w io.Writer, v audit.Verification) {
	if v.Intact {
		fmt.Fprintf(w, "%s intact: %d events, last revision %d, last hash %s\n", v.Name(), v.Events, *v.LastRevision, v.LastHash)
		return
	}
	fmt.Fprintf(w, "%s BROKEN at revision %d (event %s): %s\n", v.Name(), v.BrokenAt.Revision, v.BrokenAt.EventID, v.BrokenAt.Reason)
}

func verifyAll(ctx context.Context, auditor *audit.Auditor, anchor *audit.Anchor, stdout, stderr io.Writer) error {
	bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("verifying events"), progressbar.OptionShowCount(), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	// Counted by kind: customers, goals, the routing rules.
	var counts [3]struct{ all, broken int }
	progress := func(events int) { _ = bar.Set(events) }
	report := func(v audit.Verification) error {
		kind := 0
		if _, ok := domain.GoalIDFromStream(v.Stream); ok {
			kind = 1
		} else if v.CustomerID == uuid.Nil {
			kind = 2
		}
		counts[kind].all++
		if !v.Intact {
			counts[kind].broken++
			printVerification(stdout, v)
		}
		return nil
	}
	var err error
	if anchor != nil {
		err = auditor.VerifyAllAnchored(ctx, anchor, progress, report)
		if errors.Is(err, audit.ErrLogHeadMissing) {
			_ = bar.Finish()
			fmt.Fprintf(stdout, "log BROKEN: %v: the log was cut since the anchor of %s\n", err, anchor.TakenAt.Format(time.RFC3339))
			return exitError(3)
		}
	} else {
		err = auditor.VerifyAll(ctx, progress, report)
	}
	_ = bar.Finish()
	if err != nil {
		return err
	}
	broken := 0
	for kind, name := range []string{"customers", "goals", "routing streams"} {
		c := counts[kind]
		broken += c.broken
		if kind == 0 || c.all > 0 {
			fmt.Fprintf(stdout, "verified %d %s: %d intact, %d broken\n", c.all, name, c.all-c.broken, c.broken)
		}
	}
	if broken > 0 {
		return exitError(3)
	}
	return nil
}

// replay prints the timeline up to asOf, then the state at asOf.
func replay(ctx context.Context, auditor *audit.Auditor, id uuid.UUID, asOf time.Time, stdout io.Writer) error {
	fmt.Fprintf(stdout, "Timeline of customer %s up to %s\n\n", id, asOf.UTC().Format(time.RFC3339))
	err := auditor.Events(ctx, id, 0, func(e audit.Event) (bool, error) {
		if e.RecordedAt.After(asOf) {
			return false, nil
		}
		fmt.Fprintf(stdout, "#%-4d %s  %-36s by %-12s (request %s)\n      %s\n", e.Revision, e.RecordedAt.Format(time.RFC3339), e.Type, e.Actor, e.CorrelationID, e.Data)
		return true, nil
	})
	if errors.Is(err, audit.ErrCustomerNotFound) {
		return fmt.Errorf("customer %s has no events", id)
	}
	if err != nil {
		return err
	}
	st, err := auditor.StateAsOf(ctx, id, asOf)
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(st.CustomerView(), "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nState at revision %d (%d events, last recorded %s):\n%s\n", st.Revision, st.Events, st.RecordedAt.Format(time.RFC3339), out)
	return nil
}

// verifyOne verifies one audited stream, against its anchored head when
// an anchor is given (a stream the anchor does not know is verified alone).
func verifyOne(ctx context.Context, auditor *audit.Auditor, anchor *audit.Anchor, stream string) (audit.Verification, error) {
	if anchor != nil {
		for _, head := range anchor.Streams {
			if head.StreamName() == stream {
				return auditor.VerifyStreamAnchored(ctx, stream, head)
			}
		}
	}
	v, err := auditor.VerifyStream(ctx, stream)
	if errors.Is(err, audit.ErrCustomerNotFound) || errors.Is(err, audit.ErrStreamNotFound) {
		return v, fmt.Errorf("%s has no events", stream)
	}
	return v, err
}

// readAnchor reads an anchor file and checks its signature.
func readAnchor(auditor *audit.Auditor, path string) (*audit.Anchor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--anchor: %w", err)
	}
	var anchor audit.Anchor
	if err := json.Unmarshal(raw, &anchor); err != nil {
		return nil, fmt.Errorf("--anchor %s: not an anchor: %w", path, err)
	}
	if err := auditor.CheckAnchor(&anchor); err != nil {
		return nil, fmt.Errorf("--anchor %s: %w", path, err)
	}
	return &anchor, nil
}

// writeAnchor verifies every stream and writes the signed anchor; it
// refuses (exit 3) when a stream does not verify.
func writeAnchor(ctx context.Context, auditor *audit.Auditor, path string, stdout, stderr io.Writer) error {
	bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("anchoring events"), progressbar.OptionShowCount(), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	now := time.Now()
	anchor, broken, err := auditor.Anchor(ctx, now, func(events int) { _ = bar.Set(events) })
	_ = bar.Finish()
	if errors.Is(err, audit.ErrBrokenStreams) {
		for _, v := range broken {
			printVerification(stdout, v)
		}
		fmt.Fprintf(stdout, "no anchor written: %v\n", err)
		return exitError(3)
	}
	if err != nil {
		return err
	}
	if path == "" {
		path = "anchor-" + now.UTC().Format("20060102T150405Z") + ".json"
	}
	raw, err := json.MarshalIndent(anchor, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("write the anchor: %w", err)
	}
	fmt.Fprintf(stdout, "anchored %d streams, log head at position %d, digest %s\nwrote %s: keep it away from the database\n",
		len(anchor.Streams), anchor.Log.Position, anchor.Digest, path)
	return nil
}
