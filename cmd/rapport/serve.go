package main

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/rapport-crm/rapport/infra/app"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("serve", "Runs the HTTP API and the projectors until interrupted.", stderr)
	var f serviceFlags
	f.register(fs, true)
	bootstrap := fs.Bool("bootstrap-admin-key", envBool("RAPPORT_BOOTSTRAP_ADMIN_KEY", false), "when no active admin key exists, create one named \"admin\" and print it once [RAPPORT_BOOTSTRAP_ADMIN_KEY]")
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
	if cfg.DatabaseURL == "" {
		return fmt.Errorf("no database: set DATABASE_URL (or use `make run` for a development instance)")
	}
	m, err := openApp(ctx, cfg)
	if err != nil {
		return err
	}
	if *bootstrap {
		if err := bootstrapAdminKey(ctx, m, stdout); err != nil {
			_ = m.Close(context.WithoutCancel(ctx))
			return err
		}
	}
	<-ctx.Done()
	logger.Info("rapport: shutting down", "timeout", f.shutdownTimeout)
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
	defer cancel()
	return m.Close(shutdown)
}

// bootstrapAdminKey gives a new deployment its first key: without one,
// nobody could call the API to make more.
func bootstrapAdminKey(ctx context.Context, m *app.Main, stdout io.Writer) error {
	keys, err := m.APIKeys.List(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.RevokedAt == nil && slices.Contains(k.Roles, "admin") {
			return nil
		}
	}
	_, secret, err := m.APIKeys.Reissue(ctx, "admin", []string{"admin"})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rapport: created the first admin API key (shown once, keep it): %s\n", secret)
	return nil
}

// openApp builds and opens the service.
func openApp(ctx context.Context, cfg app.Config) (*app.Main, error) {
	m, err := app.New(cfg)
	if err != nil {
		return nil, err
	}
	return m, m.Open(ctx)
}
