package pgboot

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" means valid
	}{
		{"zero value", Config{}, ""},
		{"full", Config{
			DatabaseURL: "postgres://u:p@db:5432/postgres", LocalAddr: "localhost:5433", DataDir: "/var/tmp/x",
			Port: 1, MaxConnections: 10, BinDir: "/usr/lib/postgresql/16/bin", StartTimeout: time.Second,
		}, ""},
		{"keyword/value DATABASE_URL", Config{DatabaseURL: "host=db user=u dbname=postgres"}, ""},
		{"bad DATABASE_URL", Config{DatabaseURL: "postgres://u@db:notaport/x"}, "DATABASE_URL is not a valid"},
		{"LocalAddr without port", Config{LocalAddr: "localhost"}, "LocalAddr"},
		{"LocalAddr with bad port", Config{LocalAddr: "localhost:99999"}, "no valid port"},
		{"relative DataDir", Config{DataDir: "tmp/pg"}, "must be an absolute path"},
		{"negative port", Config{Port: -1}, "Port -1"},
		{"port too large", Config{Port: 70000}, "Port 70000"},
		{"negative MaxConnections", Config{MaxConnections: -5}, "MaxConnections"},
		{"relative BinDir", Config{BinDir: "bin"}, "BinDir"},
		{"negative StartTimeout", Config{StartTimeout: -time.Second}, "StartTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate() = nil, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate() = %v, want it to contain %q", err, tt.wantErr)
			case err != nil && !strings.HasPrefix(err.Error(), "pgboot: "):
				t.Fatalf("Validate() = %v, want the pgboot: prefix", err)
			}
		})
	}
}

func TestValidateDoesNotLeakPassword(t *testing.T) {
	err := Config{DatabaseURL: "postgres://u:s3cret@db:notaport/x"}.Validate()
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Validate() = %v, want an error without the password", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	var cfg Config
	cfg.setDefaults()
	wantDir := filepath.Join(os.TempDir(), "rapport-postgres-"+strconv.Itoa(os.Getuid()))
	if cfg.DataDir != wantDir {
		t.Errorf("DataDir = %q, want %q", cfg.DataDir, wantDir)
	}
	if cfg.Port != DefaultPort || cfg.LocalAddr != DefaultLocalAddr || cfg.MaxConnections != DefaultMaxConnections ||
		cfg.StartTimeout != DefaultStartTimeout || cfg.Logger == nil {
		t.Errorf("setDefaults left %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}

	custom := Config{DataDir: "/x", Port: 6000, MaxConnections: 7}
	custom.setDefaults()
	if custom.DataDir != "/x" || custom.Port != 6000 || custom.MaxConnections != 7 {
		t.Errorf("setDefaults overwrote set fields: %+v", custom)
	}
}
