package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/schollz/progressbar/v3"

	"github.com/rapport-crm/rapport/readmodels/audit"
)

const auditSummary = `Auditors' tools over the authoritative event log:
  rapport audit verify CUSTOMER_ID     recompute one customer's hash chain
  rapport audit verify --all           recompute every customer's, reading the log once
  rapport audit replay CUSTOMER_ID [--as-of RFC3339]
                                       print the customer's timeline and its state then`

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "verify" && args[0] != "replay") {
		fmt.Fprintln(stderr, auditSummary)
		return exitError(2)
	}
	sub := args[0]
	fs := flagSet("audit "+sub, auditSummary, stderr)
	var f serviceFlags
	f.register(fs, true)
	all := fs.Bool("all", false, "verify every customer")
	asOf := fs.String("as-of", "", "replay: the instant (RFC 3339) to show the state at; default now")
	if err := parseArgs(fs, args[1:]); err != nil {
		return err
	}
	m, err := openTool(ctx, &f, stderr)
	if err != nil {
		return err
	}
	defer m.Close(context.WithoutCancel(ctx))
	auditor := audit.New(m.Store, m.Codec)
	if sub == "verify" && *all {
		return verifyAll(ctx, auditor, stdout, stderr)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("audit %s needs a customer id", sub)
	}
	id, err := uuid.Parse(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("%q is not a customer id", fs.Arg(0))
	}
	if sub == "verify" {
		v, err := auditor.Verify(ctx, id)
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
		fmt.Fprintf(w, "%s intact: %d events, last revision %d, last hash %s\n", v.CustomerID, v.Events, *v.LastRevision, v.LastHash)
		return
	}
	fmt.Fprintf(w, "%s BROKEN at revision %d (event %s): %s\n", v.CustomerID, v.BrokenAt.Revision, v.BrokenAt.EventID, v.BrokenAt.Reason)
}

func verifyAll(ctx context.Context, auditor *audit.Auditor, stdout, stderr io.Writer) error {
	bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("verifying events"), progressbar.OptionShowCount(), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	customers, broken := 0, 0
	err := auditor.VerifyAll(ctx, func(events int) { _ = bar.Set(events) }, func(v audit.Verification) error {
		customers++
		if !v.Intact {
			broken++
			printVerification(stdout, v)
		}
		return nil
	})
	_ = bar.Finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "verified %d customers: %d intact, %d broken\n", customers, customers-broken, broken)
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
	out, err := json.MarshalIndent(audit.CustomerView(st.Customer), "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nState at revision %d (%d events, last recorded %s):\n%s\n", st.Revision, st.Events, st.RecordedAt.Format(time.RFC3339), out)
	return nil
}
