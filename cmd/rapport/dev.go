package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/rapport-crm/rapport/infra/app"
	"github.com/rapport-crm/rapport/infra/pgboot"
	"github.com/rapport-crm/rapport/infra/postgres"
)

// devAdminKeyName names the admin key that each `rapport dev` replaces.
const devAdminKeyName = "dev-admin"

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("dev", "Runs a development instance: PostgreSQL from DATABASE_URL, localhost:5432 or a cluster\nit starts in --data-dir (installing PostgreSQL if it must), the embedded event store,\nand a fresh admin API key printed at start.", stderr)
	var f serviceFlags
	f.register(fs, false)
	dataDir := fs.String("data-dir", devDataDir(), "where the development cluster, master key and settings (dev.json, which the tools read) live; set the variable rather than the flag, so that the tools find them too [RAPPORT_DATA_DIR]")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if f.logFormat == "json" && os.Getenv("RAPPORT_LOG_FORMAT") == "" {
		f.logFormat = "text" // readable in a terminal
	}
	if os.Getenv("RAPPORT_RATE_LIMIT") == "" && os.Getenv("RAPPORT_RATE_BURST") == "" {
		// One developer with one key: the production limit would only
		// throttle `rapport bench` against this instance.
		f.rateLimit, f.rateBurst = 1e6, 1e6
	}
	if os.Getenv("RAPPORT_LOG_LEVEL") == "" {
		f.logLevel = "warn" // a line per request would drown the banner and slow the bench
	}
	logger, err := f.logger(stderr)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// pgboot's notes are information, once per start (where PostgreSQL
	// comes from, that it is being installed and takes a minute, that the
	// cluster moved where its owner can reach it), so they show even at
	// the warn level that keeps requests quiet.
	pgLogger := logger
	if !logger.Enabled(ctx, slog.LevelInfo) {
		pgLogger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	server, err := pgboot.Ensure(ctx, pgboot.Config{
		DatabaseURL:    os.Getenv("DATABASE_URL"),
		DataDir:        filepath.Join(dir, "postgres"),
		DataDirSetting: dataDirEnv + " (the cluster is its postgres/ folder)",
		Logger:         pgLogger,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := server.Stop(context.WithoutCancel(ctx)); err != nil {
			logger.Warn("rapport: stop PostgreSQL", "err", err)
		}
	}()
	if f.masterKey == "" {
		if f.masterKey, err = devMasterKey(filepath.Join(dir, "master.key")); err != nil {
			return err
		}
	}
	cfg, err := f.appConfig(logger)
	if err != nil {
		return err
	}
	f.databaseURL = server.URL
	if os.Getenv("DATABASE_URL") == "" {
		// Each checkout has its own master key (.data/master.key); on a
		// shared PostgreSQL each checkout gets its own database, so that two
		// never mix data keys. With DATABASE_URL the database is the one
		// named, and a process with another key refuses to start.
		if f.databaseURL, err = devDatabase(ctx, server.URL, legacyDevDatabase, dir, cfg.MasterKey); err != nil {
			return err
		}
	}
	cfg.DatabaseURL = f.databaseURL
	m, err := app.New(cfg)
	if err != nil {
		return err
	}
	if err := m.Open(ctx); err != nil {
		return err
	}
	defer func() {
		if err := m.Close(context.WithoutCancel(ctx)); err != nil {
			logger.Warn("rapport: close", "err", err)
		}
	}()
	// A name is never given to a second key: the dev admin key gets a new
	// secret instead, the previous one stops working.
	_, secret, err := m.APIKeys.Reissue(ctx, devAdminKeyName, []string{"admin"})
	if err != nil {
		return err
	}
	url := m.HTTP.URL()
	if err := writeDevInfo(filepath.Join(dir, devInfoName), devInfo{URL: url, AdminKey: secret, DatabaseURL: f.databaseURL, EventStore: cfg.EventStore, MasterKey: f.masterKey}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, `
Rapport is running (development instance)

  HTTP API      %s   (OpenAPI: %s/openapi.json)
  PostgreSQL    %s
                %s
  Event store   %s
  Master key    %s
  Admin API key %s   (name %q; replaced at every start)

Try:
  export RAPPORT_KEY=%s
  curl -s -H "Authorization: Bearer $RAPPORT_KEY" -H 'Content-Type: application/json' \
       -d '{"name":"Ada Lovelace","email":"ada@example.com"}' %s/v1/customers

Stop with Ctrl-C.
`, url, url, server.Source, pgboot.Redact(f.databaseURL), cfg.EventStore, masterKeySource(f, dir), secret, devAdminKeyName, secret, url)
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nRapport: stopping")
	return nil
}

// legacyDevDatabase is the database every `rapport dev` used before each
// checkout got its own: it is still used by the master key it belongs to.
const legacyDevDatabase = "rapport"

// devDatabase returns the development database of the checkout whose data
// directory is dataDir on the server at serverURL, creating it if needed:
// rapport_<first 12 hex digits of SHA-256 of the directory's path>, so that
// two checkouts (each with its own master key in .data/master.key) never
// share one, and a checkout finds its own again, also after a rotation of
// its key. The legacy database is kept for the key it belongs to.
func devDatabase(ctx context.Context, serverURL, legacy, dataDir string, masterKey []byte) (string, error) {
	if url, ok, err := legacyDatabaseFits(ctx, serverURL, legacy, masterKey); err != nil || ok {
		return url, err
	}
	return pgboot.CreateDatabase(ctx, serverURL, devDatabaseName(dataDir))
}

func devDatabaseName(dataDir string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(dataDir)))
	return "rapport_" + hex.EncodeToString(sum[:6])
}

func legacyDatabaseFits(ctx context.Context, serverURL, legacy string, masterKey []byte) (string, bool, error) {
	url, err := pgboot.DatabaseURL(serverURL, legacy)
	if err != nil {
		return "", false, err
	}
	pool, err := postgres.OpenPool(ctx, url)
	if err != nil {
		return "", false, nil // no such database
	}
	defer pool.Close()
	var used bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('rapport.customer_keys') IS NOT NULL`).Scan(&used); err != nil || !used {
		return "", false, err // an empty legacy database: start the key's own
	}
	fits, err := postgres.MasterKeyFits(ctx, pool, masterKey)
	return url, fits, err
}

func masterKeySource(f serviceFlags, dir string) string {
	if os.Getenv("RAPPORT_MASTER_KEY") != "" {
		return "from RAPPORT_MASTER_KEY"
	}
	return filepath.Join(dir, "master.key") + " (development only)"
}

// devMasterKey reads the development master key, making it on first use.
// Losing it makes every customer's personal data unreadable, exactly as
// erasure would: fine for development, never for production.
func devMasterKey(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	encoded := base64.StdEncoding.EncodeToString(key)
	if err := os.WriteFile(path, []byte(encoded+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save the development master key: %w", err)
	}
	return encoded, nil
}

// devInfo is what a running development instance tells the other tools
// (audit, projections, apikey, migrate, seed, bench) in
// $RAPPORT_DATA_DIR/dev.json (see devInfoPath), so that they work without
// flags.
type devInfo struct {
	URL         string `json:"url"`
	AdminKey    string `json:"admin_key"`
	DatabaseURL string `json:"database_url"`
	EventStore  string `json:"event_store"`
	MasterKey   string `json:"master_key"`
}

func writeDevInfo(path string, info devInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// readDevInfo reads what `rapport dev` wrote, if it did.
func readDevInfo(path string) (devInfo, error) {
	var info devInfo
	b, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	return info, json.Unmarshal(b, &info)
}
