package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/google/uuid"

	"github.com/rapport-crm/rapport/domain/integration"
	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/postgres"
	"github.com/rapport-crm/rapport/infra/webhooks"
	"github.com/rapport-crm/rapport/readmodels/feed"
	"github.com/rapport-crm/rapport/readmodels/readmodel"
)

const webhooksSummary = `Manages webhook subscriptions (the admin API's /v1/webhooks, from the shell):
  rapport webhooks create --url URL [--types a,b] [--description TEXT]   prints the signing secret, once
  rapport webhooks list
  rapport webhooks rotate ID        a new secret, printed once; the old one signs too for 24 h
  rapport webhooks enable ID        a failing or disabled subscription delivers again
  rapport webhooks disable ID       hold deliveries
  rapport webhooks replay ID --from POSITION
  rapport webhooks deliveries ID [--pending]
  rapport webhooks delete ID
Private, loopback and link-local targets are refused unless --allow-targets (RAPPORT_WEBHOOK_ALLOW_TARGETS) lists them.`

// parsePrefixes reads a comma-separated list of CIDR ranges.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("webhook allowed targets: %q is not a CIDR range (such as 127.0.0.0/8)", part)
		}
		out = append(out, p)
	}
	return out, nil
}

func runWebhooks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	subs := []string{"create", "list", "rotate", "enable", "disable", "replay", "deliveries", "delete"}
	if len(args) == 0 || !contains(subs, args[0]) {
		fmt.Fprintln(stderr, webhooksSummary)
		return exitError(2)
	}
	sub, args := args[0], args[1:]
	fs := flagSet("webhooks "+sub, webhooksSummary, stderr)
	url := databaseFlag(fs)
	masterKey := fs.String("master-key", envString("RAPPORT_MASTER_KEY", ""), "the master key, base64 (else the development instance's) [RAPPORT_MASTER_KEY]")
	allow := fs.String("allow-targets", envString("RAPPORT_WEBHOOK_ALLOW_TARGETS", ""), "CIDR ranges webhooks may reach although private [RAPPORT_WEBHOOK_ALLOW_TARGETS]")
	target := fs.String("url", "", "the receiver's URL (create)")
	types := fs.String("types", "", "integration event types, comma-separated; empty: all (create)")
	description := fs.String("description", "", "what the subscription is for (create)")
	from := fs.Uint64("from", 0, "replay every event after this feed position (replay)")
	pending := fs.Bool("pending", false, "only pending deliveries (deliveries)")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	var id uuid.UUID
	if sub != "create" && sub != "list" {
		if fs.NArg() == 0 {
			return fmt.Errorf("webhooks %s needs the subscription's id", sub)
		}
		var err error
		if id, err = uuid.Parse(fs.Arg(0)); err != nil {
			return fmt.Errorf("webhooks %s: %q is not a subscription id", sub, fs.Arg(0))
		}
	}
	if *masterKey == "" && *url == "" {
		if info, err := readDevInfo(filepath.Join(".data", "dev.json")); err == nil {
			*masterKey = info.MasterKey
		}
	}
	if *masterKey == "" {
		return errors.New("no master key: set RAPPORT_MASTER_KEY (or --master-key): signing secrets are sealed under it")
	}
	key, err := app.ParseMasterKey(*masterKey)
	if err != nil {
		return err
	}
	prefixes, err := parsePrefixes(*allow)
	if err != nil {
		return err
	}
	pool, err := openDatabase(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()
	keyring, err := postgres.NewKeyring(pool, key, postgres.KeyringConfig{})
	if err != nil {
		return err
	}
	if err := keyring.VerifyMasterKey(ctx); err != nil {
		return err
	}
	sealer, err := webhooks.NewSealer(keyring.IndexSecret())
	if err != nil {
		return err
	}
	store := webhooks.NewStore(pool, sealer, webhooks.Targets{Allow: prefixes}, integration.NewMapper().Types())
	show := func(v any) error {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	switch sub {
	case "create":
		head, err := feed.NewQueries(pool).Head(ctx)
		if err != nil && !errors.Is(err, readmodel.ErrNotReady) {
			return err
		}
		var list []string
		for _, t := range strings.Split(*types, ",") {
			if t = strings.TrimSpace(t); t != "" {
				list = append(list, t)
			}
		}
		created, err := store.Create(ctx, webhooks.NewSubscription{URL: *target, EventTypes: list, Description: *description}, head)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "the signing secret is shown only now: keep it\n")
		return show(created)
	case "list":
		all, err := store.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tCHECKPOINT\tTYPES\tURL")
		for _, s := range all {
			t := strings.Join(s.EventTypes, ",")
			if t == "" {
				t = "(all)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.State, strconv.FormatUint(s.Checkpoint, 10), t, s.URL)
		}
		return tw.Flush()
	case "rotate":
		c, err := store.RotateSecret(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "the new signing secret is shown only now; the previous one keeps signing for 24 h\n")
		return show(c)
	case "enable":
		s, err := store.Enable(ctx, id)
		if err != nil {
			return err
		}
		return show(s)
	case "disable":
		s, err := store.Disable(ctx, id)
		if err != nil {
			return err
		}
		return show(s)
	case "replay":
		n, err := store.Replay(ctx, id, *from)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d deliveries queued\n", n)
		return nil
	case "deliveries":
		f := webhooks.DeliveryFilter{Limit: 100}
		if *pending {
			f.State = "pending"
		}
		list, err := store.Deliveries(ctx, id, f)
		if err != nil {
			return err
		}
		return show(list)
	case "delete":
		if err := store.Delete(ctx, id); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "deleted")
		return nil
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
