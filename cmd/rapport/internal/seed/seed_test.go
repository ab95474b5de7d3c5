package seed_test

import (
	"context"
	"testing"

	"github.com/rapport-crm/rapport/cmd/rapport/internal/seed"
	"github.com/rapport-crm/rapport/infra/app/apptest"
)

// TestSeedThroughTheCommandLayer generates a small data set: every command
// passes the domain's rules, and running the same seed again appends
// nothing (its command ids are deterministic).
func TestSeedThroughTheCommandLayer(t *testing.T) {
	m := apptest.MustOpen(t)
	cfg := seed.Config{Handler: m.Commands, Customers: 40, Workers: 4, Seed: 7}
	first, err := seed.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if first.Customers != 40 || first.Events < 200 || first.Refused > first.Commands/50 {
		t.Fatalf("first run: %+v", first)
	}
	again, err := seed.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again.Events != 0 {
		t.Fatalf("running the same seed again appended %d events", again.Events)
	}
	t.Logf("seeded %d customers: %d commands, %d events, %d refused", first.Customers, first.Commands, first.Events, first.Refused)
}
